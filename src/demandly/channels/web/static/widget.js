/*! Chat widget. One hand-written file, no build step.
 *
 * Embed:  <script src="https://PLATFORM/widget.js" data-agent="pk_..." async></script>
 *
 * It talks only to the public chat API of the platform it was loaded from (its API base is
 * its own src without "/widget.js"). Everything it shows lives in a Shadow DOM, so the host
 * page's CSS cannot reach it.
 *
 * Content-Security-Policy of the host page: allow the platform's origin in script-src and
 * connect-src (and img-src for an avatar). Styles need no CSP change: they are a constructed
 * stylesheet (new CSSStyleSheet + adoptedStyleSheets) and CSSOM properties, which style-src
 * does not govern. Only browsers without constructed stylesheets fall back to a <style>
 * element in the shadow root, which a strict style-src blocks (the widget then works but
 * looks plain).
 *
 * Privacy: nothing is sent or stored before the visitor accepts the privacy notice; after
 * that, localStorage keeps only the conversation id, its visitor token and unsent messages.
 */
(() => {
  "use strict";

  const script =
    document.currentScript || document.querySelector('script[data-agent][src*="widget.js"]');
  const KEY = script && script.getAttribute("data-agent");
  if (!KEY || !window.fetch || !window.ShadowRoot || !window.Promise) return;
  const registry = (window.__demandlyWidgets = window.__demandlyWidgets || {});
  if (registry[KEY]) return;
  registry[KEY] = true;

  const BASE = script.src.replace(/\/widget\.js(?:[?#].*)?$/, "");
  const API = BASE + "/api/v1/public";
  const STORE = "demandly:" + KEY;
  const MAX_CHARS = 4000;
  const IDLE_MS = 45000; // no byte for this long: the connection is presumed dead
  const POLL_HANDOFF_MS = 3000; // a person answers: look for their messages often
  const POLL_ACTIVE_MS = 20000;
  const SMALL = "(max-width: 480px)";

  const TEXTS = {
    de: {
      open: "Chat öffnen",
      close: "Chat schließen",
      chat: "Chat",
      log: "Chatverlauf",
      input: "Ihre Nachricht",
      placeholder: "Nachricht schreiben …",
      send: "Senden",
      accept: "Zustimmen und Chat starten",
      policy: "Datenschutzerklärung",
      consentTitle: "Bevor es losgeht",
      you: "Sie",
      team: "Team",
      typing: "{name} schreibt …",
      suggestions: "Antwortvorschläge",
      sources: "Quellen",
      sending: "Wird gesendet …",
      reconnecting: "Keine Verbindung – der Chat geht weiter, sobald sie wieder steht.",
      handoff: "Ein Mitarbeiter übernimmt das Gespräch und antwortet Ihnen hier.",
      ended: "Dieses Gespräch ist beendet.",
      expired: "Das Gespräch ist nicht mehr verfügbar.",
      restart: "Neues Gespräch beginnen",
      rejected: "Diese Nachricht wurde nicht angenommen.",
      tooLong: "Die Nachricht ist zu lang (höchstens 4.000 Zeichen).",
      startFailed: "Der Chat konnte nicht gestartet werden. Bitte versuchen Sie es erneut.",
      notAllowed: "Der Chat ist auf dieser Website nicht freigeschaltet.",
      error: "Da ist etwas schiefgelaufen. Bitte versuchen Sie es gleich noch einmal.",
    },
    en: {
      open: "Open chat",
      close: "Close chat",
      chat: "Chat",
      log: "Chat messages",
      input: "Your message",
      placeholder: "Write a message …",
      send: "Send",
      accept: "Accept and start chat",
      policy: "Privacy policy",
      consentTitle: "Before we start",
      you: "You",
      team: "Team",
      typing: "{name} is typing …",
      suggestions: "Suggested replies",
      sources: "Sources",
      sending: "Sending …",
      reconnecting: "No connection – the chat carries on as soon as it is back.",
      handoff: "A member of the team is taking over and will answer you here.",
      ended: "This conversation has ended.",
      expired: "This conversation is no longer available.",
      restart: "Start a new conversation",
      rejected: "This message was not accepted.",
      tooLong: "The message is too long (4,000 characters at most).",
      startFailed: "The chat could not be started. Please try again.",
      notAllowed: "The chat is not enabled for this website.",
      error: "Something went wrong. Please try again in a moment.",
    },
  };

  const CSS = `
:host{all:initial}
*{box-sizing:border-box}
.root{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1f2933;-webkit-font-smoothing:antialiased}
button,textarea{font:inherit;color:inherit;margin:0}
button{cursor:pointer}
[hidden]{display:none!important}
.launcher{position:fixed;z-index:2147483000;bottom:20px;right:20px;display:flex;align-items:center;gap:8px;height:56px;min-width:56px;padding:0 20px 0 16px;border:0;border-radius:28px;background:var(--p);color:var(--on-p);box-shadow:0 6px 20px rgba(0,0,0,.22);font-weight:600;font-size:15px}
.left .launcher{right:auto;left:20px}
.launcher svg{width:26px;height:26px;fill:currentColor;flex:none}
.panel{position:fixed;z-index:2147483001;bottom:88px;right:20px;width:380px;max-width:calc(100vw - 40px);height:600px;max-height:calc(100vh - 108px);display:flex;flex-direction:column;background:#fff;border-radius:16px;box-shadow:0 12px 40px rgba(0,0,0,.25);overflow:hidden}
.left .panel{right:auto;left:20px}
header{display:flex;align-items:center;gap:10px;padding:12px 8px 12px 16px;background:var(--p);color:var(--on-p);flex:none}
.avatar{width:38px;height:38px;border-radius:50%;background:rgba(255,255,255,.22);display:flex;align-items:center;justify-content:center;font-weight:700;font-size:17px;overflow:hidden;flex:none}
.avatar img{width:100%;height:100%;object-fit:cover}
.title{min-width:0}
h2{margin:0;font-size:16px;font-weight:700;line-height:1.25}
.sub{margin:0;font-size:12.5px;opacity:.88;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.close{margin-left:auto;width:44px;height:44px;border:0;border-radius:10px;background:transparent;color:inherit;display:flex;align-items:center;justify-content:center;flex:none}
.close svg{width:22px;height:22px;fill:currentColor}
.close:hover{background:rgba(255,255,255,.15)}
.banner{padding:8px 14px;font-size:13px;background:#fff6e0;color:#4d3800;border-bottom:1px solid #f0e0b5;flex:none}
.banner.err{background:#fdecea;color:#7a1d14;border-color:#f5c6c0}
.log{flex:1;overflow-y:auto;margin:0;padding:16px 14px;list-style:none;display:flex;flex-direction:column;gap:8px;background:#f5f6f8;overscroll-behavior:contain}
.msg{max-width:85%;padding:9px 13px;border-radius:16px;white-space:pre-wrap;overflow-wrap:anywhere;word-break:break-word}
.bot,.human{align-self:flex-start;background:#fff;border:1px solid #e2e5e9;border-bottom-left-radius:5px}
.me{align-self:flex-end;background:var(--p);color:var(--on-p);border-bottom-right-radius:5px}
.who{display:block;font-size:11.5px;font-weight:700;color:var(--p-text);margin-bottom:2px}
.msg a{color:inherit;text-decoration:underline}
.src{display:block;margin-top:6px;font-size:13px;opacity:.85}
.pending{opacity:.7}
.state{display:block;font-size:11.5px;opacity:.85;margin-top:2px}
.failed{background:#fdecea;color:#7a1d14}
.typing{align-self:flex-start;display:flex;gap:5px;padding:13px 14px;background:#fff;border:1px solid #e2e5e9;border-radius:16px;border-bottom-left-radius:5px}
.typing i{width:7px;height:7px;border-radius:50%;background:#8a939e;animation:dmb 1.2s infinite ease-in-out}
.typing i:nth-child(2){animation-delay:.15s}
.typing i:nth-child(3){animation-delay:.3s}
@keyframes dmb{0%,80%,100%{transform:translateY(0);opacity:.45}40%{transform:translateY(-4px);opacity:1}}
.quick{display:flex;flex-wrap:wrap;gap:6px;padding:0 14px 10px;background:#f5f6f8;flex:none}
.quick button{border:1px solid var(--p-text);color:var(--p-text);background:#fff;border-radius:18px;padding:7px 13px;font-size:14px;min-height:36px}
.quick button:hover{background:var(--p);border-color:var(--p);color:var(--on-p)}
.consent,.ended{padding:14px;border-top:1px solid #e2e5e9;background:#fff;font-size:13.5px;flex:none}
.consent h3{margin:0 0 4px;font-size:14px}
.consent p{margin:0 0 8px}
.consent a{color:var(--p-text)}
.primary{display:block;width:100%;min-height:44px;margin-top:10px;border:0;border-radius:10px;background:var(--p);color:var(--on-p);font-weight:600}
.primary:disabled{opacity:.6;cursor:default}
form{display:flex;align-items:flex-end;gap:8px;padding:10px;border-top:1px solid #e2e5e9;background:#fff;flex:none}
textarea{flex:1;min-width:0;resize:none;border:1px solid #c9d0d8;border-radius:10px;padding:10px 12px;font-size:16px;line-height:1.35;min-height:44px;max-height:120px;background:#fff;color:#1f2933}
.send{width:44px;height:44px;border:0;border-radius:10px;background:var(--p);color:var(--on-p);display:flex;align-items:center;justify-content:center;flex:none}
.send svg{width:20px;height:20px;fill:currentColor}
:focus{outline:none}
:focus-visible{outline:3px solid var(--a);outline-offset:2px}
textarea:focus-visible{outline-offset:0}
.sr{position:absolute;width:1px;height:1px;margin:-1px;padding:0;border:0;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
@media (max-width:480px){
.panel{top:0;left:0;right:0;bottom:0;width:100%;height:100%;max-width:none;max-height:none;border-radius:0}
.left .panel{left:0}
.open .launcher{display:none}
.launcher .label{display:none}
.launcher{padding:0;width:56px;justify-content:center;bottom:16px;right:16px}
.left .launcher{left:16px}
}
@media (prefers-reduced-motion:reduce){.typing i{animation:none}}
`;

  // --- small helpers ---------------------------------------------------------------------

  const SVG_NS = "http://www.w3.org/2000/svg";
  const ICONS = {
    chat: "M12 3C6.5 3 2 6.6 2 11c0 2.3 1.2 4.4 3.2 5.9L4.5 21l4.3-2.3c1 .2 2.1.3 3.2.3 5.5 0 10-3.6 10-8S17.5 3 12 3z",
    close: "M18.3 5.7a1 1 0 0 0-1.4 0L12 10.6 7.1 5.7a1 1 0 1 0-1.4 1.4l4.9 4.9-4.9 4.9a1 1 0 1 0 1.4 1.4l4.9-4.9 4.9 4.9a1 1 0 0 0 1.4-1.4L13.4 12l4.9-4.9a1 1 0 0 0 0-1.4z",
    send: "M3.4 20.4 21 12 3.4 3.6 3.4 10l12.6 2-12.6 2z",
  };

  function icon(name) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", ICONS[name]);
    svg.appendChild(path);
    return svg;
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of [].concat(children || [])) {
      if (child != null) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  const URL_RE = /\bhttps?:\/\/[^\s<>"]+[^\s<>".,;:!?)\]'"]/g;

  function linkified(text) {
    // Text nodes and anchors only: nothing a message says is ever parsed as HTML.
    const out = [];
    let at = 0;
    for (const match of text.matchAll(URL_RE)) {
      out.push(text.slice(at, match.index));
      out.push(el("a", { href: match[0], target: "_blank", rel: "noopener noreferrer", text: match[0] }));
      at = match.index + match[0].length;
    }
    out.push(text.slice(at));
    return out.filter((part) => part !== "");
  }

  function color(value, fallback) {
    return /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i.test(value || "") ? value : fallback;
  }

  function luminance(hex) {
    let h = hex.slice(1);
    if (h.length === 3) h = h.replace(/./g, "$&$&");
    const [r, g, b] = [0, 2, 4].map((i) => {
      const v = parseInt(h.substr(i, 2), 16) / 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  }

  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  const enc = encodeURIComponent;

  // --- storage (only after consent) --------------------------------------------------------

  const storage = (() => {
    try {
      const s = window.localStorage;
      s.getItem(STORE);
      return s;
    } catch (e) {
      return null; // blocked storage: the chat still works, it just does not survive a reload
    }
  })();

  function readSaved() {
    try {
      const v = storage && JSON.parse(storage.getItem(STORE) || "null");
      if (v && typeof v.c === "string" && typeof v.t === "string") {
        const outbox = Array.isArray(v.o)
          ? v.o.filter((m) => m && typeof m.id === "string" && typeof m.text === "string")
          : [];
        return { conv: { id: v.c, token: v.t }, outbox, open: v.open === true };
      }
    } catch (e) {
      /* unreadable: start afresh */
    }
    return null;
  }

  // --- state ---------------------------------------------------------------------------------

  const saved = readSaved();
  let conv = saved ? saved.conv : null;
  let outbox = saved ? saved.outbox : [];
  let loaded = !conv; // a restored conversation still needs its transcript
  let stale = false; // something may have been missed: fetch the transcript again
  let status = conv ? "active" : "new";
  let lastSeq = 0;
  let busy = false;
  let attempt = 0;
  let retryTimer = 0;
  let pollTimer = 0;
  let isOpen = false;
  let agent = null;
  let T = TEXTS.de;
  const notes = { net: null, err: null, state: null };
  const shown = new Map(); // seq -> message, for dedupe and quick replies
  let streamEl = null;
  let typingEl = null;
  let ui = null;

  function save() {
    if (!storage) return;
    try {
      if (conv) {
        storage.setItem(STORE, JSON.stringify({ c: conv.id, t: conv.token, o: outbox, open: isOpen }));
      } else {
        storage.removeItem(STORE);
      }
    } catch (e) {
      /* quota or privacy mode: keep going without persistence */
    }
  }

  // --- HTTP ----------------------------------------------------------------------------------

  function failure(kind, code, status, wait) {
    const error = new Error(code);
    error.kind = kind;
    error.code = code;
    error.status = status || 0;
    error.wait = wait || 0;
    return error;
  }

  function call(method, path, body, opts) {
    opts = opts || {};
    const headers = { Accept: opts.accept || "application/json" };
    if (body) headers["Content-Type"] = "application/json";
    if (opts.auth && conv) headers.Authorization = "Bearer " + conv.token;
    return fetch(API + path, {
      method,
      headers,
      body: body ? JSON.stringify(body) : undefined,
      mode: "cors",
      credentials: "omit",
      cache: "no-store",
      signal: opts.signal,
    }).then(checked, (e) => {
      throw failure("retry", e && e.name === "AbortError" ? "timeout" : "network");
    });
  }

  async function checked(res) {
    if (res.ok) return res;
    let code = "http_" + res.status;
    try {
      code = (await res.json()).error.code || code;
    } catch (e) {
      /* not our error body */
    }
    const retry = res.status === 429 || res.status === 408 || res.status >= 500;
    const wait = (parseInt(res.headers.get("Retry-After"), 10) || 0) * 1000;
    throw failure(retry ? "retry" : "fatal", code, res.status, wait);
  }

  // --- the conversation --------------------------------------------------------------------

  async function boot(tries) {
    try {
      agent = await (await call("GET", "/agents/" + enc(KEY))).json();
    } catch (e) {
      if (e.kind === "retry" && tries < 4) setTimeout(() => boot(tries + 1), 2000 * (tries + 1));
      else if (window.console) console.warn("Chat widget: agent " + KEY + " unavailable (" + e.code + ")");
      return;
    }
    T = TEXTS[agent.language] || TEXTS.en;
    build();
    if (conv) {
      for (const item of outbox) pendingBubble(item);
      if (saved.open) open(false);
      work();
    } else {
      intro();
    }
    renderMode();
  }

  async function startConversation() {
    ui.accept.disabled = true;
    note("err", null);
    try {
      const res = await call("POST", "/agents/" + enc(KEY) + "/conversations", { consent: true });
      const body = await res.json();
      conv = { id: body.conversation_id, token: body.token };
      outbox = [];
      loaded = true;
      clearLog();
      for (const m of body.messages) add(m, true);
      setStatus(body.status);
      save();
      renderMode();
      ui.input.focus();
    } catch (e) {
      note("err", e.code === "origin_not_allowed" ? T.notAllowed : T.startFailed);
    } finally {
      ui.accept.disabled = false;
    }
  }

  function send(text) {
    text = text.trim();
    if (!text || !conv || status === "ended") return false;
    if (text.length > MAX_CHARS) {
      note("err", T.tooLong);
      return false;
    }
    note("err", null);
    const item = { id: newId(), text };
    outbox.push(item);
    save();
    pendingBubble(item);
    scrollDown(true);
    renderQuick();
    work();
    return true;
  }

  // One worker at a time: load the transcript, send the queued messages in order (each with
  // its client_message_id, so a retry is never stored twice), catch up on what was missed.
  async function work() {
    if (busy || !conv) return;
    busy = true;
    clearTimeout(retryTimer);
    retryTimer = 0;
    const mine = conv;
    try {
      if (!loaded) {
        await refresh();
        loaded = true;
      }
      while (outbox.length && conv === mine && status !== "ended") {
        await sendOne(outbox[0]);
        outbox.shift();
        save();
      }
      if (stale && conv === mine) {
        await refresh();
        stale = false;
      }
      attempt = 0;
      note("net", null);
    } catch (e) {
      if (conv !== mine) return;
      if (e.kind === "fatal") {
        fatal(e);
      } else {
        attempt += 1;
        stale = true;
        note("net", T.reconnecting);
        const backoff = Math.min(15000, 1000 * Math.pow(2, attempt - 1)) * (0.75 + Math.random() / 2);
        retryTimer = setTimeout(work, Math.max(e.wait, backoff));
      }
    } finally {
      busy = false;
      hideTyping();
      dropStream();
      renderQuick();
    }
    // A message written while the last refresh was under way: send it too.
    if (conv && outbox.length && !retryTimer && status !== "ended") setTimeout(work, 0);
  }

  function fatal(e) {
    if (e.status === 401 || e.status === 404) {
      forget();
      note("err", T.expired);
      return;
    }
    if (e.status === 410 || e.code === "conversation_ended") {
      for (const item of outbox) failBubble(item, T.ended);
      outbox = [];
      save();
      setStatus("ended");
      return;
    }
    if (e.sending && outbox.length) {
      failBubble(outbox.shift(), e.status === 422 ? T.rejected : T.error);
      save();
    }
    note("err", e.code === "origin_not_allowed" ? T.notAllowed : e.status === 422 ? null : T.error);
  }

  async function refresh() {
    const res = await call(
      "GET",
      "/conversations/" + enc(conv.id) + "/messages?after=" + lastSeq,
      null,
      { auth: true },
    );
    const body = await res.json();
    for (const m of body.messages) add(m, loaded);
    setStatus(body.status);
  }

  async function sendOne(item) {
    const control = window.AbortController ? new AbortController() : null;
    let idle = 0;
    const arm = () => {
      clearTimeout(idle);
      if (control) idle = setTimeout(() => control.abort(), IDLE_MS);
    };
    let done = false;
    arm();
    if (status === "active") showTyping();
    try {
      done = await stream(item, control, arm);
    } catch (e) {
      e.sending = true;
      throw e;
    } finally {
      clearTimeout(idle);
    }
    if (!done) throw failure("retry", "stream_cut");
  }

  // Posts the message and reads the reply as server-sent events; true once "done" arrived.
  async function stream(item, control, arm) {
    const res = await call(
      "POST",
      "/conversations/" + enc(conv.id) + "/messages",
      { text: item.text, client_message_id: item.id },
      { auth: true, accept: "text/event-stream", signal: control && control.signal },
    );
    const type = res.headers.get("Content-Type") || "";
    if (!res.body || !res.body.getReader || type.indexOf("text/event-stream") < 0) {
      const body = await res.json(); // a proxy that buffers may still answer in one piece
      for (const m of body.messages) onEvent("message", { message: m }, item);
      setStatus(body.status);
      return true;
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let done = false;
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (e) {
        throw failure("retry", "stream_cut");
      }
      if (chunk.done) return done;
      arm();
      buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (parseEvent(block, item)) done = true;
      }
    }
  }

  function parseEvent(block, item) {
    let type = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) type = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    let payload = {};
    try {
      payload = data.length ? JSON.parse(data.join("\n")) : {};
    } catch (e) {
      return false;
    }
    return onEvent(type, payload, item);
  }

  function onEvent(type, data, item) {
    if (type === "message" && data.message) {
      if (data.message.role === "user") {
        unpend(item.id);
        add(data.message, false);
      } else {
        dropStream();
        hideTyping();
        add(data.message, true);
      }
    } else if (type === "delta") {
      hideTyping();
      streamText(String(data.text || ""));
    } else if (type === "handoff") {
      setStatus("handoff");
    } else if (type === "ended") {
      setStatus("ended");
    } else if (type === "error") {
      note("err", T.error);
    } else if (type === "done") {
      return true;
    }
    return false;
  }

  function forget() {
    clearTimeout(retryTimer);
    retryTimer = 0;
    conv = null;
    outbox = [];
    loaded = true;
    stale = false;
    lastSeq = 0;
    save();
    clearLog();
    intro();
    setStatus("new");
    renderMode();
  }

  function setStatus(next) {
    if (!next || next === status) {
      schedulePoll();
      return;
    }
    status = next;
    note("state", status === "handoff" ? T.handoff : status === "ended" ? T.ended : null);
    renderMode();
    renderQuick();
    schedulePoll();
  }

  function schedulePoll() {
    clearTimeout(pollTimer);
    if (!isOpen || !conv || status === "ended") return;
    pollTimer = setTimeout(
      () => {
        if (!busy && document.visibilityState !== "hidden") {
          stale = true;
          work();
        }
        schedulePoll();
      },
      status === "handoff" ? POLL_HANDOFF_MS : POLL_ACTIVE_MS,
    );
  }

  // --- the interface -------------------------------------------------------------------------

  function build() {
    const primary = color(agent.brand && agent.brand.primary_color, "#1f5fbf");
    const accent = color(agent.brand && agent.brand.accent_color, primary);
    const light = luminance(primary) > 0.45;
    const settings = agent.widget || {};
    const persona = agent.persona_name || agent.name;

    const host = document.createElement("demandly-chat");
    // Inline !important through the CSSOM (which CSP allows) beats any page rule on the host.
    host.style.setProperty("all", "initial", "important");
    host.style.setProperty("display", "block", "important");
    const shadow = host.attachShadow({ mode: "open" });
    try {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      shadow.adoptedStyleSheets = [sheet];
    } catch (e) {
      shadow.appendChild(el("style", { text: CSS }));
    }

    const root = el("div", { class: "root" + (settings.position === "bottom-left" ? " left" : "") });
    root.style.setProperty("--p", primary);
    root.style.setProperty("--on-p", light ? "#111827" : "#ffffff");
    root.style.setProperty("--p-text", light ? "#1f2933" : primary);
    root.style.setProperty("--a", accent);

    const launcher = el(
      "button",
      {
        class: "launcher",
        type: "button",
        "aria-label": T.open + ": " + persona,
        "aria-expanded": "false",
        "aria-controls": "dm-panel",
        onclick: () => (isOpen ? close() : open(true)),
      },
      [icon("chat"), el("span", { class: "label", text: persona })],
    );

    const avatar = el("span", { class: "avatar", "aria-hidden": "true" });
    if (settings.avatar_url && /^https?:\/\//.test(settings.avatar_url)) {
      avatar.appendChild(el("img", { src: settings.avatar_url, alt: "" }));
    } else {
      avatar.textContent = persona.charAt(0).toUpperCase();
    }

    const log = el("ol", { class: "log", "aria-label": T.log, tabindex: "0" });
    const input = el("textarea", {
      id: "dm-input",
      rows: "1",
      maxlength: String(MAX_CHARS),
      placeholder: T.placeholder,
      "aria-label": T.input,
      autocomplete: "off",
      enterkeyhint: "send",
    });
    const form = el("form", { novalidate: true }, [
      input,
      el("button", { class: "send", type: "submit", "aria-label": T.send }, icon("send")),
    ]);
    const submit = () => {
      if (send(input.value)) {
        input.value = "";
        grow();
      }
    };
    const grow = () => {
      input.style.height = "auto";
      input.style.height = Math.min(input.scrollHeight + 2, 120) + "px";
    };
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      submit();
    });
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        submit();
      }
    });
    input.addEventListener("input", grow);

    const accept = el("button", { class: "primary", type: "button", text: T.accept, onclick: startConversation });
    const policy = agent.privacy_policy_url && /^https?:\/\//.test(agent.privacy_policy_url)
      ? el("a", { href: agent.privacy_policy_url, target: "_blank", rel: "noopener noreferrer", text: T.policy })
      : null;
    const consent = el("section", { class: "consent", "aria-labelledby": "dm-consent-title" }, [
      el("h3", { id: "dm-consent-title", text: T.consentTitle }),
      el("p", { id: "dm-notice", text: agent.privacy_notice }),
      policy,
      accept,
    ]);
    const restart = el("button", { class: "primary", type: "button", text: T.restart, onclick: forgetAndFocus });
    const ended = el("div", { class: "ended" }, restart);
    const banner = el("div", { class: "banner", role: "status" });
    const quick = el("div", { class: "quick", role: "group", "aria-label": T.suggestions, hidden: true });
    const live = el("div", { class: "sr", "aria-live": "polite", "aria-atomic": "false" });

    const panel = el(
      "div",
      { id: "dm-panel", class: "panel", role: "dialog", "aria-modal": "false", "aria-labelledby": "dm-title", hidden: true },
      [
        el("header", null, [
          avatar,
          el("div", { class: "title" }, [
            el("h2", { id: "dm-title", text: persona }),
            el("p", { class: "sub", text: agent.name }),
          ]),
          el("button", { class: "close", type: "button", "aria-label": T.close, onclick: close }, icon("close")),
        ]),
        banner,
        log,
        quick,
        consent,
        ended,
        form,
        live,
      ],
    );
    root.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && isOpen) {
        e.stopPropagation();
        close();
      } else if (e.key === "Tab" && isOpen && fullScreen()) {
        trapFocus(e);
      }
    });

    root.appendChild(launcher);
    root.appendChild(panel);
    shadow.appendChild(root);
    ui = { host, shadow, root, launcher, panel, log, input, form, accept, consent, ended, restart, banner, quick, live, persona };
    const attach = () => document.body.appendChild(host);
    if (document.body) attach();
    else document.addEventListener("DOMContentLoaded", attach);
    renderNotes();
  }

  function forgetAndFocus() {
    forget();
    note("err", null);
    ui.accept.focus();
  }

  function fullScreen() {
    return !!(window.matchMedia && window.matchMedia(SMALL).matches);
  }

  // Full screen, the panel is all there is: Tab cycles inside it instead of the page behind.
  function trapFocus(e) {
    const items = Array.from(ui.panel.querySelectorAll("button, textarea, a[href]")).filter(
      (node) => !node.disabled && node.getClientRects().length,
    );
    if (!items.length) return;
    const first = items[0];
    const last = items[items.length - 1];
    const active = ui.shadow.activeElement;
    if (e.shiftKey && (active === first || !ui.panel.contains(active))) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && (active === last || !ui.panel.contains(active))) {
      e.preventDefault();
      first.focus();
    }
  }

  function open(focus) {
    isOpen = true;
    ui.panel.hidden = false;
    ui.panel.setAttribute("aria-modal", fullScreen() ? "true" : "false");
    ui.root.classList.add("open");
    ui.launcher.setAttribute("aria-expanded", "true");
    save();
    scrollDown(true);
    schedulePoll();
    if (focus) {
      if (!conv) ui.accept.focus();
      else if (status === "ended") ui.restart.focus();
      else ui.input.focus();
    }
    if (conv && loaded && !busy) {
      stale = true;
      work();
    }
  }

  function close() {
    isOpen = false;
    ui.panel.hidden = true;
    ui.root.classList.remove("open");
    ui.launcher.setAttribute("aria-expanded", "false");
    clearTimeout(pollTimer);
    save();
    ui.launcher.focus();
  }

  function renderMode() {
    if (!ui) return;
    ui.consent.hidden = !!conv;
    ui.form.hidden = !conv || status === "ended";
    ui.ended.hidden = !conv || status !== "ended";
  }

  function note(slot, text) {
    notes[slot] = text;
    renderNotes();
  }

  function renderNotes() {
    if (!ui) return;
    const text = notes.net || notes.err || notes.state;
    ui.banner.hidden = !text;
    ui.banner.className = "banner" + (!notes.net && notes.err ? " err" : "");
    ui.banner.textContent = text || "";
  }

  function intro() {
    if (agent.greeting) {
      ui.log.appendChild(bubble("assistant", agent.greeting, "intro"));
    }
  }

  function clearLog() {
    shown.clear();
    lastSeq = 0;
    streamEl = null;
    typingEl = null;
    ui.log.textContent = "";
  }

  function speaker(role) {
    return role === "user" ? T.you : role === "human" ? T.team : ui.persona;
  }

  function bubble(role, text, extra) {
    const kind = role === "user" ? "me" : role === "human" ? "human" : "bot";
    const children = [el("span", { class: role === "human" ? "who" : "sr", text: speaker(role) + (role === "human" ? "" : ": ") })];
    return el("li", { class: "msg " + kind + (extra ? " " + extra : "") }, children.concat(linkified(text)));
  }

  function add(m, announce) {
    if (!m || !m.content || shown.has(m.seq)) return;
    shown.set(m.seq, m);
    lastSeq = Math.max(lastSeq, m.seq);
    const li = bubble(m.role, m.content);
    li.dataset.seq = String(m.seq);
    const cited = sourceLinks(m.sources);
    if (cited) li.appendChild(cited);
    let before = null;
    for (const child of ui.log.children) {
      const seq = child.dataset.seq;
      if (!seq || Number(seq) > m.seq) {
        before = child;
        break;
      }
    }
    const atEnd = nearBottom();
    ui.log.insertBefore(li, before);
    if (announce && m.role !== "user") {
      ui.live.appendChild(el("p", { text: speaker(m.role) + ": " + m.content }));
      while (ui.live.childNodes.length > 3) ui.live.removeChild(ui.live.firstChild);
    }
    scrollDown(atEnd);
    renderQuick();
  }

  function sourceLinks(sources) {
    if (!sources || !sources.length) return null;
    const items = [];
    for (const source of sources.slice(0, 5)) {
      if (items.length) items.push(", ");
      const safe = source.url && /^https?:\/\//.test(source.url);
      items.push(safe ? el("a", { href: source.url, target: "_blank", rel: "noopener noreferrer", text: source.title || source.url }) : source.title);
    }
    return el("span", { class: "src" }, [T.sources + ": "].concat(items));
  }

  function pendingBubble(item) {
    const li = bubble("user", item.text, "pending");
    li.dataset.cid = item.id;
    li.appendChild(el("span", { class: "state", text: T.sending }));
    ui.log.insertBefore(li, typingEl && typingEl.parentNode ? typingEl : null);
  }

  function findPending(id) {
    for (const child of ui.log.children) if (child.dataset.cid === id) return child;
    return null;
  }

  function unpend(id) {
    const li = findPending(id);
    if (li) li.remove();
  }

  function failBubble(item, why) {
    const li = findPending(item.id);
    if (!li) return;
    li.classList.remove("pending");
    li.classList.add("failed");
    li.lastChild.textContent = why;
  }

  function showTyping() {
    if (typingEl) return;
    typingEl = el("li", { class: "typing", "aria-label": T.typing.replace("{name}", ui.persona) }, [
      el("i"),
      el("i"),
      el("i"),
    ]);
    const atEnd = nearBottom();
    ui.log.appendChild(typingEl);
    scrollDown(atEnd);
  }

  function hideTyping() {
    if (typingEl) typingEl.remove();
    typingEl = null;
  }

  function streamText(text) {
    const atEnd = nearBottom();
    if (!streamEl) {
      // Screen readers hear the finished message (live region), not every fragment.
      streamEl = el("li", { class: "msg bot streaming", "aria-hidden": "true" }, document.createTextNode(""));
      ui.log.appendChild(streamEl);
    }
    streamEl.firstChild.appendData(text);
    scrollDown(atEnd);
  }

  function dropStream() {
    if (streamEl) streamEl.remove();
    streamEl = null;
  }

  function renderQuick() {
    if (!ui) return;
    ui.quick.textContent = "";
    let last = null;
    for (const m of shown.values()) if (!last || m.seq > last.seq) last = m;
    const options = last && last.role === "assistant" ? last.quick_replies || [] : [];
    if (status !== "active" || outbox.length || !options.length) {
      ui.quick.hidden = true;
      return;
    }
    for (const option of options) {
      ui.quick.appendChild(el("button", { type: "button", text: option, onclick: () => send(option) && ui.input.focus() }));
    }
    ui.quick.hidden = false;
  }

  function nearBottom() {
    const log = ui.log;
    return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  }

  function scrollDown(force) {
    if (force) ui.log.scrollTop = ui.log.scrollHeight;
  }

  window.addEventListener("online", () => {
    if (conv && retryTimer) {
      clearTimeout(retryTimer);
      retryTimer = 0;
      work();
    }
  });

  boot(0);
})();
