// Parley admin: the settings and privacy sections. Each renderer fills its section's body from the /v1 API.
import { api, can, day, download, el, errorText, field, say, session, statusLine, svg, tableWrap, when } from "./lib.js";

const readOnlyNote = (what) => el("p", { class: "hint" }, `Read-only: a ${session.me.role} key cannot change ${what}.`);
const input = (props) => el("input", { autocomplete: "off", ...props });
const select = (options, value, props = {}) =>
  el("select", props, options.map(([v, label]) => el("option", { value: v, selected: v === value }, label)));

/** Runs an action, reporting success or the API's error in `status`. */
async function act(status, fn, done) {
  try {
    const out = await fn();
    say(status, typeof done === "function" ? done(out) : done);
    return out;
  } catch (err) {
    say(status, errorText(err), true);
    return undefined;
  }
}

// ---------------------------------------------------------------- AI settings

async function settings(body) {
  const s = await api("GET", "/v1/settings");
  const write = can("settings:write");
  const replies = input({ type: "checkbox", id: "ai-replies", checked: s.ai.replies });
  const summaries = input({ type: "checkbox", id: "ai-summaries", checked: s.ai.summaries });
  const intent = input({ type: "checkbox", id: "ai-intent", checked: s.ai.intent });
  const provider = select([["", `Automatic (now: ${s.effectiveProvider})`], ["local", "Local (knowledge base, offline)"], ["openai", "OpenAI"]], s.provider ?? "", { id: "ai-provider" });
  const model = input({ id: "ai-model", value: s.model, maxlength: "100", required: true });
  const threshold = input({ id: "confidence", type: "number", min: "0", max: "1", step: "0.01", value: String(s.confidenceThreshold), required: true });
  const handoff = input({ type: "checkbox", id: "ai-handoff-low", checked: s.handoffOnLowConfidence });
  const budget = input({ id: "ai-budget", type: "number", min: "0", max: "10000000", step: "1", value: String(s.dailyAiCallBudget) });
  const persona = el("textarea", { id: "persona", maxlength: "4000", rows: "4" });
  persona.value = s.persona;
  const status = statusLine("settings-status");
  const fieldset = el(
    "fieldset",
    { disabled: !write },
    el("legend", {}, "Automatic features"),
    field("Automatic replies to end users", replies),
    field("Conversation summaries", summaries),
    field("Intent labels on inbound messages", intent),
  );
  const form = el(
    "form",
    {
      id: "settings-form",
      class: "stack",
      onsubmit: (event) => {
        event.preventDefault();
        act(
          status,
          () =>
            api("PATCH", "/v1/settings", {
              ai: { replies: replies.checked, summaries: summaries.checked, intent: intent.checked },
              provider: provider.value || null,
              model: model.value.trim(),
              confidenceThreshold: Number(threshold.value),
              handoffOnLowConfidence: handoff.checked,
              dailyAiCallBudget: Number(budget.value),
              persona: persona.value,
            }),
          (out) => `Saved at ${when(out.updatedAt)}.`,
        );
      },
    },
    fieldset,
    el(
      "fieldset",
      { disabled: !write },
      el("legend", {}, "Model and behaviour"),
      field("Provider", provider),
      field("Model", model, "Used by the OpenAI provider."),
      field("Confidence threshold (0–1)", threshold, "Replies below this confidence are never sent."),
      field("Hand off to a human below the threshold", handoff),
      field("AI calls per day (0 turns the AI off)", budget, `Calls today are shown under Agent health.`),
      field("Persona", persona),
    ),
    write ? el("button", { type: "submit" }, "Save settings") : readOnlyNote("settings"),
    status,
  );
  body.replaceChildren(el("p", { class: "hint" }, `Last changed: ${when(s.updatedAt)}.`), form);
}

// ---------------------------------------------------------------- knowledge base

