/* AIGC support widget. Embed with one tag:
 *   <script src="https://support.example.com/static/support/widget.js" data-key="pk_..." defer></script>
 * It adds a launcher and a chat panel inside a Shadow DOM (the host page's styles
 * cannot leak in, ours cannot leak out), streams the bot's replies, keeps the
 * visitor's conversation in localStorage across page loads, polls for agent
 * messages after a hand-off and lets the visitor rate each reply.
 * Every piece of message text is set with textContent, never innerHTML. */
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

  var state = load();
  var rendered = {};
  var pollTimer = null;
  var sending = false;

  function load() {
    try { return JSON.parse(localStorage.getItem(STORE)) || {}; } catch (e) { return {}; }
  }
  function save() {
    try { localStorage.setItem(STORE, JSON.stringify(state)); } catch (e) { /* private mode */ }
  }

  // -- DOM -------------------------------------------------------------------
  var host = document.createElement("div");
  host.id = "aigc-support-widget";
  var root = host.attachShadow({ mode: "open" });
  var style = document.createElement("style");
  style.textContent = [
    ":host{all:initial}",
    "*{box-sizing:border-box;font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif}",
    ".launcher{position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;border:0;",
    "background:#2563eb;color:#fff;font-size:24px;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25);z-index:2147483000}",
    ".panel{position:fixed;right:20px;bottom:88px;width:340px;max-width:calc(100vw - 40px);height:480px;",
    "max-height:calc(100vh - 120px);background:#fff;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);",
    "display:none;flex-direction:column;overflow:hidden;z-index:2147483000;color:#111}",
    ".panel.open{display:flex}",
    ".head{background:#2563eb;color:#fff;padding:10px 14px;display:flex;justify-content:space-between;align-items:center}",
    ".head b{font-weight:600}.head button{background:none;border:0;color:#fff;cursor:pointer;font-size:12px;text-decoration:underline}",
    ".log{flex:1;overflow-y:auto;padding:10px;background:#f8fafc}",
    ".msg{max-width:85%;margin:6px 0;padding:8px 10px;border-radius:10px;white-space:pre-wrap;word-wrap:break-word}",
    ".msg.customer{margin-left:auto;background:#2563eb;color:#fff}",
    ".msg.bot{background:#fff;border:1px solid #e5e7eb}.msg.agent{background:#dcfce7}",
    ".who{display:block;font-size:11px;opacity:.7;margin-bottom:2px}",
    ".sources{display:block;font-size:12px;margin-top:4px}.sources a{color:#2563eb}",
    ".rate{display:block;margin-top:4px}.rate button{border:1px solid #e5e7eb;background:#fff;border-radius:6px;cursor:pointer;margin-right:4px}",
    ".rate button.chosen{background:#dbeafe;border-color:#2563eb}",
    ".typing{font-size:12px;color:#6b7280;padding:0 12px 6px;display:none}.typing.on{display:block}",
    "form{display:flex;border-top:1px solid #e5e7eb}input{flex:1;border:0;padding:12px;outline:none}",
    "form button{border:0;background:#2563eb;color:#fff;padding:0 14px;cursor:pointer}",
    ".error{color:#b91c1c;font-size:12px;padding:0 12px 6px}",
  ].join("");
  var launcher = el("button", "launcher");
  launcher.appendChild(icon("chat", 26));
  launcher.setAttribute("aria-label", "Open support chat");
  launcher.setAttribute("part", "launcher");
  var panel = el("div", "panel");
  panel.setAttribute("role", "dialog");
  var head = el("div", "head");
  var title = el("b", "", "Support");
  var human = el("button", "human", "Talk to a person");
  head.appendChild(title);
  head.appendChild(human);
  var log = el("div", "log");
  log.setAttribute("aria-live", "polite");
  var typing = el("div", "typing", "Typing…");
  var error = el("div", "error");
  var form = el("form");
  var input = el("input");
  input.placeholder = "Type your question…";
  input.setAttribute("maxlength", "2000");
  input.setAttribute("aria-label", "Your message");
  var send = el("button", "", "Send");
  send.type = "submit";
  form.appendChild(input);
  form.appendChild(send);
  [head, log, typing, error, form].forEach(function (n) { panel.appendChild(n); });
  root.appendChild(style);
  root.appendChild(panel);
  root.appendChild(launcher);

  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    return n;
  }

  // Icons: lucide (ISC licence) path data drawn as SVG, never emoji (which render as
  // empty boxes where no emoji font is installed).
  function icon(name, size) {
    var ICONS = {
      chat: ["M7.9 20A9 9 0 1 0 4 16.1L2 22Z"],
      up: ["M7 10v12", "M15 5.88 14 10h5.83a2 2 0 0 1 1.92 2.56l-2.33 8A2 2 0 0 1 17.5 22H4a2 2 0 0 1-2-2v-8a2 2 0 0 1 2-2h2.76a2 2 0 0 0 1.79-1.11L12 2a3.13 3.13 0 0 1 3 3.88Z"],
      down: ["M17 14V2", "M9 18.12 10 14H4.17a2 2 0 0 1-1.92-2.56l2.33-8A2 2 0 0 1 6.5 2H20a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2h-2.76a2 2 0 0 0-1.79 1.11L12 22a3.13 3.13 0 0 1-3-3.88Z"],
    };
    var NS = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(NS, "svg");
    var attrs = { viewBox: "0 0 24 24", width: size, height: size, fill: "none", stroke: "currentColor",
      "stroke-width": "2", "stroke-linecap": "round", "stroke-linejoin": "round", "aria-hidden": "true", focusable: "false" };
    Object.keys(attrs).forEach(function (k) { svg.setAttribute(k, attrs[k]); });
    ICONS[name].forEach(function (d) { var p = document.createElementNS(NS, "path"); p.setAttribute("d", d); svg.appendChild(p); });
    return svg;
  }

  // -- HTTP ------------------------------------------------------------------
  function call(method, path, body, accept) {
    var headers = { "Content-Type": "application/json" };
    if (state.visitorId) headers["X-Visitor-Id"] = state.visitorId;
    if (accept) headers["Accept"] = accept;
    return fetch(API + path, { method: method, headers: headers, body: body ? JSON.stringify(body) : undefined, mode: "cors" })
      .then(function (resp) {
        if (resp.ok) return resp;
        return resp.json().catch(function () { return {}; }).then(function (data) {
          var msg = (data && data.detail) || ("Error " + resp.status);
          if (resp.status === 429) msg += " (retry in " + (resp.headers.get("Retry-After") || "a few") + " s)";
          var err = new Error(msg);
          err.status = resp.status;
          throw err;
        });
      });
  }
  function showError(e) { error.textContent = e ? e.message : ""; }

  // -- messages --------------------------------------------------------------
  function bubble(role) {
    var node = el("div", "msg " + role);
    node.appendChild(el("span", "who", role === "customer" ? "You" : role === "agent" ? "Agent" : "Bot"));
    node.appendChild(el("span", "text", ""));
    log.appendChild(node);
    return node;
  }
  function finish(node, m) {
    node.dataset.id = m.id;
    rendered[m.id] = node;
    node.querySelector(".text").textContent = m.text;
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
      [["up"], ["down"]].forEach(function (r) {
        var b = el("button", "rate-" + r[0]);
        b.appendChild(icon(r[0], 16));
        b.type = "button";
        b.setAttribute("aria-label", "Rate this reply " + r[0]);
        if ((m.rating === 1 && r[0] === "up") || (m.rating === -1 && r[0] === "down")) b.classList.add("chosen");
        b.addEventListener("click", function () { rateReply(m.id, r[0], rate, b); });
        rate.appendChild(b);
      });
      node.appendChild(rate);
    }
    if (m.id > (state.lastId || 0)) { state.lastId = m.id; save(); }
  }
  function render(m) {
    if (rendered[m.id]) return;
    finish(bubble(m.role), m);
    log.scrollTop = log.scrollHeight;
  }
  function rateReply(id, rating, box, btn) {
    call("POST", "/messages/" + id + "/feedback/", { rating: rating }).then(function () {
      Array.prototype.forEach.call(box.children, function (c) { c.classList.remove("chosen"); });
      btn.classList.add("chosen");
      showError(null);
    }).catch(showError);
  }

  // -- conversation ----------------------------------------------------------
  function ensureConversation() {
    if (state.conversationId) return Promise.resolve();
    return call("POST", "/conversations/", { visitor_id: state.visitorId || "" })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        state.visitorId = data.visitor_id;
        state.conversationId = data.conversation_id;
        state.lastId = 0;
        save();
        (data.messages || []).forEach(render);
      });
  }
  function history(since) {
    if (!state.conversationId) return Promise.resolve();
    return call("GET", "/conversations/" + state.conversationId + "/messages/?since=" + (since || 0))
      .then(function (r) { return r.json(); })
      .then(function (data) { (data.messages || []).forEach(render); state.status = data.status; })
      .catch(function (e) {
        if (e.status === 404) { state.conversationId = null; save(); return; }
        showError(e);
      });
  }
  function poll() {
    if (pollTimer) return;
    pollTimer = setInterval(function () {
      if (!sending && panel.classList.contains("open")) history(state.lastId);
    }, POLL_MS);
  }

  function ask(text) {
    sending = true;
    showError(null);
    var mine = bubble("customer");
    mine.querySelector(".text").textContent = text;
    log.scrollTop = log.scrollHeight;
    typing.classList.add("on");
    var botNode = null;
    return ensureConversation().then(function () {
      return call("POST", "/conversations/" + state.conversationId + "/messages/", { text: text }, "text/event-stream");
    }).then(function (resp) {
      var reader = resp.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      function handle(event, data) {
        if (event === "start") {
          mine.dataset.id = data.customer_message_id;
          rendered[data.customer_message_id] = mine;
        } else if (event === "token") {
          if (!botNode) { botNode = bubble("bot"); }
          var t = botNode.querySelector(".text");
          t.textContent = t.textContent + data.t;
          log.scrollTop = log.scrollHeight;
        } else if (event === "done") {
          typing.classList.remove("on");
          if (data.message) { finish(botNode || bubble("bot"), data.message); }
          if (data.handed_off) { state.status = "waiting"; save(); }
          log.scrollTop = log.scrollHeight;
        }
      }
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
    input.focus();
    if (!panel.dataset.loaded) {
      panel.dataset.loaded = "1";
      call("GET", "/config/").then(function (r) { return r.json(); }).then(function (cfg) {
        title.textContent = cfg.title;
        if (!state.conversationId) { var g = bubble("bot"); g.classList.add("greeting"); g.querySelector(".text").textContent = cfg.greeting; }
      }).catch(showError);
      history(0);
    }
    poll();
  }
  launcher.addEventListener("click", function () {
    if (panel.classList.contains("open")) { panel.classList.remove("open"); launcher.setAttribute("aria-expanded", "false"); }
    else open();
  });
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = input.value.trim();
    if (!text || sending) return;
    input.value = "";
    ask(text);
  });
  human.addEventListener("click", function () {
    ensureConversation().then(function () {
      return call("POST", "/conversations/" + state.conversationId + "/agent/", {});
    }).then(function () { return history(state.lastId); }).catch(showError);
  });

  function mount() { document.body.appendChild(host); if (state.open) open(); }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
