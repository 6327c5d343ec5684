// Shared by every screen: calls to our API with the session's CSRF token, notices for
// the user, and a live event stream that reconnects by itself.
"use strict";

const Pathway = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

  async function api(method, url, body) {
    const options = { method, headers: { "X-CSRF-Token": csrf(), Accept: "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const answer = await fetch(url, options);
    const text = await answer.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
    if (!answer.ok) {
      const detail = data && data.detail ? data.detail : answer.statusText;
      throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
    }
    return data;
  }

  function notify(message, bad = false) {
    const box = document.getElementById("notice");
    if (!box) return;
    box.textContent = message;
    box.classList.toggle("bad", bad);
    box.hidden = false;
    clearTimeout(notify.timer);
    notify.timer = setTimeout(() => { box.hidden = true; }, bad ? 10000 : 4000);
  }

  // Server-sent events: onEvent(kind, data) for each; EventSource reconnects itself.
  function live(url, onEvent) {
    const source = new EventSource(url);
    source.onmessage = (message) => {
      try {
        const event = JSON.parse(message.data);
        onEvent(event.kind, event);
      } catch (_) { /* a keep-alive or a malformed line: ignore */ }
    };
    return source;
  }

  return { api, notify, live };
})();