async function knowledge(body) {
  const { entries } = await api("GET", "/v1/knowledge");
  const write = can("settings:write");
  const list = el("ol", { class: "kb" });
  const status = statusLine("kb-status");
  const row = (entry) => {
    const q = el("textarea", { rows: "2", maxlength: "500", required: true, minlength: "3", class: "kb-q" });
    q.value = entry.question;
    const a = el("textarea", { rows: "3", maxlength: "4000", required: true, class: "kb-a" });
    a.value = entry.answer;
    const li = el("li", {}, field("Question", q), field("Answer", a));
    if (write) li.append(el("button", { type: "button", onclick: () => { li.remove(); list.querySelector("textarea")?.focus(); } }, "Remove entry"));
    else for (const t of [q, a]) t.readOnly = true;
    return li;
  };
  list.append(...entries.map(row));
  const form = el(
    "form",
    {
      id: "kb-form",
      onsubmit: (event) => {
        event.preventDefault();
        const next = [...list.children].map((li) => ({ question: li.querySelector(".kb-q").value.trim(), answer: li.querySelector(".kb-a").value.trim() }));
        act(status, () => api("PUT", "/v1/knowledge", { entries: next }), (out) => `Saved ${out.entries.length} entries.`);
      },
    },
    entries.length ? null : el("p", { class: "empty" }, "No entries yet: the local provider stays silent and hands off."),
    list,
    write
      ? el(
          "div",
          { class: "actions" },
          el("button", { type: "button", onclick: () => { const li = row({ question: "", answer: "" }); list.append(li); li.querySelector("textarea").focus(); } }, "Add entry"),
          el("button", { type: "submit" }, "Save knowledge base"),
        )
      : readOnlyNote("the knowledge base"),
    status,
  );
  body.replaceChildren(form);
}

// ---------------------------------------------------------------- channels

/** Provider secrets a person pastes in when rotating (custom channels generate theirs). */
const ROTATE_PROMPT = {
  twilio_sms: { field: "authToken", what: "auth token", label: "New Twilio auth token (from the Twilio console):" },
  twilio_whatsapp: { field: "authToken", what: "auth token", label: "New Twilio auth token (from the Twilio console):" },
  whatsapp_cloud: { field: "accessToken", what: "access token", label: "New WhatsApp Cloud API access token:" },
};

