// Demo web chat: the cookie banner and preference centre. No third-party code, no cookies.
//
// Storage, by category (README: "Demo web chat and cookie banner"):
//   technical (no consent): sessionStorage "parley.session" (the chat in this tab, written by chat.js) and,
//     once a choice is made, localStorage "parley.consent" (the choice itself, so it is honoured next time);
//   cookies_functional: localStorage "parley.session" (the conversation is remembered across visits);
//   cookies_analytics: /chat-analytics.js is loaded, and keeps localStorage "parley.analytics";
//   cookies_marketing, cookies_profiling: recorded and honoured; this page has no such features.
// Closing the banner (× or Escape) records and stores nothing: non-essential stays off and the banner comes back.
"use strict";

(() => {
  const { t, locale } = window.parleyI18n;
  const PURPOSES = ["cookies_functional", "cookies_analytics", "cookies_marketing", "cookies_profiling"];
  const RECORD_KEY = "parley.consent";
  const channelId = new URLSearchParams(location.search).get("channel");

  const banner = document.getElementById("cookie-banner");
  const bannerNotice = document.getElementById("cookie-notice");
  const bannerVersion = document.getElementById("cookie-notice-version");
  const bannerError = document.getElementById("cookie-banner-error");
  const dialog = document.getElementById("cookie-preferences");
  const prefsNotice = document.getElementById("prefs-notice");
  const prefsVersion = document.getElementById("prefs-notice-version");
  const prefsError = document.getElementById("prefs-error");
  const settingsButton = document.getElementById("cookie-settings");
  const announcer = document.getElementById("consent-status");

  const listeners = [];
  let notice = null;
  let busy = false;

  /** The stored choice record (technical storage), or null when no choice was ever made. */
  function readRecord() {
    try {
      const record = JSON.parse(localStorage.getItem(RECORD_KEY) ?? "null");
      if (record && typeof record.visitor === "string" && record.choices && typeof record.choices === "object") return record;
    } catch {
      // unreadable: treated as no choice
    }
    return null;
  }

  let record = readRecord();

  /** Current state: a category is on only if the person granted it. */
  function current() {
    const state = {};
    for (const purpose of PURPOSES) state[purpose] = record?.choices?.[purpose] === true;
    return state;
  }

  function randomId() {
    const bytes = crypto.getRandomValues(new Uint8Array(24));
    return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function announce(text) {
    announcer.textContent = "";
    // A fresh text node so screen readers announce repeats too.
    setTimeout(() => (announcer.textContent = text), 50);
  }

  // ------------------------------------------------------------ gated features

  let analyticsRequested = false;

  /** Loads the first-party analytics hook only once analytics is granted; stops it and clears its data when withdrawn. */
  function applyAnalytics(on) {
    if (on && !analyticsRequested) {
      analyticsRequested = true;
      const script = document.createElement("script");
      script.src = "/chat-analytics.js";
      script.async = true;
      document.head.append(script);
    } else if (on) {
      window.parleyAnalytics?.start();
    } else {
      window.parleyAnalytics?.stop();
      localStorage.removeItem("parley.analytics");
    }
  }

  function applyAll(previous) {
    const state = current();
    if (state.cookies_analytics || analyticsRequested) applyAnalytics(state.cookies_analytics);
    for (const listener of listeners) listener(state, previous);
  }

  // ------------------------------------------------------------ notice

  function showNotice() {
    const text = notice ? notice.text : t("noticeFailed");
    const version = notice ? t("noticeVersion", { version: notice.version }) : "";
    bannerNotice.removeAttribute("data-i18n");
    bannerNotice.textContent = text;
    prefsNotice.textContent = text;
    bannerVersion.textContent = version;
    prefsVersion.textContent = version;
    for (const button of document.querySelectorAll(".choice")) button.disabled = !notice || busy;
  }

  async function loadNotice() {
    if (!channelId) return null;
    try {
      const res = await fetch(`/chat/${encodeURIComponent(channelId)}/notice?purpose=cookies&locale=${locale}`, { headers: { accept: "application/json" } });
      if (!res.ok) return null;
      return await res.json();
    } catch {
      return null;
    }
  }

  // ------------------------------------------------------------ banner and dialog

  function showBanner() {
    banner.hidden = false;
  }

  function hideBanner() {
    const hadFocus = banner.contains(document.activeElement);
    banner.hidden = true;
    if (hadFocus) (document.getElementById("text").disabled ? settingsButton : document.getElementById("text")).focus();
  }

  /** × or Escape: not consent. Nothing is recorded or stored; the banner returns on the next page load. */
  function dismissBanner() {
    if (banner.hidden) return;
    hideBanner();
    announce(t("closed"));
  }

  function openPreferences() {
    const state = current();
    // Unticked unless this person ticked them before: no pre-ticked boxes.
    for (const purpose of PURPOSES) document.getElementById(`pref-${purpose}`).checked = state[purpose];
    prefsError.hidden = true;
    showNotice();
    dialog.showModal();
  }

  function setError(text) {
    for (const el of [bannerError, prefsError]) {
      el.textContent = text;
      el.hidden = !text;
    }
  }

  /** Records a complete choice on the notice shown; only a recorded choice is stored and applied. */
  async function choose(choices) {
    if (!notice || !channelId || busy) return;
    busy = true;
    showNotice();
    setError("");
    const visitor = record?.visitor ?? randomId();
    try {
      const res = await fetch(`/chat/${encodeURIComponent(channelId)}/consents`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify({ subject: visitor, choices, noticeId: notice.id }),
      });
      if (res.status === 409) {
        notice = await loadNotice();
        setError(t("noticeChanged"));
        if (dialog.open) dialog.close();
        showBanner();
        return;
      }
      if (!res.ok) {
        setError(t("saveFailed"));
        return;
      }
      const previous = current();
      record = { v: 1, visitor, noticeId: notice.id, noticeVersion: notice.version, locale: notice.locale, choices, at: new Date().toISOString() };
      localStorage.setItem(RECORD_KEY, JSON.stringify(record));
      if (dialog.open) dialog.close();
      hideBanner();
      announce(t("saved"));
      applyAll(previous);
    } catch {
      setError(t("saveFailed"));
    } finally {
      busy = false;
      showNotice();
    }
  }

  const all = (value) => Object.fromEntries(PURPOSES.map((p) => [p, value]));

  function onChoice(event) {
    const button = event.target.closest("[data-choice]");
    if (!button) return;
    const kind = button.dataset.choice;
    if (kind === "accept") void choose(all(true));
    else if (kind === "reject") void choose(all(false));
    else if (kind === "preferences") openPreferences();
    else if (kind === "save") {
      const picked = {};
      for (const purpose of PURPOSES) picked[purpose] = document.getElementById(`pref-${purpose}`).checked;
      void choose(picked);
    }
  }

  banner.addEventListener("click", onChoice);
  dialog.addEventListener("click", onChoice);
  document.getElementById("cookie-close").addEventListener("click", dismissBanner);
  // The dialog's × and Escape (the native "cancel") close it without recording anything.
  document.getElementById("prefs-close").addEventListener("click", () => dialog.close());
  document.getElementById("prefs-form").addEventListener("submit", (event) => event.preventDefault());
  settingsButton.addEventListener("click", openPreferences);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !dialog.open && !banner.hidden) dismissBanner();
  });

  async function init() {
    showNotice();
    if (!channelId) {
      settingsButton.disabled = true;
      return;
    }
    // Ask when no choice was recorded, or when the notice in this language changed since.
    if (!record) showBanner();
    notice = await loadNotice();
    if (notice) {
      window.parleyI18n.setBusiness(notice.business);
      document.getElementById("title").textContent = notice.business;
    }
    if (record && notice && record.locale === notice.locale && record.noticeId !== notice.id) showBanner();
    showNotice();
  }

  window.parleyConsent = {
    purposes: PURPOSES,
    /** Current state per category (true only when granted). */
    state: current,
    /** Calls `listener(state, previous)` after every recorded choice. */
    onChange(listener) {
      listeners.push(listener);
    },
  };

  applyAll(current());
  void init();
})();
