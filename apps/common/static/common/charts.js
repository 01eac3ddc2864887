// The one chart wrapper of the suite. Every dashboard draws its charts through
// AigcCharts.line / .bar / .doughnut, never through `new Chart` directly, so the
// conventions below hold on every page (tests/e2e/test_charts.py checks it):
//   - axis titles carry their unit; a time axis names the timezone it is drawn in
//     (the user's, from <html data-tz>), and its ticks and tooltips use it;
//   - counts get integer ticks; lines are straight (no spline overshoot);
//   - points are visible when a series is sparse (few points, or isolated between gaps);
//   - markers (alerts) and threshold lines are drawn over the data and never clipped;
//   - time series get a range picker; no data gives a "no data yet" text, not a blank box;
//   - a colour-blind-safe palette (Okabe & Ito) with dash patterns beyond the first colours;
//   - the numbers are always available as a table (a <details> under the chart).
//
// Markup: a canvas inside <div class="chart-box">, inside any container (a <figure
// class="chart"> is the usual one). The wrapper adds the range picker, the empty
// state and the table around the box.
(function () {
  "use strict";

  // Okabe & Ito (2008), reordered so the first colours contrast best on white.
  const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#8C6D00"];
  const DASHES = [[], [], [], [], [6, 3], [2, 2], [8, 3, 2, 3], [4, 4]];
  const NAMED = { blue: 0, orange: 1, green: 2, red: 3, purple: 4, sky: 5, black: 6, ochre: 7 };
  // Marker states: colour AND shape, so they differ without colour vision too.
  const MARKER = {
    firing: { colour: "#D55E00", style: "triangle" },
    pending: { colour: "#E69F00", style: "rectRot" },
    resolved: { colour: "#009E73", style: "circle" },
    acknowledged: { colour: "#0072B2", style: "rect" },
    silenced: { colour: "#6b7280", style: "crossRot" },
  };
  const SPARSE = 48; // at or under this many points a line shows its points
  const handles = new WeakMap();

  function colour(i, name) {
    if (name && name in NAMED) return PALETTE[NAMED[name]];
    if (name && name.startsWith("#")) return name;
    return PALETTE[i % PALETTE.length];
  }

  function timezone() {
    const tz = document.documentElement.dataset.tz || Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    try { new Intl.DateTimeFormat("en-GB", { timeZone: tz }); return tz; } catch (e) { return "UTC"; }
  }

  // One date format across the suite (the server's is "6 Dec 2026, 14:05" too).
  function dateFormatter(withTime, withYear, tz) {
    const opts = { timeZone: tz || timezone(), day: "numeric", month: "short" };
    if (withYear) opts.year = "numeric";
    if (withTime) Object.assign(opts, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    const f = new Intl.DateTimeFormat("en-GB", opts);
    return (ms) => f.format(new Date(ms));
  }

  function toMs(v) { return typeof v === "number" ? v : Date.parse(v); }
  function isNum(v) { return typeof v === "number" && isFinite(v); }
  function yOf(v) { return v !== null && typeof v === "object" ? v.y : v; }

  function axisTitle(axis, time) {
    if (!axis) return "";
    let t = axis.title || "";
    if (axis.unit) t += ` (${axis.unit})`;
    if (time) t += ` (${axis.tz || timezone()})`;
    return t;
  }

  // ---- the view of a spec that is drawn: the picked time range applied -------------
  function visible(spec, rangeMs) {
    const labels = spec.labels || [];
    let from = 0;
    if (spec.x && spec.x.time && rangeMs && labels.length) {
      const last = toMs(labels[labels.length - 1]);
      while (from < labels.length && toMs(labels[from]) <= last - rangeMs) from++;
    }
    const cut = (arr) => (spec.x && spec.x.linear ? arr : arr.slice(from));
    return {
      labels: spec.x && spec.x.linear ? labels : labels.slice(from),
      series: (spec.series || []).map((s) => ({ ...s, data: cut(s.data || []) })),
      markers: (spec.markers || []).filter((m) => m.index === undefined || m.index >= from)
        .map((m) => (m.index === undefined ? m : { ...m, index: m.index - from })),
    };
  }

  function isEmpty(spec, view) {
    const values = view.series.flatMap((s) => s.data.map(yOf));
    if (!values.some(isNum)) return true;
    // Nothing counted yet (all zero) is "no data", for counts and shares of a whole.
    if (spec.kind === "doughnut" || (spec.y && spec.y.integer)) return !values.some((v) => v > 0);
    return false;
  }

  // ---- Chart.js configuration ------------------------------------------------------
  function scale(axis, opts) {
    const s = {
      title: { display: !!axisTitle(axis, opts.time), text: axisTitle(axis, opts.time) },
      ticks: {},
      grid: {},
    };
    if (!axis) return s;
    if (axis.integer) { s.ticks.precision = 0; s.beginAtZero = true; s.suggestedMax = 1; }
    if (axis.min !== undefined) s.min = axis.min;
    if (axis.max !== undefined) s.max = axis.max;
    if (axis.suggestedMax !== undefined) s.suggestedMax = axis.suggestedMax;
    if (axis.beginAtZero) s.beginAtZero = true;
    if (axis.percent) s.ticks.callback = (v) => `${Math.round(v * 100)}%`;
    return s;
  }

  function pointRadius(n, base) {
    // Isolated points (gaps both sides) are invisible as a line, so they always show.
    return (ctx) => {
      const d = ctx.dataset.data, i = ctx.dataIndex;
      if (!isNum(yOf(d[i]))) return 0;
      const lone = !isNum(yOf(d[i - 1])) && !isNum(yOf(d[i + 1]));
      return lone ? Math.max(base, 3) : base;
    };
  }

  function lineDatasets(spec, view) {
    const n = view.labels.length || Math.max(0, ...view.series.map((s) => s.data.length));
    const base = n <= SPARSE ? 3 : 0;
    const sets = view.series.map((s, i) => {
      const c = colour(i, s.colour);
      return {
        type: "line", label: s.label, data: s.data, borderColor: c, backgroundColor: c,
        borderWidth: 2, borderDash: s.dash || DASHES[i % DASHES.length],
        tension: 0, cubicInterpolationMode: "default", stepped: false,
        spanGaps: !!s.spanGaps, pointRadius: pointRadius(n, base), pointHoverRadius: 5, pointHitRadius: 6,
        fill: false,
      };
    });
    if (spec.markers) {
      const values = view.labels.map(() => null), colours = view.labels.map(() => "#000");
      const styles = view.labels.map(() => "triangle"), notes = view.labels.map(() => "");
      for (const m of view.markers) {
        if (m.index < 0 || m.index >= view.labels.length) continue;
        const look = MARKER[m.state] || MARKER.firing;
        values[m.index] = isNum(m.value) ? m.value : 0;
        colours[m.index] = look.colour;
        styles[m.index] = look.style;
        notes[m.index] = notes[m.index] ? `${notes[m.index]}; ${m.note || ""}` : (m.note || "");
      }
      sets.push({
        type: "line", label: spec.markerLabel || "alerts", data: values, showLine: false,
        pointStyle: styles, pointRadius: 8, pointHoverRadius: 10, pointBorderWidth: 1.5,
        pointBackgroundColor: colours, borderColor: colours, backgroundColor: colours,
        clip: false, order: -1, notes: notes, aigcMarkers: true,
      });
    }
    return sets;
  }

  // Threshold lines: dashed, labelled, drawn after the data and outside the clip area.
  const thresholdPlugin = {
    id: "aigcThresholds",
    afterDatasetsDraw(chart) {
      const list = (chart.$aigc && chart.$aigc.spec.thresholds) || [];
      const { ctx, chartArea: area } = chart;
      for (const t of list) {
        const sc = chart.scales[t.axis || "x"];
        if (!sc) continue;
        const px = sc.getPixelForValue(t.value);
        if (!isNum(px)) continue;
        ctx.save();
        ctx.strokeStyle = t.colour || "#111827";
        ctx.fillStyle = t.colour || "#111827";
        ctx.lineWidth = 1.5;
        ctx.setLineDash([5, 4]);
        ctx.beginPath();
        if ((t.axis || "x") === "x") { ctx.moveTo(px, area.top); ctx.lineTo(px, area.bottom); }
        else { ctx.moveTo(area.left, px); ctx.lineTo(area.right, px); }
        ctx.stroke();
        if (t.label) {
          ctx.setLineDash([]);
          ctx.font = "12px system-ui, sans-serif";
          const w = ctx.measureText(t.label).width;
          if ((t.axis || "x") === "x") {
            const x = Math.min(Math.max(px + 4, area.left), area.right - w);
            ctx.fillText(t.label, x, area.top + 12);
          } else {
            ctx.fillText(t.label, area.right - w, Math.max(px - 4, area.top + 12));
          }
        }
        ctx.restore();
      }
    },
  };

  function config(kind, spec, view, width) {
    const time = !!(spec.x && spec.x.time);
    const linear = !!(spec.x && spec.x.linear);
    const labels = view.labels;
    let fmtTick = null, fmtFull = null;
    if (time) {
      const ms = labels.map(toMs);
      const step = ms.length > 1 ? Math.min(...ms.slice(1).map((v, i) => v - ms[i])) : 86400000;
      const daily = step >= 86400000;
      fmtTick = dateFormatter(!daily, false, spec.x.tz);
      fmtFull = dateFormatter(!daily, true, spec.x.tz);
    }
    const horizontal = kind === "bar" && spec.horizontal;
    const xs = scale(spec.x, { time }), ys = scale(spec.y, {});
    const opts = { width };
    if (time) {
      xs.ticks.callback = function (v) { return fmtTick(toMs(labels[v])); };
      // about one date label per 110 px, so they never run into each other on a phone
      xs.ticks.maxTicksLimit = Math.max(2, Math.min(8, Math.floor((opts.width || 800) / 110)));
      xs.ticks.maxRotation = 0;
      xs.ticks.autoSkip = true;
      xs.ticks.autoSkipPadding = 16;
    }
    if (linear) xs.type = "linear";
    const options = {
      responsive: true, maintainAspectRatio: false, animation: false,
      interaction: { mode: kind === "doughnut" ? "point" : "nearest", intersect: kind === "doughnut", axis: horizontal ? "y" : "x" },
      layout: { padding: { top: spec.markers ? 14 : 6, right: 12, left: 4 } },
      plugins: {
        legend: { display: kind === "doughnut" || view.series.length > 1 || !!spec.markers, position: "bottom",
          labels: { usePointStyle: true, boxWidth: 10 } },
        tooltip: { callbacks: {
          title: (items) => (time && items.length ? fmtFull(toMs(labels[items[0].dataIndex])) : undefined),
          afterLabel: (ctx) => (ctx.dataset.notes || [])[ctx.dataIndex] || "",
        } },
      },
    };
    if (kind !== "doughnut") options.scales = horizontal ? { x: ys, y: xs } : { x: xs, y: ys };
    if (horizontal) options.indexAxis = "y";
    if (spec.markers && options.scales) options.scales.y.grace = "10%";
    if (spec.thresholds && options.scales) {
      for (const t of spec.thresholds) {
        const s = options.scales[t.axis || "x"];
        if (s && isNum(t.value) && (s.type === "linear" || (t.axis || "x") === "y")) {
          s.suggestedMin = Math.min(s.suggestedMin ?? t.value, t.value);
          s.suggestedMax = Math.max(s.suggestedMax ?? t.value, t.value);
        }
      }
    }
    let datasets;
    if (kind === "line") datasets = lineDatasets(spec, view);
    else if (kind === "bar") {
      datasets = view.series.map((s, i) => {
        const c = colour(i, s.colour);
        // light: a second metric of the same system, the same hue at a third of the ink
        return { label: s.label, data: s.data, backgroundColor: s.light ? c + "55" : c,
          borderColor: c, borderWidth: 1, stack: s.stack };
      });
    } else {
      datasets = view.series.map((s) => ({
        label: s.label, data: s.data, backgroundColor: (s.colours || []).map((c, i) => colour(i, c)),
        borderColor: "#fff", borderWidth: 2,
      }));
      datasets.forEach((d, j) => {
        if (!d.backgroundColor.length) d.backgroundColor = labels.map((_, i) => colour(i));
      });
    }
    return {
      type: kind === "line" ? "line" : kind,
      data: { labels: linear ? undefined : labels.map(String), datasets },
      options, plugins: [thresholdPlugin],
    };
  }

  // ---- the table of numbers --------------------------------------------------------
  function fmtNum(v) {
    if (!isNum(v)) return "–";
    return Number.isInteger(v) ? String(v) : String(Math.round(v * 1000) / 1000);
  }

  function table(spec, view) {
    const t = document.createElement("table");
    t.className = "table compact";
    const cap = document.createElement("caption");
    cap.textContent = spec.title || "Chart data";
    t.appendChild(cap);
    const head = t.createTHead().insertRow();
    const time = !!(spec.x && spec.x.time);
    const ms = time ? view.labels.map(toMs) : [];
    const daily = ms.length > 1 && Math.min(...ms.slice(1).map((v, i) => v - ms[i])) >= 86400000;
    const full = time ? dateFormatter(!daily, true, spec.x.tz) : null;
    const th = (text) => { const c = document.createElement("th"); c.scope = "col"; c.textContent = text; head.appendChild(c); };
    th(axisTitle(spec.x, time) || (spec.kind === "doughnut" ? "category" : "x"));
    for (const s of view.series) th(s.label + (spec.y && spec.y.unit ? ` (${spec.y.unit})` : ""));
    if (spec.markers) th(spec.markerLabel || "alerts");
    const body = t.createTBody();
    let rows;
    if (spec.x && spec.x.linear) {
      const xs = [...new Set(view.series.flatMap((s) => s.data.map((p) => p.x)))].sort((a, b) => a - b);
      rows = xs.map((x) => [fmtNum(x), ...view.series.map((s) => fmtNum(yOf((s.data.find((p) => p.x === x)) || null)))]);
    } else {
      rows = view.labels.map((l, i) => {
        const cells = [time ? full(toMs(l)) : String(l), ...view.series.map((s) => fmtNum(yOf(s.data[i])))];
        if (spec.markers) cells.push(view.markers.filter((m) => m.index === i).map((m) => m.note || m.state).join("; "));
        return cells;
      });
    }
    for (const r of rows) {
      const tr = body.insertRow();
      r.forEach((text, j) => {
        const c = document.createElement(j === 0 ? "th" : "td");
        if (j === 0) c.scope = "row";
        c.textContent = text;
        tr.appendChild(c);
      });
    }
    return t;
  }

  // ---- the range picker ------------------------------------------------------------
  const HOUR = 3600000, DAY = 24 * HOUR;
  const RANGES = [
    { label: "24 h", ms: DAY }, { label: "3 days", ms: 3 * DAY }, { label: "7 days", ms: 7 * DAY },
    { label: "30 days", ms: 30 * DAY }, { label: "90 days", ms: 90 * DAY },
  ];

  function rangeChoices(spec) {
    const labels = spec.labels || [];
    if (labels.length < 2) return [];
    const span = toMs(labels[labels.length - 1]) - toMs(labels[0]);
    const step = toMs(labels[1]) - toMs(labels[0]);
    return (spec.ranges || RANGES).filter((r) => r.ms < span && r.ms >= 2 * step);
  }

  // ---- one chart -------------------------------------------------------------------
  class Handle {
    constructor(kind, canvas, spec) {
      this.kind = kind;
      this.canvas = canvas;
      this.box = canvas.closest(".chart-box") || canvas.parentElement;
      this.host = this.box.parentElement;
      this.host.classList.add("chart");
      this.chart = null;
      this.rangeMs = null; // null: everything
      const id = canvas.id || "chart";
      this.picker = document.createElement("div");
      this.picker.className = "chart-range";
      this.picker.setAttribute("role", "group");
      this.picker.setAttribute("aria-label", "Time range");
      this.empty = document.createElement("p");
      this.empty.className = "chart-empty muted";
      this.empty.setAttribute("role", "status");
      this.details = document.createElement("details");
      this.details.className = "chart-data";
      const summary = document.createElement("summary");
      summary.textContent = "Show the numbers";
      this.details.appendChild(summary);
      this.tableBox = document.createElement("div");
      this.tableBox.className = "table-scroll";
      this.tableBox.id = `${id}-table`;
      this.details.appendChild(this.tableBox);
      this.box.before(this.picker);
      this.box.after(this.empty, this.details);
      canvas.setAttribute("role", "img");
      this.update(spec);
    }

    update(spec) {
      this.spec = { ...spec, kind: this.kind };
      const time = !!(spec.x && spec.x.time);
      this.renderPicker(time ? rangeChoices(spec) : []);
      const view = visible(this.spec, this.rangeMs);
      const empty = isEmpty(this.spec, view);
      this.host.dataset.state = empty ? "empty" : "drawn";
      this.canvas.dataset.points = String(view.labels.length || (view.series[0] ? view.series[0].data.length : 0));
      this.canvas.dataset.alerts = String((view.markers || []).length);
      this.box.hidden = empty;
      this.details.hidden = empty;
      this.empty.hidden = !empty;
      const rangeEmpty = empty && (spec.labels || []).length > view.labels.length;
      this.empty.textContent = rangeEmpty ? "No data in this time range." : (spec.empty || "No data yet.");
      this.canvas.setAttribute("aria-label",
        `${spec.title || "Chart"}. The numbers are in the table "Show the numbers" below the chart.`);
      this.tableBox.replaceChildren(table(this.spec, view));
      if (empty) {
        if (this.chart) { this.chart.destroy(); this.chart = null; }
        return this;
      }
      const cfg = config(this.kind, this.spec, view, this.box.clientWidth);
      if (this.chart && this.chart.config.type === cfg.type) {
        this.chart.data = cfg.data;
        this.chart.options = cfg.options;
        this.chart.update("none");
      } else {
        if (this.chart) this.chart.destroy();
        this.chart = new Chart(this.canvas, cfg);
      }
      this.chart.$aigc = this; // marks a chart made by the wrapper (the tests look for it)
      return this;
    }

    renderPicker(choices) {
      this.picker.hidden = !choices.length;
      if (!choices.length) { this.picker.replaceChildren(); return; }
      if (this.rangeMs && !choices.some((c) => c.ms === this.rangeMs)) this.rangeMs = null;
      const all = [...choices, { label: "All", ms: null }];
      const key = all.map((c) => c.label).join("|");
      if (this.picker.dataset.key !== key) {
        this.picker.dataset.key = key;
        this.picker.replaceChildren(...all.map((c) => {
          const b = document.createElement("button");
          b.type = "button";
          b.className = "secondary small";
          b.textContent = c.label;
          b.dataset.ms = c.ms === null ? "" : String(c.ms);
          b.addEventListener("click", () => { this.rangeMs = c.ms; this.update(this.spec); });
          return b;
        }));
      }
      for (const b of this.picker.querySelectorAll("button")) {
        b.setAttribute("aria-pressed", String(b.dataset.ms === (this.rangeMs === null ? "" : String(this.rangeMs))));
      }
    }

    destroy() {
      if (this.chart) this.chart.destroy();
      this.chart = null;
      this.picker.remove(); this.empty.remove(); this.details.remove();
      this.box.hidden = false;
      handles.delete(this.canvas);
    }
  }

  function make(kind) {
    return (target, spec) => {
      const canvas = typeof target === "string" ? document.getElementById(target) : target;
      if (!canvas) return null;
      if (typeof Chart === "undefined") { console.error("charts.js: Chart.js is not loaded"); return null; }
      const old = handles.get(canvas);
      if (old && old.kind === kind) return old.update(spec);
      if (old) old.destroy();
      const h = new Handle(kind, canvas, spec);
      handles.set(canvas, h);
      return h;
    };
  }

  window.AigcCharts = {
    line: make("line"),
    bar: make("bar"),
    doughnut: make("doughnut"),
    get: (target) => handles.get(typeof target === "string" ? document.getElementById(target) : target) || null,
    palette: PALETTE.slice(),
    timezone,
    formatDate: (v, withTime = true) => dateFormatter(withTime, true)(toMs(v)),
  };
})();