async function channels(body) {
  const list = await api("GET", "/v1/channels");
  const write = can("channels:write");
  const status = statusLine("channels-status");
  const secrets = el("div", { id: "channel-secrets", "aria-live": "polite" });
  const showSecrets = (title, generated) => {
    const pairs = Object.entries(generated || {});
    secrets.replaceChildren(
      pairs.length
        ? el("div", { class: "notice", role: "status" }, el("strong", {}, `${title} — shown once, store it now:`), el("dl", {}, pairs.map(([k, v]) => [el("dt", {}, k), el("dd", {}, el("code", {}, v))])))
        : "",
    );
  };
  const rows = list.data.map((c) =>
    el(
      "tr",
      {},
      el("td", {}, c.name),
      el("td", {}, c.type),
      el("td", {}, el("code", {}, c.webhookUrl)),
      el("td", {}, Object.entries(c.secretHints).map(([k, v]) => `${k} ${v}`).join(", ") || "—"),
      write
        ? el(
            "td",
            { class: "actions" },
            c.type === "custom"
              ? el("button", { type: "button", onclick: async () => { const out = await act(status, () => api("POST", `/v1/channels/${c.id}/rotate-secret`), `Rotated the signing secret of ${c.name}; the previous one works for 24 hours.`); if (out) showSecrets(`New signing secret of ${c.name}`, out.generatedSecrets); } }, `Rotate secret of ${c.name}`)
              : ROTATE_PROMPT[c.type]
                ? el("button", { type: "button", onclick: async () => { const value = prompt(ROTATE_PROMPT[c.type].label); if (!value) return; const done = `Stored the new ${ROTATE_PROMPT[c.type].what} of ${c.name}.`; if (await act(status, () => api("POST", `/v1/channels/${c.id}/rotate-secret`, { [ROTATE_PROMPT[c.type].field]: value.trim() }), done)) { await channels(body); say(document.getElementById("channels-status"), done); } } }, `Rotate secret of ${c.name}`)
                : null,
            el("button", { type: "button", class: "danger", onclick: async () => { if (!confirm(`Disconnect ${c.name}? Its webhooks will answer 404.`)) return; if (await act(status, () => api("DELETE", `/v1/channels/${c.id}`), `Deleted ${c.name}.`)) channels(body); } }, `Delete ${c.name}`),
          )
        : null,
    ),
  );
  const children = [tableWrap(null, ["Name", "Type", "Webhook URL", "Secrets", ...(write ? ["Actions"] : [])], rows.length ? rows : [el("tr", {}, el("td", { colspan: "5", class: "empty" }, "No channels."))]), secrets, status];
  if (write) {
    const name = input({ id: "channel-name", required: true, maxlength: "100" });
    const type = select(
      [["custom", "Custom signed webhook"], ["web_chat", "Web chat"], ["twilio_sms", "Twilio SMS"], ["twilio_whatsapp", "WhatsApp via Twilio"], ["whatsapp_cloud", "WhatsApp Cloud API"]],
      "custom",
      { id: "channel-type" },
    );
    const extra = input({ type: "url", maxlength: "2048", placeholder: "https://…" });
    const accountSid = input({ id: "twilio-account-sid", pattern: "AC[0-9a-fA-F]{32}", placeholder: "AC…" });
    const from = input({ id: "twilio-from", pattern: "\\+[1-9][0-9]{6,14}", placeholder: "+15005550006" });
    const authToken = input({ id: "twilio-auth-token", type: "password" });
    const phoneNumberId = input({ id: "wa-phone-number-id", pattern: "[0-9]{5,32}" });
    const appSecret = input({ id: "wa-app-secret", type: "password" });
    const accessToken = input({ id: "wa-access-token", type: "password" });
    const groups = {
      plain: el("div", { class: "stack" }, field("Callback URL (custom) or allowed origin (web chat)", extra, "Optional.")),
      twilio: el("div", { class: "stack", hidden: true }, field("Account SID", accountSid), field("From number (E.164)", from), field("Auth token", authToken, "Kept encrypted; never shown again.")),
      whatsapp: el("div", { class: "stack", hidden: true }, field("Phone number id", phoneNumberId), field("App secret", appSecret, "Verifies X-Hub-Signature-256."), field("Access token", accessToken, "Kept encrypted; never shown again.")),
    };
    const groupOf = (t) => (t.startsWith("twilio") ? "twilio" : t === "whatsapp_cloud" ? "whatsapp" : "plain");
    const showGroup = () => {
      for (const [key, node] of Object.entries(groups)) {
        const on = key === groupOf(type.value);
        node.hidden = !on;
        for (const control of node.querySelectorAll("input")) control.required = on && key !== "plain";
      }
    };
    type.addEventListener("change", showGroup);
    const channelBody = () => {
      const t = type.value;
      if (t === "twilio_sms" || t === "twilio_whatsapp") return { type: t, name: name.value.trim(), config: { accountSid: accountSid.value.trim(), from: from.value.trim() }, secrets: { authToken: authToken.value } };
      if (t === "whatsapp_cloud") return { type: t, name: name.value.trim(), config: { phoneNumberId: phoneNumberId.value.trim() }, secrets: { appSecret: appSecret.value, accessToken: accessToken.value } };
      const value = extra.value.trim();
      return { type: t, name: name.value.trim(), config: t === "custom" ? (value ? { callbackUrl: value } : {}) : { allowedOrigins: value ? [value] : [] } };
    };
    const form = el(
      "form",
      {
        class: "inline",
        onsubmit: async (event) => {
          event.preventDefault();
          const out = await act(status, () => api("POST", "/v1/channels", channelBody()), (c) => `Created ${c.name}: ${c.webhookUrl}`);
          if (out) {
            await channels(body);
            say(document.getElementById("channels-status"), `Created ${out.name}: webhook URL ${out.webhookUrl}`);
            const again = body.querySelector("#channel-secrets");
            if (again && Object.keys(out.generatedSecrets).length) {
              again.replaceChildren(el("div", { class: "notice", role: "status" }, el("strong", {}, `Secrets of ${out.name} — shown once, store them now:`), el("dl", {}, Object.entries(out.generatedSecrets).map(([k, v]) => [el("dt", {}, k), el("dd", {}, el("code", {}, v))]))));
            }
          }
        },
      },
      el("h3", {}, "Connect a channel"),
      field("Name", name),
      field("Type", type),
      groups.plain,
      groups.twilio,
      groups.whatsapp,
      el("button", { type: "submit" }, "Create channel"),
    );
    children.push(form);
  }
  body.replaceChildren(...children);
}

// ---------------------------------------------------------------- API keys

const RANK = { owner: 3, admin: 2, agent: 1, viewer: 0 };

