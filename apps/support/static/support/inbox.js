// Conversation page. "Use" copies an agent-assist suggestion into the reply box;
// a reply that was sent clears the box (kept here, not inline, for the CSP).
document.addEventListener("click", function (ev) {
  const btn = ev.target.closest(".use-suggestion");
  if (!btn) return;
  const box = document.getElementById("reply-text");
  box.value = btn.dataset.text;
  box.focus();
});
document.body.addEventListener("htmx:afterRequest", function (ev) {
  const form = document.getElementById("reply-form");
  if (form && ev.detail.elt === form && ev.detail.successful) form.reset();
});
