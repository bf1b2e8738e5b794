// The registry browser. It reads /ui/api/* (the registry answers only what the caller may pull)
// and inserts every value as text, never as HTML. Credentials, when the registry asks for them,
// live in this tab's sessionStorage and travel only in the Authorization header.

const AUTH_KEY = "mdl.registry.auth";
const PAGE = 50;
const DEBOUNCE_MS = 150;

const $ = (id) => document.getElementById(id);
const el = (tag, { dataset = {}, ...props } = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  Object.assign(node.dataset, dataset);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
};
const VIEWS = ["view-catalog", "view-repository", "view-model"];

let session = { auth: "none", user: null };

// -- the API ----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, { method = "GET", signal } = {}) {
  const headers = { Accept: "application/json" };
  const auth = sessionStorage.getItem(AUTH_KEY);
  if (auth) headers.Authorization = auth;
  if (method !== "GET") headers["X-Mdl-UI"] = "1";
  // "omit": only the header above authenticates, never a browser's cached Basic login
  const response = await fetch(path, { method, headers, signal, credentials: "omit" });
  if (!response.ok) throw new ApiError(response.status, await errorOf(response));
  return response.status === 204 ? null : response.json();
}

async function errorOf(response) {
  try {
    const { errors } = await response.json();
    const first = errors[0];
    const detail = typeof first.detail === "string" ? `: ${first.detail}` : "";
    return `${first.message}${detail}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

const query = (params) => new URLSearchParams(params).toString();

// -- formatting -------------------------------------------------------------------------------

function formatBytes(n) {
  if (!Number.isFinite(n) || n <= 0) return "0 B";
  const units = ["B", "kB", "MB", "GB", "TB"];
  const i = Math.min(units.length - 1, Math.floor(Math.log10(n) / 3));
  const value = n / 1000 ** i;
  return `${i === 0 ? value : value.toFixed(value < 10 ? 2 : 1)} ${units[i]}`;
}

function formatTime(seconds) {
  if (!seconds) return "";
  const d = new Date(seconds * 1000);
  const pad = (x) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

const shortDigest = (digest) => (digest ? digest.replace(/^(sha256:|sha512:)/, "").slice(0, 12) : "");
const dash = (value) => (value === null || value === undefined || value === "" ? "—" : String(value));

function link(href, text) {
  return el("a", { href, textContent: text });
}
const repoHref = (name) => `#/repo?${query({ name })}`;
const modelHref = (name, ref) => `#/model?${query({ name, ref })}`;

// -- session ----------------------------------------------------------------------------------

async function loadSession() {
  try {
    session = await api("/ui/api/session");
  } catch (error) {
    if (error.status !== 401) throw error;
    sessionStorage.removeItem(AUTH_KEY); // the stored credentials stopped working
    session = await api("/ui/api/session");
  }
  const signedIn = session.user !== null && session.user !== undefined;
  $("user").textContent = signedIn ? `Signed in as ${session.user}` : session.auth === "none" ? "" : "Anonymous";
  $("sign-in").hidden = session.auth === "none" || signedIn || !!sessionStorage.getItem(AUTH_KEY);
  $("sign-out").hidden = !sessionStorage.getItem(AUTH_KEY);
}

function showLogin(show) {
  $("login").hidden = !show;
  $("login-error").hidden = true;
  if (show) $("login-user").focus();
}

async function signIn(event) {
  event.preventDefault();
  const user = $("login-user").value;
  const token = $("login-token").value.trim();
  const header = token ? `Bearer ${token}` : `Basic ${btoa(String.fromCharCode(...new TextEncoder().encode(`${user}:${$("login-password").value}`)))}`;
  sessionStorage.setItem(AUTH_KEY, header);
  try {
    const answer = await api("/ui/api/session");
    if (answer.user === null && !token) throw new ApiError(401, "the registry did not accept these credentials");
  } catch (error) {
    sessionStorage.removeItem(AUTH_KEY);
    $("login-error").textContent = error.message;
    $("login-error").hidden = false;
    return;
  }
  $("login-password").value = "";
  $("login-token").value = "";
  showLogin(false);
  await loadSession();
  await render();
}

async function signOut() {
  sessionStorage.removeItem(AUTH_KEY);
  await loadSession();
  await render();
}

// -- views ------------------------------------------------------------------------------------

function show(view) {
  for (const id of VIEWS) $(id).hidden = id !== view;
  $("error").hidden = true;
}

function fail(error) {
  if (error.name === "AbortError") return;
  $("error").textContent = error.message;
  $("error").hidden = false;
  if (error.status === 401 && session.auth !== "none") showLogin(true);
}

function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, params] = hash.split("?", 2);
  return { path, params: new URLSearchParams(params || "") };
}

