// Renders the OpenAPI document served by this deployment. No third-party code.
"use strict";

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
};

function resolve(doc, schema) {
  if (schema && schema.$ref) return resolve(doc, doc.components.schemas[schema.$ref.split("/").pop()]);
  return schema || {};
}

/** A compact, readable shape of a JSON schema (depth-limited). */
function shape(doc, schema, depth = 0) {
  const s = resolve(doc, schema);
  if (depth > 5) return "…";
  if (s.anyOf || s.oneOf) return (s.anyOf || s.oneOf).map((x) => shape(doc, x, depth + 1)).join(" | ");
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (s.const !== undefined) return JSON.stringify(s.const);
  const type = Array.isArray(s.type) ? s.type.join(" | ") : s.type;
  if (type === "array") return `${shape(doc, s.items, depth + 1)}[]`;
  if (type === "object" || s.properties) {
    const required = new Set(s.required || []);
    const pad = "  ".repeat(depth + 1);
    const props = Object.entries(s.properties || {}).map(([k, v]) => `${pad}${k}${required.has(k) ? "" : "?"}: ${shape(doc, v, depth + 1)}`);
    if (s.additionalProperties && typeof s.additionalProperties === "object") props.push(`${pad}[key: string]: ${shape(doc, s.additionalProperties, depth + 1)}`);
    return props.length ? `{\n${props.join(",\n")}\n${"  ".repeat(depth)}}` : "object";
  }
  return type || "any";
}

function operationSection(doc, path, method, op, id) {
  const section = el("section", { class: "op", id, "data-search": `${method} ${path} ${op.summary || ""} ${(op.tags || []).join(" ")}`.toLowerCase() });
  section.append(el("h3", {}, el("span", { class: `method ${method}` }, method), el("code", {}, path)));
  if (op.summary) section.append(el("p", {}, op.summary));
  if (op.description) section.append(el("p", {}, op.description));
  const params = op.parameters || [];
  if (params.length) {
    const table = el("table", {}, el("tr", {}, el("th", {}, "Parameter"), el("th", {}, "In"), el("th", {}, "Type"), el("th", {}, "Description")));
    for (const p of params) table.append(el("tr", {}, el("td", {}, el("code", {}, p.name + (p.required ? "" : "?"))), el("td", {}, p.in), el("td", {}, el("code", {}, shape(doc, p.schema))), el("td", {}, p.description || "")));
    section.append(el("h4", {}, "Parameters"), table);
  }
  const body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
  if (body) section.append(el("h4", {}, "Request body (application/json)"), el("pre", {}, shape(doc, body.schema)));
  section.append(el("h4", {}, "Responses"));
  for (const [status, response] of Object.entries(op.responses || {})) {
    const json = response.content && response.content["application/json"];
    section.append(el("p", {}, el("strong", {}, status), " ", response.description || ""));
    if (json && Number(status) < 400) section.append(el("pre", {}, shape(doc, json.schema)));
  }
  return section;
}

async function main() {
  const content = document.getElementById("content");
  const toc = document.getElementById("toc");
  let doc;
  try {
    const res = await fetch("/v1/openapi.json");
    doc = await res.json();
  } catch (err) {
    content.textContent = `Could not load the OpenAPI document: ${err}`;
    return;
  }
  content.textContent = "";
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || "Other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push({ path, method, op });
    }
  }
  let n = 0;
  for (const [tag, ops] of byTag) {
    content.append(el("h2", {}, tag));
    toc.append(el("h2", {}, tag));
    for (const { path, method, op } of ops) {
      const id = `op-${n++}`;
      content.append(operationSection(doc, path, method, op, id));
      toc.append(el("a", { href: `#${id}` }, `${method.toUpperCase()} ${path}`));
    }
  }
  document.getElementById("filter").addEventListener("input", (event) => {
    const q = event.target.value.trim().toLowerCase();
    for (const s of content.querySelectorAll("section.op")) s.hidden = q !== "" && !s.dataset.search.includes(q);
  });
}

main();