async function keys(body) {
  const list = await api("GET", "/v1/keys");
  const write = can("keys:write");
  const mine = session.me;
  const status = statusLine("keys-status");
  const shown = el("div", { "aria-live": "polite" });
  const rows = list.data.map((k) =>
    el(
      "tr",
      {},
      el("td", {}, k.name, k.id === mine.id ? " (this key)" : ""),
      el("td", {}, el("code", {}, `${k.prefix}…`)),
      el("td", {}, k.role),
      el("td", {}, when(k.lastUsedAt)),
      el("td", {}, k.revokedAt ? `revoked ${day(k.revokedAt)}` : "active"),
      write
        ? el(
            "td",
            {},
            !k.revokedAt && RANK[mine.role] >= RANK[k.role]
              ? el("button", { type: "button", class: "danger", onclick: async () => { if (!confirm(`Revoke ${k.name}? It stops working at once.`)) return; if (await act(status, () => api("DELETE", `/v1/keys/${k.id}`), `Revoked ${k.name}.`)) keys(body); } }, `Revoke ${k.name}`)
              : "—",
          )
        : null,
    ),
  );
  const children = [tableWrap(null, ["Name", "Prefix", "Role", "Last used", "Status", ...(write ? ["Actions"] : [])], rows), shown, status];
  if (write) {
    const name = input({ required: true, maxlength: "100" });
    const roles = ["viewer", "agent", "admin", "owner"].filter((r) => RANK[r] <= RANK[mine.role]);
    const role = select(roles.map((r) => [r, r]), "agent");
    children.push(
      el(
        "form",
        {
          class: "inline",
          onsubmit: async (event) => {
            event.preventDefault();
            const out = await act(status, () => api("POST", "/v1/keys", { name: name.value.trim(), role: role.value }), (k) => `Created ${k.name}.`);
            if (out) {
              await keys(body);
              const notice = el("div", { class: "notice", role: "status" }, el("strong", {}, `New ${out.role} key "${out.name}" — shown once, copy it now: `), el("code", { id: "new-key" }, out.key));
              body.querySelector("[aria-live]").replaceChildren(notice);
            }
          },
        },
        el("h3", {}, "Create a key"),
        field("Name", name),
        field("Role", role, "owner/admin: everything; agent: read and reply; viewer: read, identifiers masked."),
        el("button", { type: "submit" }, "Create key"),
      ),
    );
  }
  body.replaceChildren(...children);
}

// ---------------------------------------------------------------- retention and legal holds

async function retention(body) {
  const [policies, holds] = await Promise.all([api("GET", "/v1/retention-policies"), api("GET", "/v1/legal-holds?status=all&limit=100")]);
  const write = can("privacy:write");
  const status = statusLine("retention-status");
  const inputs = new Map();
  const rows = policies.policies.map((p) => {
    let control = String(p.effectiveDays);
    if (write && p.configurable) {
      const days = input({ type: "number", min: String(p.minDays), max: String(p.maxDays), step: "1", value: p.overrideDays ?? "", placeholder: String(p.defaultDays), "aria-label": `${p.category} days (empty: default ${p.defaultDays})` });
      inputs.set(p.category, { days, original: p.overrideDays });
      control = days;
    }
    return el("tr", {}, el("th", { scope: "row" }, p.category), el("td", {}, String(p.defaultDays)), el("td", {}, `${p.minDays}–${p.maxDays}`), el("td", {}, control), el("td", {}, p.from), el("td", { class: "note" }, p.note));
  });
  const policyForm = el(
    "form",
    {
      onsubmit: async (event) => {
        event.preventDefault();
        const changed = [...inputs].filter(([, v]) => (v.days.value === "" ? null : Number(v.days.value)) !== v.original).map(([category, v]) => ({ category, days: v.days.value === "" ? null : Number(v.days.value) }));
        if (!changed.length) return say(status, "Nothing changed.");
        if (await act(status, () => api("PUT", "/v1/retention-policies", { policies: changed }), `Saved ${changed.length} change(s).`)) retention(body).then(() => say(document.getElementById("retention-status"), `Saved ${changed.length} change(s).`));
      },
    },
    tableWrap(`Days kept per category (special categories: at most ${policies.specialCategoryMaxDays} days)`, ["Category", "Default", "Allowed", "In force", "Counts from", "Note"], rows),
    write ? el("button", { type: "submit" }, "Save retention") : readOnlyNote("retention"),
    status,
  );
  const holdStatus = statusLine("holds-status");
  const holdRows = holds.data.map((h) =>
    el(
      "tr",
      {},
      el("td", {}, h.scope),
      el("td", {}, h.conversationId ?? (h.subjectHash ? `subject ${h.subjectHash.slice(0, 12)}…` : "whole tenant")),
      el("td", {}, h.reason),
      el("td", {}, h.active ? "active" : `released ${day(h.releasedAt)}`),
      el("td", {}, when(h.createdAt)),
      write ? el("td", {}, h.active ? el("button", { type: "button", onclick: async () => { if (await act(holdStatus, () => api("DELETE", `/v1/legal-holds/${h.id}`), "Released.")) retention(body); } }, `Release hold ${h.id}`) : "—") : null,
    ),
  );
  const children = [el("h3", {}, "Retention policies"), policyForm, el("h3", {}, "Legal holds"), tableWrap(null, ["Scope", "Target", "Reason", "State", "Placed", ...(write ? ["Actions"] : [])], holdRows.length ? holdRows : [el("tr", {}, el("td", { colspan: "6", class: "empty" }, "No legal holds."))]), holdStatus];
  if (write) {
    const scope = select([["conversation", "One conversation"], ["subject", "One person (subject)"], ["tenant", "Everything (tenant)"]], "conversation");
    const target = input({ maxlength: "320", placeholder: "conv_… or +39… / e-mail" });
    const reason = input({ required: true, minlength: "3", maxlength: "500" });
    children.push(
      el(
        "form",
        {
          class: "inline",
          onsubmit: async (event) => {
            event.preventDefault();
            const b = { scope: scope.value, reason: reason.value.trim() };
            if (scope.value === "conversation") b.conversationId = target.value.trim();
            if (scope.value === "subject") b.subject = target.value.trim();
            if (await act(holdStatus, () => api("POST", "/v1/legal-holds", b), "Hold placed.")) retention(body);
          },
        },
        el("h4", {}, "Place a hold"),
        field("Scope", scope),
        field("Conversation id or subject address", target, "Not needed for a tenant-wide hold."),
        field("Reason (case or investigation reference)", reason),
        el("button", { type: "submit" }, "Place hold"),
      ),
    );
  }
  body.replaceChildren(...children);
}

