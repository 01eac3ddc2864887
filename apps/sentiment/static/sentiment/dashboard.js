// Sentiment dashboard charts: per-topic timelines from /sentiment/timeline.json with
// alert markers, drawn through the suite's one chart wrapper (common/charts.js) and
// refreshed every 30 s without reloading the page (the picked time range is kept).
(function () {
  "use strict";
  const canvas = document.getElementById("timeline");
  if (!canvas || !window.AigcCharts) return;
  const sizeSel = document.getElementById("timeline-size");
  const metricSel = document.getElementById("timeline-metric");
  const METRICS = {
    negative_count: { title: "negative news items", unit: "count", integer: true },
    negative_share: { title: "negative share of news", percent: true, min: 0, max: 1 },
    count: { title: "news items", unit: "count", integer: true },
  };
  const BUCKET = { "5m": "5-minute bucket", "15m": "15-minute bucket", "1h": "hour", "1d": "day" };
  let last = null;

  function render(data) {
    const metric = metricSel.value in METRICS ? metricSel.value : "negative_count";
    const x = { title: BUCKET[data.size] || "bucket start", time: true };
    AigcCharts.line(canvas, {
      title: `${METRICS[metric].title} per topic`,
      labels: data.starts, x, y: METRICS[metric],
      series: data.series.map((s) => ({ label: s.key, data: s[metric] })),
      markers: data.alerts.map((a) => {
        const s = data.series.find((k) => k.key === a.key);
        return { index: a.index, value: s ? s[metric][a.index] : 0, state: a.state,
          note: `${a.state}: ${a.rule} (${a.key})` };
      }),
      markerLabel: "alerts",
      empty: "No news yet: the timeline starts with the first classified item.",
    });
    AigcCharts.line("mood", {
      title: "Mean sentiment per topic",
      labels: data.starts, x,
      y: { title: "mean sentiment (−1 negative, +1 positive)", min: -1, max: 1 },
      // no news in a bucket is a gap, not "neutral"; isolated points still show
      series: data.series.map((s) => ({ label: s.key, data: s.mean_sentiment })),
      empty: "No classified news yet.",
    });
  }

  function load() {
    const url = `${canvas.dataset.url}?size=${encodeURIComponent(sizeSel.value)}`;
    fetch(url, { credentials: "same-origin" })
      .then((r) => { if (!r.ok) throw new Error(`timeline: HTTP ${r.status}`); return r.json(); })
      .then((data) => { last = data; render(data); })
      .catch((err) => console.warn("timeline", err));
  }
  sizeSel.addEventListener("change", load);
  metricSel.addEventListener("change", () => { if (last) render(last); });
  load();
  setInterval(load, 30000);
})();

// The feed refreshes every 5 s, except while a label is being edited (a focused select or a
// changed row): cancelled here, not in an hx-trigger filter, which htmx would eval (CSP forbids it).
document.addEventListener("htmx:beforeRequest", function (ev) {
  if (ev.target.id === "feed" && document.querySelector("#feed select:focus, #feed .dirty")) ev.preventDefault();
});
