// Parley admin: shared helpers (API calls, DOM building, downloads). Plain ES module, no third-party code.

/** The signed-in key and what it may do; filled in by admin.js. */
export const session = { key: sessionStorage.getItem("parley.key"), me: null };

/** An API error with the HTTP status and the API's `{ error: { code, message } }`. */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error ? body.error.code : "http_error";
    this.issues = body && body.error ? body.error.issues : undefined;
  }
}

/** Calls the Parley API with the session key; JSON in, JSON out. */
export async function api(method, path, body, headers = {}) {
  const init = { method, headers: { authorization: `Bearer ${session.key}`, ...headers } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const json = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

/** True when the signed-in key holds `scope`. */
export const can = (scope) => Boolean(session.me && session.me.scopes.includes(scope));

/**
 * Downloads an API resource with the Authorization header (a plain link cannot
 * send it) and saves it through a Blob URL. Returns the file name used.
 */
export async function download(path, fallbackName) {
  const res = await fetch(path, { headers: { authorization: `Bearer ${session.key}` } });
  if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
  const disposition = res.headers.get("content-disposition") || "";
  const match = /filename="?([^";]+)"?/i.exec(disposition);
  const name = match ? match[1] : fallbackName;
  const url = URL.createObjectURL(await res.blob());
  const a = el("a", { href: url, download: name, hidden: "" });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return name;
}

/**
 * Builds an element. `props`: attributes, `on<event>` listeners, `text`
 * (textContent), and boolean attributes given as true/false.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = String(v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) if (child !== null && child !== undefined && child !== false) node.append(child instanceof Node ? child : String(child));
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
/** Builds an SVG element (attributes only; styling comes from admin.css classes). */
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  for (const child of children.flat()) if (child) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

/** A localized date-time, or a dash. */
export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
/** A localized date, or a dash. */
export const day = (iso) => (iso ? new Date(iso).toLocaleDateString() : "—");

let idCounter = 0;
/** A unique element id with a readable prefix. */
export const uid = (prefix) => `${prefix}-${++idCounter}`;

/** A labelled form field: label + control (+ optional hint), wrapped in a div. */
export function field(label, control, hint) {
  if (!control.id) control.id = uid("f");
  const hintNode = hint ? el("small", { class: "hint", id: `${control.id}-hint` }, hint) : null;
  if (hintNode) control.setAttribute("aria-describedby", hintNode.id);
  return el("div", { class: control.type === "checkbox" ? "field check" : "field" }, el("label", { for: control.id }, label), control, hintNode);
}

/** A status line for a form or panel: polite live region, error style on failure. */
export function statusLine(id) {
  return el("p", { class: "status", id, role: "status", "aria-live": "polite" });
}

/** Writes a message into a status line (errors marked for styling and screen readers). */
export function say(node, message, isError = false) {
  if (!node) return;
  node.textContent = message;
  node.classList.toggle("error", isError);
  if (isError) node.setAttribute("role", "alert");
  else node.setAttribute("role", "status");
}

/** The message of an error, with field issues when the API gave them. */
export function errorText(err) {
  if (err instanceof ApiError && err.issues && err.issues.length) return `${err.message}: ${err.issues.map((i) => `${i.path} ${i.message}`).join("; ")}`;
  return err instanceof Error ? err.message : String(err);
}

/** Wraps a table so it scrolls sideways on narrow screens instead of breaking the layout. */
export function tableWrap(caption, headers, rows) {
  return el(
    "div",
    { class: "table-wrap" },
    el("table", {}, caption ? el("caption", {}, caption) : null, el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))), el("tbody", {}, rows)),
  );
}
