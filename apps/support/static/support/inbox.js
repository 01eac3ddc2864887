// Agent-assist: "Use" copies a suggestion into the reply box.
document.addEventListener("click", function (ev) {
  const btn = ev.target.closest(".use-suggestion");
  if (!btn) return;
  const box = document.getElementById("reply-text");
  box.value = btn.dataset.text;
  box.focus();
});

// A reply form marked data-reset-on-success empties once htmx has sent it (was an inline hx-on,
// which needs eval and so breaks under the Content-Security-Policy).
document.addEventListener("htmx:afterRequest", function (ev) {
  const form = ev.target.closest && ev.target.closest("form[data-reset-on-success]");
  if (form && ev.target === form && ev.detail.successful) form.reset();
});