// ---------------------------------------------------------------- consent log

const PURPOSES = ["marketing_email", "marketing_sms", "marketing_whatsapp", "telemarketing", "recording", "voice_clone", "ai_processing", "cookies_functional", "cookies_analytics", "cookies_marketing", "cookies_profiling", "parental_authorization"];

async function consents(body) {
  const subject = input({ id: "consent-subject", maxlength: "320", placeholder: "+39… or name@example.com" });
  const purpose = select([["", "All purposes"], ...PURPOSES.map((p) => [p, p])], "", { id: "consent-purpose" });
  const status = statusLine("consent-status");
  const result = el("div", { id: "consent-result" });
  const query = (extra) => {
    const qs = new URLSearchParams(extra);
    if (subject.value.trim()) qs.set("subject", subject.value.trim());
    if (purpose.value) qs.set("purpose", purpose.value);
    return qs;
  };
  const lookup = async () => {
    if (!subject.value.trim()) return say(status, "Enter a subject to see their consent state; exports work without one.", true);
    const qs = new URLSearchParams({ subject: subject.value.trim(), limit: "200" });
    const out = await act(status, () => api("GET", `/v1/consents?${qs}`), "");
    if (!out) return;
    const history = out.history.filter((h) => !purpose.value || h.purpose === purpose.value);
    result.replaceChildren(
      tableWrap("Current state", ["Purpose", "State", "Since", "Expires"], out.current.filter((c) => !purpose.value || c.purpose === purpose.value).map((c) => el("tr", {}, el("td", {}, c.purpose), el("td", {}, c.state), el("td", {}, when(c.since)), el("td", {}, when(c.expiresAt))))),
      out.minorWithoutAuthorization ? el("p", { class: "error" }, "Minor without parental authorization: AI processing and marketing are refused.") : "",
      tableWrap("History (newest first)", ["When", "Purpose", "Status", "Method", "Notice", "Actor"], history.map((h) => el("tr", {}, el("td", {}, when(h.createdAt)), el("td", {}, h.purpose), el("td", {}, h.status), el("td", {}, h.method), el("td", {}, h.noticeId ?? "—"), el("td", {}, `${h.actor.type} ${h.actor.id ?? ""}`)))),
    );
  };
  const exportAs = (format) => act(status, () => download(`/v1/consents/export?${query({ format })}`, `consents.${format}`), (name) => `Downloaded ${name}.`);
  body.replaceChildren(
    el(
      "form",
      { class: "filters", onsubmit: (event) => { event.preventDefault(); lookup(); } },
      el("div", { class: "field grow" }, el("label", { for: subject.id }, "Subject (phone, e-mail or channel address)"), subject),
      el("div", { class: "field" }, el("label", { for: purpose.id }, "Purpose"), purpose),
      el("div", { class: "actions" }, el("button", { type: "submit" }, "Look up"), el("button", { type: "button", onclick: () => exportAs("csv") }, "Export CSV"), el("button", { type: "button", onclick: () => exportAs("json") }, "Export JSON")),
    ),
    el("p", { class: "hint" }, "Exports cover the whole log (or the subject and purpose above), with notice versions; they are audited."),
    status,
    result,
  );
}