async function render() {
  const { path, params } = route();
  try {
    if (path === "/repo") await renderRepository(params.get("name") || "");
    else if (path === "/model") await renderModel(params.get("name") || "", params.get("ref") || "");
    else await renderCatalog(params);
  } catch (error) {
    fail(error);
  }
}

// catalog

let searching = null;
let debounce = null;
let catalogStart = 0;

async function renderCatalog(params) {
  show("view-catalog");
  document.title = "mdl registry";
  const q = params.get("q") || "";
  if ($("q").value !== q && document.activeElement !== $("q")) $("q").value = q;
  catalogStart = parseInt(params.get("start") || "0", 10) || 0;
  await search();
}

async function search() {
  searching?.abort();
  const controller = new AbortController();
  searching = controller;
  const q = $("q").value;
  $("catalog").setAttribute("aria-busy", "true");
  try {
    const answer = await api(`/ui/api/catalog?${query({ q, start: catalogStart, n: PAGE })}`, { signal: controller.signal });
    if (searching !== controller) return;
    fillCatalog(answer, q);
  } catch (error) {
    fail(error);
  } finally {
    if (searching === controller) $("catalog").removeAttribute("aria-busy");
  }
}

function fillCatalog(answer, q) {
  const body = $("catalog").tBodies[0];
  body.replaceChildren(
    ...answer.repositories.map((row) => {
      const facts = row.summary || {};
      const quant = facts.variants ? `${dash(facts.quantization)} (${facts.variants} variants)` : dash(facts.quantization);
      return el(
        "tr",
        { dataset: { name: row.name } },
        el("td", {}, link(repoHref(row.name), row.name)),
        el("td", {}, row.tag ? link(modelHref(row.name, row.tag), row.tag) : "—"),
        el("td", { className: "num" }, row.summary ? formatBytes(facts.size) : "—"),
        el("td", {}, dash(facts.architecture)),
        el("td", {}, dash(facts.paramSize)),
        el("td", {}, quant),
        el("td", {}, formatTime(row.updated)),
      );
    }),
  );
  if (!performance.getEntriesByName("mdl:first-results").length) performance.mark("mdl:first-results");
  const end = answer.start + answer.repositories.length;
  $("count").textContent = `${answer.total} ${answer.total === 1 ? "repository" : "repositories"}${q ? ` match “${q}”` : ""}`;
  $("catalog-empty").hidden = answer.total > 0;
  $("page").textContent = answer.total ? `${answer.start + 1}–${end} of ${answer.total}` : "";
  $("prev").disabled = answer.start === 0;
  $("next").disabled = end >= answer.total;
}

function setCatalogHash(push) {
  const params = {};
  if ($("q").value) params.q = $("q").value;
  if (catalogStart) params.start = catalogStart;
  const hash = `#/${Object.keys(params).length ? `?${query(params)}` : ""}`;
  if (push) history.pushState(null, "", hash);
  else history.replaceState(null, "", hash);
}

function onType() {
  clearTimeout(debounce);
  debounce = setTimeout(() => {
    catalogStart = 0;
    setCatalogHash(false);
    search();
  }, DEBOUNCE_MS);
}

function turnPage(delta) {
  catalogStart = Math.max(0, catalogStart + delta * PAGE);
  setCatalogHash(true);
  search();
}

// repository

async function renderRepository(name) {
  show("view-repository");
  document.title = `${name} · mdl registry`;
  $("repo-name").textContent = name;
  $("tags").tBodies[0].replaceChildren();
  $("variants").replaceChildren();
  const answer = await api(`/ui/api/repository?${query({ name })}`);
  $("tags").tBodies[0].replaceChildren(...answer.tags.map((tag) => tagRow(name, tag, answer.mayDelete)));
  $("variants").replaceChildren(
    ...answer.tags.filter((t) => t.variants).map((t) => el("section", { className: "panel" }, el("h3", { textContent: `Variants of ${t.tag}` }), variantsTable(name, t.variants))),
  );
}

