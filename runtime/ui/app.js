// The chat page. It talks to the server only through the public Ollama API (/api/tags, /api/ps,
// /api/chat, /api/pull, /api/delete), so it works against any Ollama-compatible server, and it
// keeps conversations in this browser's localStorage: the server never stores them.

const CHATS_KEY = "mdl.ui.chats";
const CURRENT_KEY = "mdl.ui.current";
const OPTION_FIELDS = { temperature: parseFloat, num_ctx: (v) => parseInt(v, 10), seed: (v) => parseInt(v, 10) };

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};

// -- the API ----------------------------------------------------------------------------------

async function call(path, { method = "GET", body, signal } = {}) {
  const init = { method, signal, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw new Error(await errorOf(response));
  return response;
}

async function errorOf(response) {
  try {
    const { error } = await response.json();
    return typeof error === "string" ? error : error?.message ?? `${response.status} ${response.statusText}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

// The objects of an NDJSON stream, as they arrive.
async function* lines(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value ?? new Uint8Array(), { stream: !done });
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end).trim();
      buffer = buffer.slice(end + 1);
      if (line) yield JSON.parse(line);
    }
    if (done) break;
  }
  if (buffer.trim()) yield JSON.parse(buffer);
}

function formatBytes(n) {
  if (!Number.isFinite(n) || n <= 0) return "0 B";
  const units = ["B", "kB", "MB", "GB", "TB"];
  const i = Math.min(units.length - 1, Math.floor(Math.log10(n) / 3));
  return `${(n / 1000 ** i).toFixed(i ? 1 : 0)} ${units[i]}`;
}

// -- conversations, kept in localStorage --------------------------------------------------------

function newId() {
  return globalThis.crypto?.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

function loadChats() {
  try {
    const chats = JSON.parse(localStorage.getItem(CHATS_KEY) ?? "[]");
    return Array.isArray(chats) ? chats.filter((c) => c && Array.isArray(c.messages)) : [];
  } catch {
    return [];
  }
}

const state = {
  chats: loadChats(),
  chat: null,
  models: [],
  loaded: new Set(),
  generation: null, // the AbortController of the answer being streamed
  pull: null,
};

function freshChat(from) {
  return { id: newId(), title: "", model: from?.model ?? "", system: from?.system ?? "",
           options: { ...(from?.options ?? {}) }, messages: [], updated: Date.now() };
}

function save() {
  try {
    localStorage.setItem(CHATS_KEY, JSON.stringify(state.chats));
    localStorage.setItem(CURRENT_KEY, state.chat.id);
  } catch (error) {
    showError("chat-error", `This browser did not keep the chat: ${error.message}`);
  }
}

function selectChat(chat) {
  chat.system = typeof chat.system === "string" ? chat.system : "";
  chat.options = chat.options && typeof chat.options === "object" ? chat.options : {};
  state.chat = chat;
  $("system").value = chat.system;
  for (const name of Object.keys(OPTION_FIELDS)) $(name).value = chat.options[name] ?? "";
  renderModelChoice();
  renderChats();
  renderMessages();
  save();
}

function startChat() {
  if (state.generation) return;
  let chat = state.chat;
  if (!chat || chat.messages.length) {
    chat = freshChat(state.chat);
    state.chats.unshift(chat);
  }
  selectChat(chat);
  $("prompt").focus();
}

function deleteChat(chat) {
  if (state.generation && chat === state.chat) return;
  state.chats = state.chats.filter((c) => c !== chat);
  if (chat === state.chat) {
    state.chat = null;
    if (state.chats.length) selectChat(state.chats[0]);
    else startChat();
  } else {
    renderChats();
    save();
  }
}

function renderChats() {
  const list = $("chats");
  list.replaceChildren(...state.chats.map((chat) => {
    const title = chat.title || "New chat";
    const open = el("button", { type: "button", className: "chat-title", textContent: title, title });
    if (chat === state.chat) open.setAttribute("aria-current", "true");
    open.addEventListener("click", () => { if (!state.generation) selectChat(chat); });
    const remove = el("button", { type: "button", className: "icon", textContent: "×" });
    remove.setAttribute("aria-label", `Delete chat "${title}"`);
    remove.addEventListener("click", () => deleteChat(chat));
    return el("li", {}, open, remove);
  }));
}

function messageItem(message) {
  const content = el("div", { className: "content", textContent: message.content });
  const item = el("li", { className: `message ${message.role}` },
    el("span", { className: "role", textContent: message.role === "user" ? "You" : message.model ?? "Assistant" }),
    content);
  if (message.stopped) item.append(el("span", { className: "note", textContent: "stopped" }));
  if (message.error) item.append(el("span", { className: "note error", textContent: message.error }));
  return item;
}

function renderMessages() {
  const list = $("messages");
  list.replaceChildren(...state.chat.messages.map(messageItem));
  if (!state.chat.messages.length) {
    list.append(el("li", { className: "empty muted", textContent: "Choose a model and send a message." }));
  }
  list.scrollTop = list.scrollHeight;
}

function optionsOf(chat) {
  const options = {};
  for (const [name, parse] of Object.entries(OPTION_FIELDS)) {
    const raw = chat.options[name];
    if (raw === undefined || raw === "") continue;
    const value = parse(raw);
    if (Number.isFinite(value)) options[name] = value;
  }
  return options;
}

// -- chatting -------------------------------------------------------------------------------

function setGenerating(controller) {
  state.generation = controller;
  $("send").hidden = Boolean(controller);
  $("stop").hidden = !controller;
  $("new-chat").disabled = Boolean(controller);
  $("model").disabled = Boolean(controller);
  document.body.classList.toggle("busy", Boolean(controller));
}

async function send() {
  const text = $("prompt").value;
  const chat = state.chat;
  if (state.generation || !text.trim()) return;
  const model = $("model").value;
  if (!model) {
    showError("chat-error", "Choose a model first (the Models view pulls one).");
    return;
  }
  hideError("chat-error");
  chat.model = model;
  chat.title ||= text.trim().slice(0, 60);
  chat.updated = Date.now();
  const history = chat.messages.filter((m) => m.content).map(({ role, content }) => ({ role, content }));
  const messages = [...(chat.system.trim() ? [{ role: "system", content: chat.system }] : []),
                    ...history, { role: "user", content: text }];
  chat.messages.push({ role: "user", content: text });
  const reply = { role: "assistant", content: "", model };
  chat.messages.push(reply);
  $("prompt").value = "";
  renderChats();
  renderMessages();
  save();
  const item = $("messages").lastElementChild;
  const content = item.querySelector(".content");
  item.setAttribute("aria-busy", "true");

  const controller = new AbortController();
  setGenerating(controller);
  try {
    const response = await call("/api/chat", {
      method: "POST", signal: controller.signal,
      body: { model, messages, options: optionsOf(chat), stream: true },
    });
    for await (const event of lines(response)) {
      if (event.error) throw new Error(event.error);
      const piece = event.message?.content;
      if (piece) {
        const list = $("messages");
        const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
        reply.content += piece;
        content.textContent = reply.content;
        if (atBottom) list.scrollTop = list.scrollHeight;
      }
    }
  } catch (error) {
    if (controller.signal.aborted) reply.stopped = true;
    else reply.error = error.message;
  } finally {
    setGenerating(null);
    if (state.chat === chat) renderMessages();
    save();
    refreshModels();
    $("prompt").focus();
  }
}

function stop() {
  state.generation?.abort();
}

function renderModelChoice() {
  const select = $("model");
  const wanted = state.chat?.model || select.value;
  const options = state.models.map((m) => el("option", {
    value: m.name,
    textContent: `${m.name} · ${formatBytes(m.size)}${state.loaded.has(m.name) ? " · loaded" : ""}`,
  }));
  if (wanted && !state.models.some((m) => m.name === wanted)) {
    options.unshift(el("option", { value: wanted, textContent: `${wanted} (not in the store)` }));
  }
  if (!options.length) {
    options.push(el("option", { value: "", textContent: "No models: pull one in Models" }));
  }
  select.replaceChildren(...options);
  select.value = wanted || state.models[0]?.name || "";
}

// -- models -----------------------------------------------------------------------------------

async function refreshModels() {
  try {
    const [tags, ps] = await Promise.all([call("/api/tags"), call("/api/ps")]);
    const loaded = (await ps.json()).models ?? [];
    state.models = ((await tags.json()).models ?? []).sort((a, b) => a.name.localeCompare(b.name));
    state.loaded = new Set(loaded.map((m) => m.name));
    hideError("models-error");
    renderLoaded(loaded);
    renderStore();
  } catch (error) {
    showError("models-error", `Cannot list the models: ${error.message}`);
  }
  renderModelChoice();
}

function until(expires) {
  const when = new Date(expires);
  if (Number.isNaN(when.getTime()) || when.getFullYear() > 2200) return "when stopped";
  return when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function renderLoaded(loaded) {
  $("loaded").hidden = !loaded.length;
  $("loaded-empty").hidden = Boolean(loaded.length);
  $("loaded").tBodies[0].replaceChildren(...loaded.map((m) => el("tr", {},
    el("th", { scope: "row", textContent: m.name }),
    el("td", { textContent: formatBytes(m.size) + (m.size_vram ? ` (${formatBytes(m.size_vram)} GPU)` : "") }),
    el("td", { textContent: m.context_length ? `${m.context_length} tokens` : "" }),
    el("td", { textContent: until(m.expires_at) }))));
}

function renderStore() {
  $("store-empty").hidden = state.models.length > 0;
  $("store").hidden = !state.models.length;
  $("store").tBodies[0].replaceChildren(...state.models.map((m) => {
    const remove = el("button", { type: "button", className: "danger", textContent: "Delete" });
    remove.setAttribute("aria-label", `Delete ${m.name}`);
    remove.addEventListener("click", () => removeModel(m.name));
    const modified = new Date(m.modified_at);
    return el("tr", {},
      el("th", { scope: "row", textContent: m.name }),
      el("td", { textContent: formatBytes(m.size) }),
      el("td", { textContent: m.details?.parameter_size ?? "" }),
      el("td", { textContent: m.details?.quantization_level ?? "" }),
      el("td", { textContent: Number.isNaN(modified.getTime()) ? "" : modified.toLocaleString() }),
      el("td", {}, remove));
  }));
}

async function removeModel(name) {
  if (!confirm(`Delete ${name} from the store?`)) return;
  try {
    await call("/api/delete", { method: "DELETE", body: { model: name } });
  } catch (error) {
    showError("models-error", `Cannot delete ${name}: ${error.message}`);
  }
  await refreshModels();
}

async function pull() {
  const name = $("pull-name").value.trim();
  if (!name || state.pull) return;
  const controller = new AbortController();
  state.pull = controller;
  const bar = $("pull-progress");
  const text = $("pull-text");
  const files = new Map(); // file -> [completed, total]: the bar shows the whole pull
  bar.max = 1;
  bar.value = 0;
  text.textContent = `pulling ${name}`;
  $("pull-status").hidden = false;
  $("pull-status").classList.remove("failed");
  $("pull").disabled = true;
  $("pull-cancel").hidden = false;
  try {
    const response = await call("/api/pull", {
      method: "POST", signal: controller.signal,
      body: { model: name, insecure: $("pull-insecure").checked, stream: true },
    });
    for await (const event of lines(response)) {
      if (event.error) throw new Error(event.error);
      if (event.total) {
        files.set(event.digest ?? event.status, [event.completed ?? 0, event.total]);
        const [done, total] = [...files.values()].reduce(([d, t], [c, n]) => [d + c, t + n], [0, 0]);
        bar.max = total;
        bar.value = done;
        const percent = Math.floor((100 * done) / total);
        text.textContent = `${event.status}: ${percent}% (${formatBytes(done)} of ${formatBytes(total)})`;
      } else if (event.status === "success") {
        bar.value = bar.max;
        text.textContent = `${name} pulled`;
      } else {
        text.textContent = event.status;
      }
    }
  } catch (error) {
    $("pull-status").classList.add("failed");
    text.textContent = controller.signal.aborted ? "pull cancelled" : `pull failed: ${error.message}`;
  } finally {
    state.pull = null;
    $("pull").disabled = false;
    $("pull-cancel").hidden = true;
    await refreshModels();
  }
}

// -- errors, views, wiring --------------------------------------------------------------------

function showError(id, message) {
  $(id).textContent = message;
  $(id).hidden = false;
}

function hideError(id) {
  $(id).hidden = true;
}

function showView() {
  const view = location.hash === "#models" ? "models" : "chat";
  for (const name of ["chat", "models"]) {
    $(`view-${name}`).hidden = name !== view;
    if (name === view) $(`tab-${name}`).setAttribute("aria-current", "page");
    else $(`tab-${name}`).removeAttribute("aria-current");
  }
  document.title = view === "models" ? "Models · mdl" : "Chat · mdl";
  refreshModels();
}

function wire() {
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.generation) stop();
  });
  $("stop").addEventListener("click", stop);
  $("new-chat").addEventListener("click", startChat);
  $("model").addEventListener("change", () => {
    state.chat.model = $("model").value;
    save();
  });
  $("system").addEventListener("input", () => {
    state.chat.system = $("system").value;
    save();
  });
  for (const name of Object.keys(OPTION_FIELDS)) {
    $(name).addEventListener("input", () => {
      state.chat.options[name] = $(name).value;
      save();
    });
  }
  $("pull-form").addEventListener("submit", (event) => {
    event.preventDefault();
    pull();
  });
  $("pull-cancel").addEventListener("click", () => state.pull?.abort());
  window.addEventListener("hashchange", showView);
  window.addEventListener("focus", refreshModels);
  window.addEventListener("storage", (event) => {
    if (event.key === CHATS_KEY && !state.generation) {
      state.chats = loadChats();
      const again = state.chats.find((c) => c.id === state.chat?.id);
      if (again) selectChat(again);
      else startChat();
    }
  });
}

wire();
const remembered = state.chats.find((c) => c.id === localStorage.getItem(CURRENT_KEY));
if (remembered) selectChat(remembered);
else startChat();
showView();