// ---------------------------------------------------------------- data-subject requests

async function dsr(body, section, filter = "") {
  const list = await api("GET", `/v1/dsr${filter ? `?status=${filter}` : ""}`);
  const write = can("privacy:write");
  const status = statusLine("dsr-status");
  const filterSelect = select([["", "All"], ["received", "Received"], ["verified", "Verified"], ["in_progress", "In progress"], ["completed", "Completed"], ["rejected", "Rejected"]], filter, { id: "dsr-filter", onchange: (event) => dsr(body, section, event.target.value) });
  const reload = () => dsr(body, section, filterSelect.value);
  const withInput = (label, kind, fn, props) => {
    const control = input({ required: true, ...props });
    return el(
      "form",
      { class: "mini", onsubmit: async (event) => { event.preventDefault(); if (await act(status, () => fn(control.value.trim()), `${label}: done.`)) reload(); } },
      field(label, control),
      el("button", { type: "submit" }, kind),
    );
  };
  const rows = list.data.map((r) => {
    const actions = [];
    if (write && r.status === "received" && r.verificationMethod === "channel_code") actions.push(withInput(`Code the subject received (${r.id})`, "Verify", (code) => api("POST", `/v1/dsr/${r.id}/verify`, { code }), { inputmode: "numeric", pattern: "\\d{6}", maxlength: "6", class: "code" }));
    if (write && r.status === "verified") actions.push(el("button", { type: "button", onclick: async () => { if (await act(status, () => api("POST", `/v1/dsr/${r.id}/execute`), `Completed ${r.id}.`)) reload(); } }, `Complete ${r.type} request`));
    if (write && (r.status === "received" || r.status === "verified" || r.status === "in_progress") && !r.extended) actions.push(withInput(`Reason to extend by two months (${r.id})`, "Extend", (reason) => api("POST", `/v1/dsr/${r.id}/extend`, { reason }), { minlength: "5", maxlength: "1000" }));
    if (write && (r.status === "received" || r.status === "verified")) actions.push(withInput(`Reason to reject (${r.id})`, "Reject", (reason) => api("POST", `/v1/dsr/${r.id}/reject`, { reason }), { minlength: "5", maxlength: "1000" }));
    if ((r.type === "access" || r.type === "portability") && (r.status === "completed" || r.status === "in_progress")) {
      for (const format of ["json", "csv"]) actions.push(el("button", { type: "button", "data-export": format, onclick: () => act(status, () => download(`/v1/dsr/${r.id}/export?format=${format}`, `dsr-${r.id}.${format}`), (name) => `Downloaded ${name}.`) }, `Export ${format.toUpperCase()}`));
    }
    if (write && (r.type === "restriction" || r.type === "objection") && r.status === "completed") actions.push(el("button", { type: "button", onclick: async () => { if (await act(status, () => api("POST", `/v1/dsr/${r.id}/lift`), "Lifted.")) reload(); } }, "Lift restriction"));
    return el(
      "tr",
      { "data-dsr": r.id, class: r.overdue ? "overdue" : "" },
      el("td", {}, r.type, el("small", { class: "block" }, r.id)),
      el("td", {}, r.status, r.rejectedReason ? el("small", { class: "block" }, r.rejectedReason) : null),
      el("td", {}, day(r.receivedAt)),
      el("td", {}, day(r.dueAt), r.overdue ? el("strong", { class: "error block" }, "overdue") : null, r.extended ? el("small", { class: "block" }, `extended: ${r.extensionReason}`) : null),
      el("td", { class: "actions" }, actions.length ? actions : "—"),
    );
  });
  const children = [
    el("div", { class: "filters" }, el("div", { class: "field" }, el("label", { for: filterSelect.id }, "Status"), filterSelect)),
    tableWrap("Soonest due first (one month from receipt, extendable once by two months)", ["Type", "Status", "Received", "Due", "Actions"], rows.length ? rows : [el("tr", {}, el("td", { colspan: "5", class: "empty" }, "No requests."))]),
    status,
  ];
  if (write) {
    const type = select(["access", "portability", "erasure", "rectification", "restriction", "objection"].map((t) => [t, t]), "access");
    const subject = input({ required: true, minlength: "3", maxlength: "320" });
    const verification = select([["channel_code", "Send a code over the subject's conversation"], ["attested", "Verified out of band (note required)"]], "channel_code");
    const note = input({ maxlength: "1000" });
    children.push(
      el(
        "form",
        {
          class: "inline",
          onsubmit: async (event) => {
            event.preventDefault();
            const b = { type: type.value, subject: subject.value.trim(), verification: verification.value };
            if (note.value.trim()) b.note = note.value.trim();
            if (await act(status, () => api("POST", "/v1/dsr", b), "Request received.")) reload();
          },
        },
        el("h3", {}, "Record a request"),
        field("Type", type),
        field("Subject (phone, e-mail or channel address)", subject),
        field("Identity verification", verification),
        field("Note", note, "How identity was checked (attested), or the corrected data (rectification)."),
        el("button", { type: "submit" }, "Record request"),
      ),
    );
  }
  body.replaceChildren(...children);
}

