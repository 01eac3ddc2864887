// Offline metrics per model version: the model against the baselines measured in the
// same run, drawn through the suite's one chart wrapper (common/charts.js).
// Solid bars: recall@10; light bars of the same colour: nDCG@10.
(function () {
  "use strict";
  const canvas = document.getElementById("metrics-chart");
  const dataEl = document.getElementById("chart-data");
  if (!canvas || !dataEl || !window.AigcCharts) return;
  const data = JSON.parse(dataEl.textContent);
  const colours = { popularity: "black", text_only: "orange", two_tower: "sky", model: "blue" };
  window.recommendChart = AigcCharts.bar(canvas, {
    title: "recall@10 and nDCG@10 per version and system (held-out users, time split)",
    labels: data.labels,
    x: { title: "model version" },
    y: { title: "score on held-out users", unit: "0–1", min: 0, suggestedMax: 0.5 },
    series: Object.entries(data.series).map(([name, values]) => {
      const [system, metric] = name.split(" ");
      return { label: name, data: values, stack: metric + system, colour: colours[system],
        light: metric.startsWith("ndcg") };
    }),
    empty: "No versions yet. Train one above.",
  }).chart;
})();
