// Offline metrics per model version: the model against the baselines of the same run.
(function () {
  const canvas = document.getElementById("metrics-chart");
  const dataEl = document.getElementById("chart-data");
  if (!canvas || !dataEl || typeof Chart === "undefined") return;
  const data = JSON.parse(dataEl.textContent);
  const colours = { popularity: "#9ca3af", text_only: "#f59e0b", two_tower: "#60a5fa", model: "#2563eb" };
  const datasets = Object.entries(data.series).map(([name, values]) => {
    const [system, metric] = name.split(" ");
    return {
      label: name, data: values, borderColor: colours[system], backgroundColor: colours[system],
      borderDash: metric.startsWith("ndcg") ? [6, 4] : [], spanGaps: true, tension: 0.2,
    };
  });
  new Chart(canvas, {
    type: "line",
    data: { labels: data.labels, datasets },
    options: { maintainAspectRatio: false, scales: { y: { min: 0, max: 1 } }, plugins: { legend: { position: "right" } } },
  });
})();