// ---------------------------------------------------------------- agent health

const OUTCOMES = ["sent", "suppressed", "skipped", "silence", "handoff"];

async function health(body) {
  const data = await api("GET", "/v1/agent-health");
  const days = [];
  for (let t = Date.parse(`${data.from}T00:00:00Z`); t <= Date.parse(`${data.to}T00:00:00Z`); t += 86_400_000) days.push(new Date(t).toISOString().slice(0, 10));
  const byDay = new Map(data.days.map((d) => [d.day, d]));
  const max = Math.max(1, ...data.days.map((d) => d.total));
  const W = 640;
  const H = 200;
  const pad = 28;
  const bw = (W - pad) / days.length;
  const bars = days.flatMap((d, i) => {
    const entry = byDay.get(d);
    let y = H - pad;
    return OUTCOMES.map((o) => {
      const n = entry ? entry.outcomes[o] : 0;
      if (!n) return null;
      const h = ((H - pad - 8) * n) / max;
      y -= h;
      return svg("rect", { x: pad + i * bw + 1, y, width: Math.max(1, bw - 2), height: h, class: `o-${o}` }, svg("title", {}, `${d}: ${n} ${o}`));
    });
  });
  const chart = svg(
    "svg",
    { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "health-chart-title", class: "chart" },
    svg("title", { id: "health-chart-title" }, `AI outcomes per day, ${data.from} to ${data.to} (stacked; table below)`),
    svg("line", { x1: pad, y1: H - pad, x2: W, y2: H - pad, class: "axis" }),
    svg("text", { x: 2, y: 14, class: "tick" }, String(max)),
    svg("text", { x: 2, y: H - pad, class: "tick" }, "0"),
    svg("text", { x: pad, y: H - 8, class: "tick" }, data.from),
    svg("text", { x: W - 70, y: H - 8, class: "tick" }, data.to),
    bars,
  );
  const legend = el("ul", { class: "legend" }, OUTCOMES.map((o) => el("li", {}, el("span", { class: `swatch o-${o}`, "aria-hidden": "true" }), `${o}: ${data.totals[o]}`)));
  body.replaceChildren(
    el("p", {}, `AI provider calls today: ${data.aiCallsToday}. Counts only — no content, no identifiers.`),
    chart,
    legend,
    tableWrap("Outcomes per day", ["Day", ...OUTCOMES, "Total"], data.days.length ? data.days.map((d) => el("tr", {}, el("td", {}, d.day), OUTCOMES.map((o) => el("td", {}, String(d.outcomes[o]))), el("td", {}, String(d.total)))) : [el("tr", {}, el("td", { colspan: "7", class: "empty" }, "No AI decisions in this period."))]),
  );
}

// ---------------------------------------------------------------- audit log

