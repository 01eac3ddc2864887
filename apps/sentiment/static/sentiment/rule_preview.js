// Rules editor preview: POST the unsaved form to /sentiment/rules/preview/, draw what the
// rule would have fired over the stored buckets (the same replay the live evaluator runs).
// Kept in one file so it can move onto the shared chart wrapper (common/charts.js) as is.
(function () {
  "use strict";
  const btn = document.getElementById("rule-preview-btn");
  const form = document.getElementById("rule-form");
  if (!btn || !form) return;
  const box = document.getElementById("rule-preview");
  const summary = document.getElementById("rule-preview-summary");
  const keySel = document.getElementById("rule-preview-key");
  const tbody = document.querySelector("#rule-preview-alerts tbody");
  let data = null, chart = null;

  function cell(tr, text) { const td = document.createElement("td"); td.textContent = text; tr.appendChild(td); }

  function draw() {
    const k = data.keys.find((x) => x.key === keySel.value);
    if (!k || typeof Chart === "undefined") return;
    const markers = k.values.map(() => null);
    for (const a of k.alerts) markers[a.index] = k.values[a.index];
    const labels = k.starts.map((s) => s.slice(5, 16).replace("T", " "));
    const cfg = {
      type: "line",
      data: { labels, datasets: [
        { label: `${k.key} per ${data.window} window`, data: k.values, borderColor: "#2563eb", borderWidth: 1,
          pointRadius: k.values.length < 200 ? 2 : 0, tension: 0, stepped: false },
        { label: "busiest-1% level", data: k.levels, borderColor: "#9ca3af", borderDash: [4, 3], borderWidth: 1,
          pointRadius: 0, tension: 0 },
        { label: "alerts", data: markers, showLine: false, pointStyle: "triangle", pointRadius: 8,
          backgroundColor: "#b91c1c", borderColor: "#b91c1c", clip: false },
      ] },
      options: { animation: false, responsive: true, interaction: { mode: "index", intersect: false },
        scales: { x: { title: { display: true, text: "window start (UTC)" }, ticks: { maxTicksLimit: 12 } },
                  y: { beginAtZero: true, title: { display: true, text: "items per window" } } } },
    };
    if (chart) chart.destroy();
    chart = new Chart(document.getElementById("rule-preview-chart"), cfg);
  }

  btn.addEventListener("click", async () => {
    summary.textContent = "Replaying the stored history…";
    box.hidden = false;
    const resp = await fetch(btn.dataset.url, { method: "POST", body: new FormData(form),
      headers: { "X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value } });
    const body = await resp.json();
    if (!resp.ok) { summary.textContent = `${body.detail}: ${JSON.stringify(body.errors || {})}`; return; }
    data = body;
    summary.textContent = data.keys.length
      ? `${data.alerts} alerts over ${data.weeks} weeks of stored windows: ${data.alerts_per_week} per week.`
      : "No stored windows for this scope and key yet.";
    keySel.replaceChildren(...data.keys.map((k) => new Option(`${k.key} (${k.alerts.length})`, k.key)));
    const busiest = data.keys.slice().sort((a, b) => b.alerts.length - a.alerts.length)[0];
    if (busiest) keySel.value = busiest.key;
    tbody.replaceChildren();
    for (const k of data.keys) for (const a of k.alerts) {
      const tr = document.createElement("tr");
      cell(tr, k.key); cell(tr, a.started_at.slice(0, 16).replace("T", " "));
      cell(tr, a.resolved_at ? a.resolved_at.slice(0, 16).replace("T", " ") : "open"); cell(tr, String(a.updates));
      cell(tr, a.explanation); tbody.appendChild(tr);
    }
    draw();
  });
  keySel.addEventListener("change", draw);
})();