function tagRow(name, tag, mayDelete) {
  const facts = tag.summary || {};
  const kind = tag.variants ? `index (${tag.variants.length} variants)` : dash(facts.kind);
  const actions = el("td");
  if (mayDelete) {
    const button = el("button", { type: "button", className: "danger quiet", textContent: "Delete tag" });
    button.setAttribute("aria-label", `Delete tag ${tag.tag}`);
    button.addEventListener("click", async () => {
      if (!confirm(`Delete the tag ${name}:${tag.tag}? The manifest stays, reachable by digest.`)) return;
      try {
        await api(`/ui/api/tag?${query({ name, tag: tag.tag })}`, { method: "DELETE" });
        await renderRepository(name);
      } catch (error) {
        fail(error);
      }
    });
    actions.append(button);
  }
  return el(
    "tr",
    { dataset: { tag: tag.tag } },
    el("td", {}, link(modelHref(name, tag.tag), tag.tag)),
    el("td", { className: "mono", title: tag.digest }, shortDigest(tag.digest)),
    el("td", { className: "num" }, tag.summary ? formatBytes(facts.size) : "—"),
    el("td", {}, kind),
    el("td", {}, dash(facts.quantization)),
    el("td", {}, formatTime(tag.updated)),
    actions,
  );
}

function variantsTable(name, variants) {
  const keys = [...new Set(variants.flatMap((v) => Object.keys(v.annotations)))].sort();
  const head = el("tr", {}, ...["Digest", "Platform", "Size", ...keys].map((k) => el("th", { scope: "col", textContent: k })));
  const rows = variants.map((v) =>
    el(
      "tr",
      { dataset: { digest: v.digest } },
      el("td", { className: "mono" }, link(modelHref(name, v.digest), shortDigest(v.digest))),
      el("td", {}, v.platform ? [v.platform.os, v.platform.architecture, v.platform.variant].filter(Boolean).join("/") : "—"),
      el("td", { className: "num" }, formatBytes(v.size)),
      ...keys.map((k) => el("td", { dataset: { annotation: k } }, dash(v.annotations[k]))),
    ),
  );
  return el("div", { className: "table-wrap" }, el("table", { className: "variants" }, el("thead", {}, head), el("tbody", {}, ...rows)));
}

// model card

async function renderModel(name, ref) {
  show("view-model");
  document.title = `${name}:${ref} · mdl registry`;
  $("model-repo").textContent = name;
  $("model-repo").href = repoHref(name);
  $("model-name").textContent = ref.includes(":") ? `${name}@${ref}` : `${name}:${ref}`;
  $("model-digest").textContent = "";
  $("card").replaceChildren();
  const answer = await api(`/ui/api/manifest?${query({ name, ref })}`);
  $("model-digest").textContent = `${answer.digest} · ${answer.mediaType}`;
  const reference = ref.includes(":") ? `${location.host}/${name}@${ref}` : `${location.host}/${name}:${ref}`;
  if (answer.variants) {
    $("card").replaceChildren(
      snippets(reference, null),
      section("Variants", variantsTable(name, answer.variants)),
      annotationsTable(answer.annotations),
    );
    return;
  }
  const card = answer.card;
  const facts = card.facts;
  const parts = [
    factList([
      ["architecture", "Architecture", facts.architecture],
      ["param_size", "Parameters", facts.param_size],
      ["quantization", "Quantization", facts.quantization],
      ["context_length", "Context length", facts.context_length],
      ["precision", "Precision", facts.precision],
      ["licenses", "License", facts.licenses.join(", ") || (card.license[0] || "").split("\n")[0].slice(0, 80)],
      ["format", "Format", card.format],
      ["size", "Size", formatBytes(card.size)],
      ["created_at", "Created", facts.created_at],
    ]),
    snippets(reference, card.format),
  ];
  if (card.system !== null) parts.push(section("System prompt", pre(card.system, "system")));
  if (card.template !== null) parts.push(section(`Template (${dash(card.templateKind)})`, pre(card.template, "template")));
  if (card.parameters !== null) parts.push(section("Parameters", parametersTable(card.parameters)));
  if (card.messages !== null) parts.push(section("Messages", messagesList(card.messages)));
  if (card.adapters.length) parts.push(section("Adapters", simpleTable(["File", "Size", "Digest"], card.adapters.map((a) => [a.file, formatBytes(a.size), a.digest]), "adapters")));
  card.license.forEach((text, i) => parts.push(section(card.license.length > 1 ? `License ${i + 1}` : "License", pre(text, "license"))));
  parts.push(section("Layers", simpleTable(["Media type", "File", "Size", "Digest"], card.layers.map((l) => [l.mediaType, dash(l.file), formatBytes(l.size), l.digest]), "layers")));
  parts.push(annotationsTable(card.annotations));
  parts.push(section("Referrers", card.referrers.length
    ? simpleTable(["Kind", "Artifact type", "Digest", "Size"], card.referrers.map((r) => [r.kind, r.artifactType, r.digest, formatBytes(r.size)]), "referrers")
    : el("p", { className: "muted", textContent: "No signature, SBOM or provenance is attached." })));
  $("card").replaceChildren(...parts);
}

