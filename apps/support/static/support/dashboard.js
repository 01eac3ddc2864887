// Support dashboard charts, drawn through the suite's one chart wrapper (common/charts.js).
(function () {
  "use strict";
  const el = document.getElementById("support-chart-data");
  if (!el || !window.AigcCharts) return;
  const data = JSON.parse(el.textContent);
  const m = data.metrics;
  AigcCharts.line("chart-daily", {
    title: "Conversations and hand-offs per day",
    labels: m.daily.map((d) => d.day),
    x: { title: "day", time: true, tz: "UTC" },  // days are counted in UTC by services.dashboard_metrics
    y: { title: "conversations", unit: "count", integer: true },
    series: [
      { label: "conversations", data: m.daily.map((d) => d.conversations) },
      { label: "hand-offs", data: m.daily.map((d) => d.handoffs), colour: "orange" },
    ],
    empty: "No conversations yet.",
  });
  AigcCharts.bar("chart-intents", {
    title: "Top intents answered by the bot",
    horizontal: true,
    labels: m.top_intents.map((r) => r[0]),
    x: { title: "intent" },
    y: { title: "bot answers", unit: "count", integer: true },
    series: [{ label: "bot answers", data: m.top_intents.map((r) => r[1]) }],
    empty: "No bot answers yet.",
  });
  AigcCharts.doughnut("chart-ratings", {
    title: "Ratings of bot answers",
    labels: ["thumbs up", "thumbs down"],
    x: { title: "rating" },
    series: [{ label: "ratings", data: [m.thumbs_up, m.thumbs_down], colours: ["blue", "red"] }],
    empty: "No ratings yet.",
  });
  if (document.getElementById("chart-curve")) {
    const curve = data.curve || [];
    AigcCharts.line("chart-curve", {
      title: "Precision and coverage by confidence threshold (held-out questions)",
      x: { title: "confidence threshold", linear: true, min: 0, max: 1 },
      y: { title: "share of held-out questions", percent: true, min: 0, max: 1 },
      series: [
        { label: "precision", data: curve.map((p) => ({ x: p.threshold, y: p.precision })), colour: "green" },
        { label: "coverage", data: curve.map((p) => ({ x: p.threshold, y: p.coverage })) },
      ],
      thresholds: [{ axis: "x", value: data.threshold, label: `current ${data.threshold.toFixed(2)}` }],
      empty: "Train a model to see its curve.",
    });
  }
})();
