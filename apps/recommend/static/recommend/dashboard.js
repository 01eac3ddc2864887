// Offline metrics per model version: the model against the baselines measured in the same run.
// Solid bars: recall@10; light bars: nDCG@10.
(function () {
  const canvas = document.getElementById("metrics-chart");
  const dataEl = document.getElementById("chart-data");
  if (!canvas || !dataEl || typeof Chart === "undefined") return;
  const data = JSON.parse(dataEl.textContent);
  const colours = { popularity: "#9ca3af", text_only: "#f59e0b", two_tower: "#60a5fa", model: "#2563eb" };
  const datasets = Object.entries(data.series).map(([name, values]) => {
    const [system, metric] = name.split(" ");
    const ndcg = metric.startsWith("ndcg");
    return {
      label: name, data: values, stack: metric + system, borderColor: colours[system], borderWidth: 1,
      backgroundColor: ndcg ? colours[system] + "66" : colours[system],
    };
  });
  window.recommendChart = new Chart(canvas, {
    type: "bar",
    data: { labels: data.labels, datasets },
    options: {
      maintainAspectRatio: false, animation: false,
      scales: { y: { min: 0, suggestedMax: 0.5, title: { display: true, text: "on held-out users" } } },
      plugins: { legend: { position: "right" } },
    },
  });
})();