function section(title, ...content) {
  return el("section", { className: "panel" }, el("h3", { textContent: title }), ...content);
}

function pre(text, kind) {
  return el("pre", { className: "text", textContent: text, dataset: { text: kind }, tabIndex: 0 });
}

function factList(items) {
  const list = el("dl", { className: "facts", id: "facts" });
  for (const [key, label, value] of items) {
    list.append(el("div", {}, el("dt", { textContent: label }), el("dd", { textContent: dash(value), dataset: { fact: key } })));
  }
  return list;
}

function simpleTable(headers, rows, name) {
  return el(
    "div",
    { className: "table-wrap" },
    el(
      "table",
      { dataset: { table: name } },
      el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col", textContent: h })))),
      el("tbody", {}, ...rows.map((cells) => el("tr", {}, ...cells.map((c) => el("td", { textContent: String(c) }))))),
    ),
  );
}

function parametersTable(parameters) {
  if (typeof parameters !== "object" || parameters === null) return pre(String(parameters), "parameters");
  const rows = Object.entries(parameters).map(([k, v]) => [k, Array.isArray(v) ? v.map((x) => JSON.stringify(x)).join(", ") : JSON.stringify(v)]);
  return simpleTable(["Name", "Value"], rows, "parameters");
}

function messagesList(messages) {
  if (!Array.isArray(messages)) return pre(JSON.stringify(messages, null, 2), "messages");
  return el("ol", { className: "messages" }, ...messages.map((m) => el("li", {}, el("strong", { textContent: `${m.role}: ` }), String(m.content ?? ""))));
}

function annotationsTable(annotations) {
  const entries = Object.entries(annotations || {});
  return section("Annotations", entries.length
    ? simpleTable(["Key", "Value"], entries, "annotations")
    : el("p", { className: "muted", textContent: "None." }));
}

function snippets(reference, format) {
  const secure = location.protocol === "https:";
  const lines = [["mdl", `mdl pull ${secure ? "" : "--insecure "}${reference}`]];
  if (format === "ollama") lines.push(["ollama", `ollama pull ${secure ? "" : "--insecure "}${reference}`]);
  lines.push(["modelfile", `FROM ${reference}`]);
  return section("Use it", ...lines.map(([kind, text]) => {
    const code = el("code", { textContent: text });
    const button = el("button", { type: "button", className: "quiet", textContent: "Copy" });
    button.setAttribute("aria-label", `Copy: ${text}`);
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch {
        getSelection().selectAllChildren(code);
        button.textContent = "Press Ctrl+C";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    });
    return el("div", { className: "snippet", dataset: { snippet: kind } }, code, button);
  }));
}

// -- wiring -----------------------------------------------------------------------------------

$("q").addEventListener("input", onType);
$("prev").addEventListener("click", () => turnPage(-1));
$("next").addEventListener("click", () => turnPage(1));
$("login").addEventListener("submit", signIn);
$("login-cancel").addEventListener("click", () => showLogin(false));
$("sign-in").addEventListener("click", () => showLogin(true));
$("sign-out").addEventListener("click", signOut);
window.addEventListener("hashchange", render);
document.addEventListener("keydown", (event) => {
  if (event.key === "/" && document.activeElement?.tagName !== "INPUT" && !$("view-catalog").hidden) {
    event.preventDefault();
    $("q").focus();
  }
});

(async () => {
  try {
    await Promise.all([loadSession(), render()]);
    if (session.auth !== "none" && !sessionStorage.getItem(AUTH_KEY)) $("sign-in").hidden = false;
  } catch (error) {
    fail(error);
  }
  document.body.dataset.ready = "true";
})();
