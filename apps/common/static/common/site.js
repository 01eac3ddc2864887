// Behaviour shared by every staff page (no inline scripts: the CSP allows only files).
//   <button data-copy="#id">   copies the target's text (secrets shown once) and says so;
//   <form data-confirm="...">  asks before a destructive action is sent;
//   <select data-autosubmit>   submits its form when changed (keyboard: change fires on commit).
(function () {
  "use strict";

  function announce(btn, text) {
    const old = btn.dataset.label || btn.textContent;
    btn.dataset.label = old;
    const status = btn.parentElement.querySelector(".copy-status") || btn;
    status.textContent = text;
    setTimeout(() => { if (status === btn) btn.textContent = old; else status.textContent = ""; }, 2500);
  }

  function copy(btn) {
    const target = document.querySelector(btn.dataset.copy);
    if (!target) return;
    const text = (target.value !== undefined ? target.value : target.textContent).trim();
    const done = () => announce(btn, "Copied");
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, () => fallback(target, text, btn));
    } else {
      fallback(target, text, btn);
    }
  }

  function fallback(target, text, btn) {
    // Plain http on localhost has no clipboard API: select the text, let the user press Ctrl+C too.
    const range = document.createRange();
    range.selectNodeContents(target);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    announce(btn, ok ? "Copied" : "Selected: press Ctrl+C");
  }

  document.addEventListener("click", (ev) => {
    const btn = ev.target.closest("[data-copy]");
    if (btn) { ev.preventDefault(); copy(btn); }
  });

  document.addEventListener("submit", (ev) => {
    const form = ev.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) ev.preventDefault();
  }, true);

  // A form being edited is marked, so htmx polling does not swap it away (the feed).
  document.addEventListener("change", (ev) => {
    const form = ev.target.closest("form[data-track-dirty]");
    if (form) form.classList.add("dirty");
  });

  document.addEventListener("change", (ev) => {
    const sel = ev.target.closest("select[data-autosubmit]");
    if (sel && sel.form) sel.form.requestSubmit();
  });

  // A table wider than a phone scrolls inside itself; a keyboard user must be able to
  // focus it to scroll it (WCAG 2.1.1), so it takes a tab stop only while it overflows.
  function markScrollable() {
    for (const t of document.querySelectorAll("table.table:not(.stack)")) {
      if (t.scrollWidth > t.clientWidth + 1) {
        t.tabIndex = 0;
        if (!t.hasAttribute("aria-label") && !t.querySelector("caption")) t.setAttribute("aria-label", "table, scrolls sideways");
      } else if (t.tabIndex === 0) {
        t.removeAttribute("tabindex");
      }
    }
  }
  document.addEventListener("DOMContentLoaded", markScrollable);
  document.addEventListener("htmx:afterSettle", markScrollable);
  window.addEventListener("resize", markScrollable);
})();
