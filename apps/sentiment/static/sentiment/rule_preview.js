// Rules editor preview: POST the unsaved form to /sentiment/rules/preview/, draw what the
// rule would have fired over the stored buckets (the same replay the live evaluator runs).
// Drawn through the suite's one chart wrapper (common/charts.js).
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
    if (!k || !window.AigcCharts) return;
    AigcCharts.line("rule-preview-chart", {
      title: `${k.key}: what the rule would have fired`,
      labels: k.starts, x: { title: `${data.window} window start`, time: true },
      y: { title: "items per window", unit: "count", integer: true },
      series: [
        { label: `${k.key} per ${data.window} window`, data: k.values },
        { label: "busiest-1% level", data: k.levels },
      ],
      markers: k.alerts.map((a) => ({ index: a.index, value: k.values[a.index], state: "firing",
        note: a.explanation })),
      markerLabel: "alerts",
      empty: "No stored windows for this scope and key yet.",
    });
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
