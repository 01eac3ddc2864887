// Sentiment dashboard charts: per-topic timelines from /sentiment/timeline.json,
// alert markers as triangles, refreshed every 30 s without reloading the page.
(function () {
  "use strict";
  const canvas = document.getElementById("timeline");
  const moodCanvas = document.getElementById("mood");
  if (!canvas || typeof Chart === "undefined") return;
  const sizeSel = document.getElementById("timeline-size");
  const metricSel = document.getElementById("timeline-metric");
  const palette = ["#2563eb", "#b91c1c", "#15803d", "#b45309", "#7c3aed", "#0891b2", "#db2777", "#4b5563",
                   "#65a30d", "#ea580c", "#0f766e", "#9333ea"];
  const stateColor = { firing: "#b91c1c", pending: "#d97706", resolved: "#15803d" };
  let chart = null, mood = null;

  function datasets(data, metric) {
    const lines = data.series.map((s, i) => ({
      type: "line", label: s.key, data: s[metric], borderColor: palette[i % palette.length],
      backgroundColor: palette[i % palette.length], borderWidth: 1.5, pointRadius: 0, tension: 0.2,
    }));
    const markers = data.labels.map(() => null);
    const colors = data.labels.map(() => "#000");
    const notes = data.labels.map(() => "");
    for (const a of data.alerts) {
      const s = data.series.find((x) => x.key === a.key);
      markers[a.index] = s ? s[metric][a.index] : 0;
      colors[a.index] = stateColor[a.state] || "#000";
      notes[a.index] = `${a.state}: ${a.rule} (${a.key})`;
    }
    lines.push({
      type: "line", label: "alerts", data: markers, showLine: false, pointStyle: "triangle", pointRadius: 9,
      pointHoverRadius: 11, pointBackgroundColor: colors, borderColor: colors, notes: notes,
    });
    return lines;
  }

  function render(data) {
    const metric = metricSel.value;
    canvas.dataset.points = String(data.labels.length);
    canvas.dataset.alerts = String(data.alerts.length);
    const options = {
      responsive: true, maintainAspectRatio: false, animation: false, interaction: { mode: "nearest", intersect: false },
      plugins: { tooltip: { callbacks: { afterLabel: (ctx) => (ctx.dataset.notes || [])[ctx.dataIndex] || "" } } },
      scales: { x: { ticks: { maxTicksLimit: 12 } }, y: { beginAtZero: true } },
    };
    if (!chart) {
      chart = new Chart(canvas, { type: "line", data: { labels: data.labels, datasets: datasets(data, metric) }, options });
    } else {
      chart.data.labels = data.labels;
      chart.data.datasets = datasets(data, metric);
      chart.update();
    }
    const moodSets = data.series.map((s, i) => ({
      label: s.key, data: s.mean_sentiment, borderColor: palette[i % palette.length], borderWidth: 1.5,
      pointRadius: 0, tension: 0.2, spanGaps: true,
    }));
    if (!mood) {
      mood = new Chart(moodCanvas, { type: "line", data: { labels: data.labels, datasets: moodSets },
        options: { ...options, scales: { x: options.scales.x, y: { min: -1, max: 1 } } } });
    } else {
      mood.data.labels = data.labels;
      mood.data.datasets = moodSets;
      mood.update();
    }
  }

  let last = null;
  function load() {
    const url = `${canvas.dataset.url}?size=${encodeURIComponent(sizeSel.value)}`;
    fetch(url, { credentials: "same-origin" })
      .then((r) => r.json())
      .then((data) => { last = data; render(data); })
      .catch((err) => console.error("timeline", err));
  }
  sizeSel.addEventListener("change", () => { if (chart) { chart.destroy(); chart = null; } if (mood) { mood.destroy(); mood = null; } load(); });
  metricSel.addEventListener("change", () => { if (last) render(last); });
  load();
  setInterval(load, 30000);
})();

// The feed refreshes every 5 s, except while a label is being edited (a focused select or a
// changed row): cancelled here, not in an hx-trigger filter, which htmx would eval (CSP forbids it).
document.addEventListener("htmx:beforeRequest", function (ev) {
  if (ev.target.id === "feed" && document.querySelector("#feed select:focus, #feed .dirty")) ev.preventDefault();
});
