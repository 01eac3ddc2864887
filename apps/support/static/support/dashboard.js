// Support dashboard charts (Chart.js from the vendored static path).
(function () {
  const el = document.getElementById("support-chart-data");
  if (!el || typeof Chart === "undefined") return;
  const data = JSON.parse(el.textContent);
  const m = data.metrics;
  const mk = (id, cfg) => { const c = document.getElementById(id); if (c) new Chart(c, cfg); };
  mk("chart-daily", {
    type: "line",
    data: { labels: m.daily.map(d => d.day.slice(5)), datasets: [
      { label: "conversations", data: m.daily.map(d => d.conversations), borderColor: "#2563eb", tension: .2 },
      { label: "hand-offs", data: m.daily.map(d => d.handoffs), borderColor: "#b45309", tension: .2 } ] },
    options: { maintainAspectRatio: false, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
  mk("chart-intents", {
    type: "bar",
    data: { labels: m.top_intents.map(r => r[0]), datasets: [{ label: "bot answers", data: m.top_intents.map(r => r[1]), backgroundColor: "#60a5fa" }] },
    options: { indexAxis: "y", maintainAspectRatio: false, plugins: { legend: { display: false } } },
  });
  mk("chart-ratings", {
    type: "doughnut",
    data: { labels: ["thumbs up", "thumbs down"], datasets: [{ data: [m.thumbs_up, m.thumbs_down], backgroundColor: ["#22c55e", "#ef4444"] }] },
    options: { maintainAspectRatio: false },
  });
  if (data.curve && data.curve.length) {
    mk("chart-curve", {
      type: "line",
      data: { labels: data.curve.map(p => p.threshold.toFixed(2)), datasets: [
        { label: "precision", data: data.curve.map(p => p.precision), borderColor: "#15803d" },
        { label: "coverage", data: data.curve.map(p => p.coverage), borderColor: "#2563eb" } ] },
      options: { maintainAspectRatio: false, scales: { y: { min: 0, max: 1 }, x: { title: { display: true, text: "threshold (current " + data.threshold.toFixed(2) + ")" } } } },
    });
  }
})();