async function audit(body) {
  const status = statusLine("audit-status");
  const chain = el("p", { id: "chain-status", role: "status" }, "Checking the hash chain…");
  const action = input({ id: "audit-action", maxlength: "64", placeholder: "e.g. message.revealed" });
  const tbody = el("tbody");
  const more = el("button", { type: "button", hidden: true }, "Load more");
  let cursor = null;
  const load = async (reset) => {
    if (reset) {
      cursor = null;
      tbody.replaceChildren();
    }
    const qs = new URLSearchParams({ limit: "50" });
    if (action.value.trim()) qs.set("action", action.value.trim());
    if (cursor) qs.set("before", cursor);
    const page = await act(status, () => api("GET", `/v1/audit?${qs}`), "");
    if (!page) return;
    tbody.append(
      ...page.data.map((e) =>
        el("tr", {}, el("td", {}, when(e.createdAt)), el("td", {}, e.action), el("td", {}, `${e.actorType} ${e.actorId ?? ""}`), el("td", {}, `${e.targetType ?? ""} ${e.targetId ?? ""}`), el("td", { class: "note" }, e.detail ? JSON.stringify(e.detail) : ""), el("td", {}, el("code", {}, e.chainHash ? `${e.chainHash.slice(0, 10)}…` : "pending"))),
      ),
    );
    if (!tbody.children.length) tbody.append(el("tr", {}, el("td", { colspan: "6", class: "empty" }, "No entries.")));
    cursor = page.nextCursor;
    more.hidden = !cursor;
  };
  more.addEventListener("click", () => load(false));
  body.replaceChildren(
    chain,
    el("form", { class: "filters", onsubmit: (event) => { event.preventDefault(); load(true); } }, el("div", { class: "field grow" }, el("label", { for: action.id }, "Action"), action), el("div", { class: "actions" }, el("button", { type: "submit" }, "Filter"))),
    status,
    el("div", { class: "table-wrap" }, el("table", {}, el("thead", {}, el("tr", {}, ["When", "Action", "Actor", "Target", "Detail", "Chain link"].map((h) => el("th", { scope: "col" }, h)))), tbody)),
    more,
  );
  await load(true);
  try {
    const v = await api("GET", "/v1/audit/verify");
    chain.className = v.intact ? "ok" : "error";
    chain.textContent = v.intact
      ? `Hash chain intact: ${v.checked} entries verified${v.pending ? `, ${v.pending} pending` : ""}. Head #${v.head ? v.head.id : "—"} ${v.head ? v.head.hash.slice(0, 16) : ""}…`
      : `Hash chain BROKEN at entry #${v.firstBrokenId} (${v.reason}); ${v.checked} entries verified before it.`;
  } catch (err) {
    chain.textContent = `Chain status unavailable: ${errorText(err)}`;
  }
}

// ---------------------------------------------------------------- billing

const PLAN_TEXT = {
  none: "No subscription: billing was never set up. AI features are on.",
  active: "Active subscription. AI features are on.",
  past_due: "Payment past due: Stripe is retrying the last invoice. AI features stay on meanwhile.",
  canceled: "Subscription canceled: automatic replies, summaries and intent labels are off. Conversations are kept under the retention policies.",
};

async function billing(body) {
  const b = await api("GET", "/v1/billing");
  const status = statusLine("billing-status");
  const returned = new URLSearchParams(location.search).get("billing");
  const facts = el(
    "dl",
    { class: "facts" },
    el("dt", {}, "Plan"),
    el("dd", { id: "plan-status", "data-status": b.planStatus }, `${b.planStatus} — ${PLAN_TEXT[b.planStatus] ?? ""}`),
    el("dt", {}, "Current period ends"),
    el("dd", {}, day(b.currentPeriodEnd)),
    el("dt", {}, "Last change"),
    el("dd", {}, when(b.lastEventAt)),
  );
  const children = [facts];
  if (returned === "success") children.push(el("p", { class: "hint", role: "status" }, "Checkout finished. The plan changes when Stripe confirms the payment (usually within seconds): reload this section."));
  if (returned === "canceled") children.push(el("p", { class: "hint", role: "status" }, "Checkout was canceled; nothing changed."));
  if (!b.billingConfigured) {
    children.push(el("p", { class: "hint" }, "Billing is not configured on this deployment (STRIPE_SECRET_KEY and STRIPE_PRICE_IDS are empty)."));
  } else if (b.planStatus !== "active") {
    children.push(
      el(
        "button",
        {
          type: "button",
          id: "billing-checkout",
          onclick: async () => {
            const out = await act(status, () => api("POST", "/v1/billing/checkout", {}), "Opening Stripe Checkout…");
            if (out && out.url) location.assign(out.url);
          },
        },
        b.planStatus === "none" ? "Subscribe" : "Renew subscription",
      ),
    );
  }
  children.push(status);
  const rows = b.recentEvents.map((e) =>
    el(
      "tr",
      {},
      el("td", {}, when(e.createdAt)),
      el("td", {}, e.type),
      el("td", {}, e.outcome),
      el("td", {}, e.planStatus ?? "—"),
      el("td", {}, e.amount === null ? "—" : `${(e.amount / 100).toFixed(2)} ${(e.currency ?? "").toUpperCase()}`),
    ),
  );
  children.push(tableWrap("Recent payment events (metadata only)", ["When", "Event", "Outcome", "Plan", "Amount"], rows));
  body.replaceChildren(...children);
}

/** Section renderers by view name. */
export const renderers = { settings, knowledge, channels, keys, retention, consents, dsr, health, audit, billing };
