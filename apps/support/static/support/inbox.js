// Agent-assist: "Use" copies a suggestion into the reply box.
document.addEventListener("click", function (ev) {
  const btn = ev.target.closest(".use-suggestion");
  if (!btn) return;
  const box = document.getElementById("reply-text");
  box.value = btn.dataset.text;
  box.focus();
});
