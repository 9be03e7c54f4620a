// Demo web chat: a first-party analytics hook, loaded by consent.js only after `cookies_analytics` is granted.
// It counts visits and messages sent on this device (localStorage "parley.analytics") and sends nothing anywhere:
// a tenant would replace the body of record() with a call to its own first-party endpoint. Never a third-party origin.
"use strict";

(() => {
  const KEY = "parley.analytics";
  let active = true;

  function read() {
    try {
      const data = JSON.parse(localStorage.getItem(KEY) ?? "null");
      if (data && typeof data.visits === "number" && typeof data.messagesSent === "number") return data;
    } catch {
      // start again
    }
    return { visits: 0, messagesSent: 0, since: new Date().toISOString() };
  }

  function record(event) {
    if (!active || !window.parleyConsent?.state().cookies_analytics) return;
    const data = read();
    if (event === "visit") data.visits += 1;
    else if (event === "message_sent") data.messagesSent += 1;
    localStorage.setItem(KEY, JSON.stringify(data));
  }

  window.parleyAnalytics = {
    record,
    start() {
      active = true;
    },
    /** Withdrawal: nothing more is counted (consent.js also deletes what was stored). */
    stop() {
      active = false;
    },
  };
  record("visit");
})();
