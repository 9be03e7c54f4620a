// Demo web chat: English and Italian strings, picked from navigator.language. No third-party code, no storage.
"use strict";

(() => {
  const STRINGS = {
    en: {
      disclosure: "You are chatting with an automated assistant (an AI system), not a person. A person from our team can take over at any time: just ask.",
      disclosureHuman:
        "A person from {business} has joined this conversation. Replies marked “{agent}” are written by a person; replies marked “{ai}” come from the automated assistant (an AI system).",
      humanJoined: "A person from {business} has joined the conversation: you are now talking to a human.",
      handoff: "Your conversation has been passed to a person from {business}: the automated assistant has stopped answering, and a person will reply here.",
      you: "You",
      ai: "Assistant (AI)",
      agent: "{business} team (a person)",
      system: "{business} (automatic message)",
      connecting: "Connecting…",
      connected: "Connected",
      reconnecting: "Reconnecting…",
      noChannel: "No chat channel: open this page with ?channel=<web chat channel id> (npm start prints the link).",
      notSent: "Not sent: {reason}",
      messageLabel: "Your message",
      placeholder: "Write a message…",
      send: "Send",
      conversation: "Conversation",
      fineprint: "Messages are stored by {business} to answer you and deleted after the retention period.",
      staff: "Staff sign-in",
      api: "API",
      cookieSettings: "Cookie settings",
      bannerTitle: "Cookies and similar technologies",
      close: "Close without choosing",
      bannerHint: "Closing this banner is not a choice: only the technical storage the chat needs is used, and we will ask again next time.",
      rejectAll: "Reject all",
      acceptAll: "Accept all",
      preferences: "Preferences",
      save: "Save my choices",
      noticeLoading: "Loading the cookie notice…",
      noticeFailed: "The cookie notice could not be loaded, so no choice can be recorded right now. Only technical storage is used.",
      noticeVersion: "Notice version {version}",
      saved: "Your cookie choices were saved.",
      saveFailed: "Your choice could not be saved; please try again. Meanwhile only technical storage is used.",
      noticeChanged: "The cookie notice has changed: please read it and choose again.",
      closed: "Cookie banner closed without a choice: only technical storage is used.",
      prefsTitle: "Cookie settings",
      categories: "Categories",
      technical: "Technical (always on)",
      technicalDesc: "Keeps your chat open in this tab (session storage, gone when you close it) and remembers your cookie choice. No consent is needed for these.",
      functional: "Functional",
      functionalDesc: "Remembers your conversation on this device, so it is still here when you come back.",
      analytics: "Analytics",
      analyticsDesc: "Counts visits and messages sent, on this device, to measure in aggregate how the chat is used. Nothing is sent to other companies.",
      marketing: "Marketing",
      marketingDesc: "Would let us show you relevant offers of ours. This page has no marketing features; your choice is recorded and respected.",
      profiling: "Profiling",
      profilingDesc: "Would tailor content to your interests. This page does no profiling; your choice is recorded and respected.",
    },
    it: {
      disclosure:
        "Stai parlando con un assistente automatico (un sistema di intelligenza artificiale), non con una persona. Una persona del nostro team può subentrare in qualsiasi momento: basta chiederlo.",
      disclosureHuman:
        "Una persona di {business} si è unita alla conversazione. Le risposte indicate come “{agent}” sono scritte da una persona; quelle indicate come “{ai}” vengono dall'assistente automatico (un sistema di intelligenza artificiale).",
      humanJoined: "Una persona di {business} si è unita alla conversazione: ora stai parlando con un essere umano.",
      handoff: "La tua conversazione è stata passata a una persona di {business}: l'assistente automatico non risponde più e una persona ti risponderà qui.",
      you: "Tu",
      ai: "Assistente (IA)",
      agent: "Team {business} (una persona)",
      system: "{business} (messaggio automatico)",
      connecting: "Connessione in corso…",
      connected: "Connesso",
      reconnecting: "Riconnessione in corso…",
      noChannel: "Nessun canale di chat: apri questa pagina con ?channel=<id del canale web chat> (npm start stampa il link).",
      notSent: "Non inviato: {reason}",
      messageLabel: "Il tuo messaggio",
      placeholder: "Scrivi un messaggio…",
      send: "Invia",
      conversation: "Conversazione",
      fineprint: "I messaggi sono conservati da {business} per risponderti e cancellati alla fine del periodo di conservazione.",
      staff: "Accesso staff",
      api: "API",
      cookieSettings: "Impostazioni cookie",
      bannerTitle: "Cookie e tecnologie simili",
      close: "Chiudi senza scegliere",
      bannerHint: "Chiudere questo banner non è una scelta: usiamo solo la memoria tecnica necessaria alla chat e te lo chiederemo di nuovo la prossima volta.",
      rejectAll: "Rifiuta tutto",
      acceptAll: "Accetta tutto",
      preferences: "Preferenze",
      save: "Salva le mie scelte",
      noticeLoading: "Caricamento dell'informativa cookie…",
      noticeFailed: "Non è stato possibile caricare l'informativa cookie, quindi ora non possiamo registrare una scelta. Usiamo solo la memoria tecnica.",
      noticeVersion: "Versione dell'informativa {version}",
      saved: "Le tue scelte sui cookie sono state salvate.",
      saveFailed: "Non è stato possibile salvare la tua scelta; riprova. Nel frattempo usiamo solo la memoria tecnica.",
      noticeChanged: "L'informativa cookie è cambiata: leggila e scegli di nuovo.",
      closed: "Banner chiuso senza una scelta: usiamo solo la memoria tecnica.",
      prefsTitle: "Impostazioni cookie",
      categories: "Categorie",
      technical: "Tecnici (sempre attivi)",
      technicalDesc: "Mantengono aperta la chat in questa scheda (memoria di sessione, cancellata quando la chiudi) e ricordano la tua scelta sui cookie. Non richiedono consenso.",
      functional: "Funzionali",
      functionalDesc: "Ricordano la tua conversazione su questo dispositivo, così la ritrovi quando torni.",
      analytics: "Analitici",
      analyticsDesc: "Contano, su questo dispositivo, visite e messaggi inviati, per misurare in forma aggregata come viene usata la chat. Nulla viene inviato ad altre aziende.",
      marketing: "Marketing",
      marketingDesc: "Ci permetterebbero di mostrarti nostre offerte pertinenti. Questa pagina non ha funzioni di marketing; la tua scelta viene registrata e rispettata.",
      profiling: "Profilazione",
      profilingDesc: "Adatterebbero i contenuti ai tuoi interessi. Questa pagina non fa profilazione; la tua scelta viene registrata e rispettata.",
    },
  };

  const locale = /^it\b/i.test(navigator.language || "") ? "it" : "en";
  const vars = { business: "Demo Shop" };

  /** A string in the page's language, with {placeholders} filled from `extra` and the page variables. */
  function t(key, extra = {}) {
    const all = { ...vars, ...extra };
    const template = STRINGS[locale][key] ?? STRINGS.en[key] ?? key;
    return template.replace(/\{(\w+)\}/g, (_m, name) => (name === "agent" || name === "ai" ? t(name) : String(all[name] ?? "")));
  }

  /** Re-renders every element marked data-i18n (text), data-i18n-placeholder and data-i18n-label (aria-label). */
  function apply(root = document) {
    for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.setAttribute("placeholder", t(el.dataset.i18nPlaceholder));
    for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  }

  document.documentElement.lang = locale;
  apply();

  window.parleyI18n = {
    locale,
    t,
    apply,
    /** Sets the business name shown on the page (from the tenant's notice) and re-renders. */
    setBusiness(name) {
      if (typeof name === "string" && name.trim()) vars.business = name.trim();
      apply();
    },
  };
})();
