/* AIGC support widget. Embed with one tag:
 *   <script src="https://support.example.com/static/support/widget.js" data-key="pk_..." defer></script>
 * It adds a launcher and a chat panel inside a Shadow DOM (the host page's styles
 * cannot leak in, ours cannot leak out), streams the bot's replies as they are
 * produced, keeps the visitor's conversation in localStorage across page loads,
 * and shows the hand-off the way a person expects it: a "waiting for a person"
 * state with the expected wait, an acknowledgement of messages sent meanwhile,
 * the agent's name on each reply, the close, and a 1-5 rating of the conversation.
 * Every piece of message text is set with textContent, never innerHTML. Server
 * and network errors are shown to the visitor in plain words; the detail goes to
 * the browser console for the site's developer. */
(function () {
  "use strict";
  var script = document.currentScript || document.querySelector('script[src*="widget.js"][data-key]');
  if (!script || window.__aigcSupportWidget) return;
  window.__aigcSupportWidget = true;
  var KEY = script.getAttribute("data-key");
  var ORIGIN = new URL(script.src, location.href).origin;
  var API = ORIGIN + "/support/api/widget/" + encodeURIComponent(KEY);
  var STORE = "aigc-support:" + KEY;
  var POLL_MS = 3000;
  var SVG = "http://www.w3.org/2000/svg";

  var state = load();
  var rendered = {};
  var pollTimer = null;
  var sending = false;
  var botName = "Support";
  var conv = { status: "bot" };

  function load() {
    try { return JSON.parse(localStorage.getItem(STORE)) || {}; } catch (e) { return {}; }
  }
  function save() {
    try { localStorage.setItem(STORE, JSON.stringify(state)); } catch (e) { /* private mode */ }
  }
  function pageUrl() { return location.origin + location.pathname; }

  // -- DOM -------------------------------------------------------------------
  var host = document.createElement("div");
  host.id = "aigc-support-widget";
  var root = host.attachShadow({ mode: "open" });
  var style = document.createElement("style");
  style.textContent = [
    ":host{all:initial}",
    "*{box-sizing:border-box;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}",
    "button{cursor:pointer}",
    ".launcher{position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;border:0;",
    "background:#1d4ed8;color:#fff;display:flex;align-items:center;justify-content:center;",
    "box-shadow:0 4px 14px rgba(0,0,0,.25);z-index:2147483000}",
    ".launcher:focus-visible,button:focus-visible,input:focus-visible,textarea:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}",
    ".panel{position:fixed;right:20px;bottom:88px;width:360px;max-width:calc(100vw - 40px);height:520px;",
    "max-height:calc(100vh - 120px);background:#fff;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);",
    "display:none;flex-direction:column;overflow:hidden;z-index:2147483001;color:#111827}",
    ".panel.open{display:flex}",
    ".head{background:#1d4ed8;color:#fff;padding:10px 12px;display:flex;gap:8px;align-items:center}",
    ".head .titles{flex:1;min-width:0}.head b{display:block;font-weight:600}",
    ".head .sub{display:block;font-size:12px;opacity:.9}",
    ".head button{background:rgba(255,255,255,.15);border:1px solid rgba(255,255,255,.5);color:#fff;border-radius:6px;padding:4px 8px;font-size:12px}",
    ".head button.close{display:flex;align-items:center;padding:4px}",
    ".banner{display:none;padding:8px 12px;font-size:13px;border-bottom:1px solid #e5e7eb}",
    ".banner.on{display:block}.banner.waiting{background:#fffbeb;color:#78350f}",
    ".banner.agent{background:#ecfdf5;color:#065f46}.banner.closed{background:#f3f4f6;color:#111827}",
    ".dot{display:inline-block;width:8px;height:8px;border-radius:50%;background:#d97706;margin-right:6px;animation:pulse 1.4s infinite}",
    "@keyframes pulse{50%{opacity:.3}}@media (prefers-reduced-motion:reduce){.dot{animation:none}}",
    ".csat{margin-top:6px}.csat .scale{display:flex;gap:4px;margin:4px 0}",
    ".csat .scale button{flex:1;border:1px solid #9ca3af;background:#fff;border-radius:6px;padding:6px 0;color:#111827}",
    ".csat .scale button.chosen{background:#1d4ed8;border-color:#1d4ed8;color:#fff}",
    ".csat textarea{width:100%;border:1px solid #d1d5db;border-radius:6px;padding:6px;resize:vertical;min-height:44px}",
    ".csat .send-rating{margin-top:4px;border:0;background:#1d4ed8;color:#fff;border-radius:6px;padding:6px 10px}",
    ".restart{display:block;margin-top:6px;border:1px solid #1d4ed8;background:#fff;color:#1d4ed8;border-radius:6px;padding:5px 10px}",
    ".log{flex:1;overflow-y:auto;padding:10px;background:#f8fafc}",
    ".msg{max-width:85%;margin:6px 0;padding:8px 10px;border-radius:10px;white-space:pre-wrap;overflow-wrap:anywhere}",
    ".msg.customer{margin-left:auto;background:#1d4ed8;color:#fff}",
    ".msg.bot{background:#fff;border:1px solid #e5e7eb}.msg.agent{background:#dcfce7;border:1px solid #bbf7d0}",
    ".who{display:block;font-size:11px;opacity:.75;margin-bottom:2px}",
    ".ack{display:block;font-size:11px;opacity:.85;margin-top:4px}",
    ".sources{display:block;font-size:12px;margin-top:4px}.sources a{color:#1d4ed8}",
    ".rate{display:flex;gap:4px;margin-top:6px}.rate button{border:1px solid #d1d5db;background:#fff;border-radius:6px;",
    "padding:2px 8px;font-size:12px;color:#374151}",
    ".rate button.chosen{background:#dbeafe;border-color:#1d4ed8;color:#1e3a8a}",
    ".typing{font-size:12px;color:#4b5563;padding:0 12px 6px;display:none}.typing.on{display:block}",
    "form.compose{display:flex;border-top:1px solid #e5e7eb}",
    "form.compose input{flex:1;min-width:0;border:0;padding:12px;outline:none;font-size:15px}",
    "form.compose button{border:0;background:#1d4ed8;color:#fff;padding:0 14px}",
    ".error{display:none;color:#991b1b;background:#fef2f2;font-size:12px;padding:6px 12px}.error.on{display:block}",
    // Phones: the panel takes the whole screen; 16 px input text so the browser does not zoom.
    "@media (max-width:480px){.panel{right:0;bottom:0;width:100vw;max-width:100vw;height:100%;max-height:100%;",
    "border-radius:0}.panel.open~.launcher{display:none}form.compose input{font-size:16px}.msg{max-width:90%}}",
  ].join("");

  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    return n;
  }
  function icon(path) {
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "24");
    svg.setAttribute("height", "24");
    svg.setAttribute("aria-hidden", "true");
    var p = document.createElementNS(SVG, "path");
    p.setAttribute("d", path);
    p.setAttribute("fill", "none");
    p.setAttribute("stroke", "currentColor");
    p.setAttribute("stroke-width", "2");
    p.setAttribute("stroke-linecap", "round");
    p.setAttribute("stroke-linejoin", "round");
    svg.appendChild(p);
    return svg;
  }
  var CHAT_ICON = "M21 12a8 8 0 0 1-11.6 7.1L4 20l1-4.6A8 8 0 1 1 21 12z";
  var CLOSE_ICON = "M6 6l12 12M18 6L6 18";

  var launcher = el("button", "launcher");
  launcher.type = "button";
  launcher.appendChild(icon(CHAT_ICON));
  launcher.setAttribute("aria-label", "Open support chat");
  launcher.setAttribute("aria-expanded", "false");
  launcher.setAttribute("part", "launcher");
  var panel = el("div", "panel");
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", "Support chat");
  var head = el("div", "head");
  var titles = el("div", "titles");
  var title = el("b", "", botName);
  var sub = el("span", "sub", "Ask us anything");
  titles.appendChild(title);
  titles.appendChild(sub);
  var human = el("button", "human", "Talk to a person");
  human.type = "button";
  var closeBtn = el("button", "close");
  closeBtn.type = "button";
  closeBtn.setAttribute("aria-label", "Close chat");
  closeBtn.appendChild(icon(CLOSE_ICON));
  head.appendChild(titles);
  head.appendChild(human);
  head.appendChild(closeBtn);
  var banner = el("div", "banner");
  banner.setAttribute("role", "status");
  var log = el("div", "log");
  log.setAttribute("aria-live", "polite");
  var typing = el("div", "typing", "Typing…");
  var error = el("div", "error");
  error.setAttribute("role", "alert");
  var form = el("form", "compose");
  var input = el("input");
  input.placeholder = "Type your message…";
  input.setAttribute("maxlength", "2000");
  input.setAttribute("aria-label", "Your message");
  var send = el("button", "", "Send");
  send.type = "submit";
  form.appendChild(input);
  form.appendChild(send);
  [head, banner, log, typing, error, form].forEach(function (n) { panel.appendChild(n); });
  root.appendChild(style);
  root.appendChild(panel);
  root.appendChild(launcher);

  // -- HTTP ------------------------------------------------------------------
  function friendly(status, data, retryAfter) {
    // What the visitor reads; the server's own words go to the console.
    if (status === 429) return "You're sending messages quickly. Please try again in " + (retryAfter || "a few") + " seconds.";
    if (status === 400 && data && data.detail) return data.detail;
    if (status === 413) return "That message is too long. Please shorten it.";
    if (status === 403 || status === 404 && !state.conversationId) return "Chat is not available on this page right now.";
    if (status >= 500 || !status) return "We can't reach support right now. Please try again in a moment.";
    return "Something went wrong. Please try again.";
  }
  function call(method, path, body, accept) {
    var headers = { "Content-Type": "application/json" };
    if (state.visitorId) headers["X-Visitor-Id"] = state.visitorId;
    if (accept) headers["Accept"] = accept;
    return fetch(API + path, { method: method, headers: headers, body: body ? JSON.stringify(body) : undefined, mode: "cors" })
      .catch(function (e) {
        // A refused origin (CORS), no network, or the server is down: the browser hides which.
        console.warn("[support widget] " + method + " " + path + " failed:", e);
        var err = new Error(friendly(0));
        err.status = 0;
        throw err;
      })
      .then(function (resp) {
        if (resp.ok) return resp;
        return resp.json().catch(function () { return {}; }).then(function (data) {
          console.warn("[support widget] " + method + " " + path + " answered " + resp.status + ": " + ((data && data.detail) || ""));
          var err = new Error(friendly(resp.status, data, resp.headers.get("Retry-After")));
          err.status = resp.status;
          throw err;
        });
      });
  }
  function showError(e) {
    error.textContent = e ? e.message : "";
    error.classList.toggle("on", !!e);
  }

  // -- messages --------------------------------------------------------------
  function whoName(role, m) {
    if (role === "customer") return "You";
    if (role === "agent") return (m && m.author) || "Support team";
    return botName + " bot";
  }
  function bubble(role, m) {
    var node = el("div", "msg " + role);
    node.appendChild(el("span", "who", whoName(role, m)));
    node.appendChild(el("span", "text", ""));
    log.appendChild(node);
    return node;
  }
  function ack(node, text) {
    if (node.querySelector(".ack")) return;
    node.appendChild(el("span", "ack", text || "Sent to the team. A person will reply here."));
  }
  function finish(node, m) {
    node.dataset.id = m.id;
    rendered[m.id] = node;
    node.querySelector(".who").textContent = whoName(m.role, m);
    node.querySelector(".text").textContent = m.text;
    if (m.role === "customer" && m.kind === "queued") ack(node);
    if (m.sources && m.sources.length) {
      var src = node.querySelector(".sources") || el("span", "sources");
      src.textContent = "";
      m.sources.filter(function (s) { return s.type === "kb"; }).forEach(function (s, i) {
        if (i) src.appendChild(document.createTextNode(" · "));
        var a = el("a", "", s.title);
        var url = s.url || "";
        // Only http(s) or relative links; a javascript: URL is shown as text.
        if (/^(https?:\/\/|\/)/.test(url)) { a.href = url.charAt(0) === "/" ? ORIGIN + url : url; a.target = "_blank"; a.rel = "noopener"; }
        src.appendChild(a);
      });
      if (src.childNodes.length) { src.insertBefore(document.createTextNode("Sources: "), src.firstChild); node.appendChild(src); }
    }
    if (m.role === "bot" && !m.handed_off && !node.querySelector(".rate")) {
      var rate = el("span", "rate");
      [["up", "Helpful"], ["down", "Not helpful"]].forEach(function (r) {
        var b = el("button", "rate-" + r[0], r[1]);
        b.type = "button";
        b.setAttribute("aria-pressed", String((m.rating === 1 && r[0] === "up") || (m.rating === -1 && r[0] === "down")));
        if (b.getAttribute("aria-pressed") === "true") b.classList.add("chosen");
        b.addEventListener("click", function () { rateReply(m.id, r[0], rate, b); });
        rate.appendChild(b);
      });
      node.appendChild(rate);
    }
    if (m.id > (state.lastId || 0)) { state.lastId = m.id; save(); }
  }
  function render(m) {
    if (rendered[m.id]) { if (m.role === "customer" && m.kind === "queued") ack(rendered[m.id]); return; }
    finish(bubble(m.role, m), m);
    log.scrollTop = log.scrollHeight;
  }
  function rateReply(id, rating, box, btn) {
    call("POST", "/messages/" + id + "/feedback/", { rating: rating }).then(function () {
      Array.prototype.forEach.call(box.children, function (c) { c.classList.remove("chosen"); c.setAttribute("aria-pressed", "false"); });
      btn.classList.add("chosen");
      btn.setAttribute("aria-pressed", "true");
      showError(null);
    }).catch(showError);
  }

  // -- the conversation's state (bot, waiting for a person, with an agent, closed) --
  function applyState(data) {
    if (!data || !data.status) return;
    conv = data;
    state.status = data.status;
    save();
    banner.textContent = "";
    banner.className = "banner";
    human.hidden = data.status === "waiting" || data.status === "agent" || data.status === "closed";
    if (data.status === "waiting") {
      banner.classList.add("on", "waiting");
      banner.appendChild(el("span", "dot"));
      banner.appendChild(el("b", "", "Waiting for a person. "));
      var wait = data.wait || {};
      var line = wait.text || "A person will reply here as soon as they can.";
      if (wait.waiting > 1) line += " " + (wait.waiting - 1) + " other " + (wait.waiting === 2 ? "person is" : "people are") + " waiting too.";
      banner.appendChild(el("span", "wait", line));
      banner.appendChild(el("span", "", " You can keep writing; the team sees everything here."));
      sub.textContent = "Waiting for a person";
    } else if (data.status === "agent") {
      banner.classList.add("on", "agent");
      banner.textContent = "You're chatting with " + (data.agent || "the support team") + ".";
      sub.textContent = data.agent ? data.agent + " from the team" : "The support team";
    } else if (data.status === "closed") {
      showClosed(data.closed || {});
      sub.textContent = "Conversation closed";
    } else {
      sub.textContent = "Ask us anything";
    }
  }
  function showClosed(closed) {
    banner.classList.add("on", "closed");
    banner.appendChild(el("b", "closed-note", closed.by ? "This conversation was closed by " + closed.by + "." : "This conversation was closed."));
    if (closed.rating) {
      banner.appendChild(el("div", "csat-done", "Thanks for rating it " + closed.rating + " out of 5."));
    } else {
      var box = el("div", "csat");
      box.appendChild(el("div", "", "How was your conversation?"));
      var scale = el("div", "scale");
      scale.setAttribute("role", "group");
      scale.setAttribute("aria-label", "Rate the conversation from 1 (poor) to 5 (great)");
      var chosen = 0;
      for (var i = 1; i <= 5; i++) {
        (function (n) {
          var b = el("button", "score", String(n));
          b.type = "button";
          b.dataset.score = n;
          b.setAttribute("aria-label", n + " out of 5");
          b.addEventListener("click", function () {
            chosen = n;
            Array.prototype.forEach.call(scale.children, function (c) { c.classList.toggle("chosen", Number(c.dataset.score) === n); });
          });
          scale.appendChild(b);
        })(i);
      }
      var comment = el("textarea");
      comment.setAttribute("aria-label", "Anything to add? (optional)");
      comment.placeholder = "Anything to add? (optional)";
      comment.maxLength = 500;
      var sendRating = el("button", "send-rating", "Send rating");
      sendRating.type = "button";
      sendRating.addEventListener("click", function () {
        if (!chosen) { showError(new Error("Choose a number from 1 to 5 first.")); return; }
        call("POST", "/conversations/" + state.conversationId + "/rating/", { rating: chosen, comment: comment.value })
          .then(function (r) { return r.json(); })
          .then(function (data) { showError(null); applyState(data); })
          .catch(showError);
      });
      box.appendChild(scale);
      box.appendChild(comment);
      box.appendChild(sendRating);
      banner.appendChild(box);
    }
    var restart = el("button", "restart", "Start a new conversation");
    restart.type = "button";
    restart.addEventListener("click", function () {
      state.conversationId = null;
      state.lastId = 0;
      save();
      Array.prototype.slice.call(log.querySelectorAll(".msg:not(.greeting)")).forEach(function (n) { n.remove(); });
      rendered = {};
      applyState({ status: "bot" });
      input.focus();
    });
    banner.appendChild(restart);
  }

  // -- conversation ----------------------------------------------------------
  function ensureConversation() {
    if (state.conversationId) return Promise.resolve();
    return call("POST", "/conversations/", { visitor_id: state.visitorId || "", page_url: pageUrl() })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        state.visitorId = data.visitor_id;
        state.conversationId = data.conversation_id;
        state.lastId = 0;
        save();
        (data.messages || []).forEach(render);
        applyState(data);
      });
  }
  function history(since) {
    if (!state.conversationId) return Promise.resolve();
    return call("GET", "/conversations/" + state.conversationId + "/messages/?since=" + (since || 0))
      .then(function (r) { return r.json(); })
      .then(function (data) {
        (data.messages || []).forEach(render);
        if (data.status !== conv.status || data.status === "waiting" || data.agent !== conv.agent) applyState(data);
        showError(null);
      })
      .catch(function (e) {
        if (e.status === 404) { state.conversationId = null; save(); return; }
        showError(e);
      });
  }
  function poll() {
    if (pollTimer) return;
    pollTimer = setInterval(function () {
      if (!sending && panel.classList.contains("open") && state.conversationId) history(state.lastId);
    }, POLL_MS);
  }

  function readEvents(resp, handle) {
    var reader = resp.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) return;
        buffer += decoder.decode(chunk.value, { stream: true });
        var parts = buffer.split("\n\n");
        buffer = parts.pop();
        parts.forEach(function (block) {
          var ev = "message", data = "";
          block.split("\n").forEach(function (line) {
            if (line.indexOf("event: ") === 0) ev = line.slice(7);
            else if (line.indexOf("data: ") === 0) data += line.slice(6);
          });
          if (data) handle(ev, JSON.parse(data));
        });
        return pump();
      });
    }
    return pump();
  }

  function ask(text) {
    sending = true;
    showError(null);
    var mine = bubble("customer");
    mine.querySelector(".text").textContent = text;
    log.scrollTop = log.scrollHeight;
    var botNode = null;
    return ensureConversation().then(function () {
      if (conv.status !== "waiting" && conv.status !== "agent") typing.classList.add("on");
      return call("POST", "/conversations/" + state.conversationId + "/messages/", { text: text }, "text/event-stream");
    }).then(function (resp) {
      return readEvents(resp, function (event, data) {
        if (event === "start") {
          mine.dataset.id = data.customer_message_id;
          rendered[data.customer_message_id] = mine;
        } else if (event === "token" || event === "replace") {
          if (!botNode) { botNode = bubble("bot"); }
          var t = botNode.querySelector(".text");
          t.textContent = event === "replace" ? data.t : t.textContent + data.t;
          typing.classList.remove("on");
          log.scrollTop = log.scrollHeight;
        } else if (event === "done") {
          typing.classList.remove("on");
          if (data.message) { finish(botNode || bubble("bot"), data.message); }
          if (data.kind === "queued") ack(mine, data.ack);
          applyState(data);
          log.scrollTop = log.scrollHeight;
        }
      });
    }).catch(function (e) {
      if (e.status === 404) { state.conversationId = null; save(); }
      showError(e);
    }).then(function () {
      typing.classList.remove("on");
      sending = false;
    });
  }

  // -- wiring ----------------------------------------------------------------
  function open() {
    panel.classList.add("open");
    launcher.setAttribute("aria-expanded", "true");
    launcher.setAttribute("aria-label", "Close support chat");
    state.open = true;
    save();
    input.focus();
    if (!panel.dataset.loaded) {
      panel.dataset.loaded = "1";
      call("GET", "/config/").then(function (r) { return r.json(); }).then(function (cfg) {
        botName = cfg.title || botName;
        title.textContent = botName;
        var g = bubble("bot");
        g.classList.add("greeting");
        g.querySelector(".text").textContent = cfg.greeting;
        log.insertBefore(g, log.firstChild);
      }).catch(showError);
      history(0);
    }
    poll();
  }
  function close() {
    panel.classList.remove("open");
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-label", "Open support chat");
    state.open = false;
    save();
    launcher.focus();
  }
  launcher.addEventListener("click", function () { if (panel.classList.contains("open")) close(); else open(); });
  closeBtn.addEventListener("click", close);
  panel.addEventListener("keydown", function (ev) { if (ev.key === "Escape") close(); });
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = input.value.trim();
    if (!text || sending) return;
    input.value = "";
    ask(text);
  });
  human.addEventListener("click", function () {
    showError(null);
    ensureConversation().then(function () {
      return call("POST", "/conversations/" + state.conversationId + "/agent/?since=" + (state.lastId || 0), { page_url: pageUrl() });
    }).then(function (r) { return r.json(); }).then(function (data) {
      (data.messages || []).forEach(render);
      applyState(data);
    }).catch(showError);
  });

  function mount() { document.body.appendChild(host); if (state.open) open(); }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
