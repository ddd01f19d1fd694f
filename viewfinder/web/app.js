// Viewfinder's web page: plain JavaScript over the HTTP API, no build step, no other origin.
"use strict";

const KEY_STORAGE = "viewfinder.apiKey";
const PAGE = 60;
const THUMB = 256;
const UPLOAD_CONCURRENCY = 3;

const $ = (id) => document.getElementById(id);
const state = {
  key: localStorage.getItem(KEY_STORAGE) || "",
  mode: "all",          // "all" or "search"
  images: [],           // what the grid shows
  offset: 0,
  query: "",
  pollTimer: null,
  current: null,        // the image in the detail view
};

class ApiError extends Error {
  constructor(status, type, message, retryAfter) {
    super(message);
    this.status = status;
    this.type = type;
    this.retryAfter = retryAfter;
  }
}

async function api(method, path, body) {
  const headers = { "X-Api-Key": state.key };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw errorFrom(response.status, data, response.headers.get("retry-after"));
  return data;
}

function errorFrom(status, data, retryAfter) {
  const e = (data && data.error) || {};
  return new ApiError(status, e.type || "error", e.message || `HTTP ${status}`, retryAfter);
}

function handle(error) {
  if (error instanceof ApiError && error.status === 401) {
    signOut("That key was refused: " + error.message);
    return;
  }
  let text = error.message || String(error);
  if (error instanceof ApiError && error.status === 429 && error.retryAfter) {
    text += ` (try again in ${error.retryAfter} s)`;
  }
  toast(text);
}

let toastTimer = null;
function toast(text, kind) {
  const el = $("toast");
  el.textContent = text;
  el.className = "toast" + (kind ? " " + kind : "");
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 6000);
}

// URLs: thumbnails live beside the signed original, under the same signature.
function thumbUrl(image) {
  try {
    const url = new URL(image.image_url, location.href);
    if (!url.pathname.startsWith("/files/")) return image.image_url;
    url.pathname += "/thumbnail";
    url.searchParams.set("size", String(THUMB));
    return url.toString();
  } catch (_) {
    return "";
  }
}

function label(metadata) {
  for (const key of ["file_name", "caption", "name", "title", "path"]) {
    if (metadata && typeof metadata[key] === "string" && metadata[key]) return metadata[key];
  }
  return "";
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

// sign in
async function signIn(key) {
  state.key = key.trim();
  $("login-error").textContent = "";
  try {
    await refreshCounts();
  } catch (error) {
    state.key = "";
    $("login-error").textContent =
      error instanceof ApiError ? error.message : "Cannot reach the server: " + error.message;
    return;
  }
  localStorage.setItem(KEY_STORAGE, state.key);
  $("login").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = false;
  await showAll();
  $("search-input").focus();
}

function signOut(message) {
  localStorage.removeItem(KEY_STORAGE);
  state.key = "";
  clearTimeout(state.pollTimer);
  $("app").hidden = true;
  $("sign-out").hidden = true;
  $("login").hidden = false;
  $("counts").textContent = "";
  $("grid").replaceChildren();
  $("login-error").textContent = message || "";
  $("key-input").value = "";
  $("key-input").focus();
}

async function refreshCounts() {
  const s = await api("GET", "/v1/status");
  const parts = [`${s.indexed} indexed`];
  if (s.queued) parts.push(`${s.queued} indexing`);
  if (s.failed) parts.push(`${s.failed} failed`);
  if (s.stored) parts.push(`${s.stored} not indexed`);
  $("counts").textContent = parts.join(" · ") + ` — model ${s.model_id}`;
  return s;
}

// gallery and search results
async function showAll() {
  state.mode = "all";
  state.query = "";
  state.offset = 0;
  $("show-all").hidden = true;
  try {
    const page = await api("GET", `/v1/images?limit=${PAGE}&offset=0`);
    state.images = page.results;
    state.offset = page.results.length;
    render();
    $("more").hidden = page.results.length < PAGE;
    await refreshCounts();
  } catch (error) {
    handle(error);
  }
  schedulePoll();
}

async function loadMore() {
  try {
    const page = await api("GET", `/v1/images?limit=${PAGE}&offset=${state.offset}`);
    state.images = state.images.concat(page.results);
    state.offset += page.results.length;
    render();
    $("more").hidden = page.results.length < PAGE;
  } catch (error) {
    handle(error);
  }
}

async function search(query) {
  const threshold = Number($("threshold").value);
  const body = {
    query,
    max_results: Number($("max-results").value),
    threshold: threshold > 0 ? threshold : null,
  };
  try {
    const found = await api("POST", "/v1/images/search", body);
    state.mode = "search";
    state.query = query;
    state.images = found.results.map((r) => ({
      image_id: r.image_id,
      image_url: r.image_url,
      metadata: r.image_metadata,
      upload_timestamp: r.upload_timestamp,
      score: r.score,
    }));
    $("more").hidden = true;
    $("show-all").hidden = false;
    render();
  } catch (error) {
    handle(error);
  }
}

function render() {
  const grid = $("grid");
  const searching = state.mode === "search";
  $("grid-title").textContent = searching
    ? `${state.images.length} result${state.images.length === 1 ? "" : "s"} for “${state.query}”`
    : "All images";
  const empty = $("empty");
  empty.hidden = state.images.length > 0;
  empty.textContent = searching
    ? "Nothing matched. Try other words or a lower min score."
    : "No images yet: drop some above.";
  grid.replaceChildren(...state.images.map(card));
}

function card(image) {
  const status = image.status;
  const thumb = status === "failed"
    ? el("div", { class: "thumb missing", text: "not stored" })
    : el("img", { class: "thumb", src: thumbUrl(image), alt: label(image.metadata) || "image", loading: "lazy" });
  const caption = el("div", { class: "caption" },
    el("span", { class: "label", text: label(image.metadata) || image.image_id.slice(0, 8) }),
    status ? el("span", { class: `badge ${status}`, text: status }) : null);
  const node = el("li", { class: "card", tabindex: "0", "data-id": image.image_id }, thumb, caption);
  if (typeof image.score === "number") {
    node.append(el("span", { class: "score", text: image.score.toFixed(2), title: "score" }));
  }
  if (status === "failed" && image.error) node.title = image.error;
  node.addEventListener("click", () => openDetail(image.image_id, image.score));
  node.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openDetail(image.image_id, image.score); }
  });
  return node;
}

// While images are being indexed, refresh the gallery so their badges change.
function schedulePoll() {
  clearTimeout(state.pollTimer);
  if (state.mode !== "all" || !state.key) return;
  if (!state.images.some((im) => im.status === "queued")) return;
  state.pollTimer = setTimeout(async () => {
    if (state.mode !== "all") return;
    try {
      const page = await api("GET", `/v1/images?limit=${Math.max(state.offset, PAGE)}&offset=0`);
      state.images = page.results;
      state.offset = page.results.length;
      render();
      await refreshCounts();
    } catch (error) {
      handle(error);
      return;
    }
    schedulePoll();
  }, 1200);
}

// detail
async function openDetail(imageId, score) {
  let image;
  try {
    image = await api("GET", `/v1/images/${encodeURIComponent(imageId)}`);
  } catch (error) {
    handle(error);
    return;
  }
  state.current = image;
  $("detail-title").textContent = label(image.metadata) || image.image_id;
  const img = $("detail-img");
  img.src = image.status === "failed" ? "" : image.image_url;
  img.alt = label(image.metadata) || "image";
  $("detail-open").href = image.image_url;
  const rows = [
    ["ID", image.image_id],
    ["Status", `${image.status} (${image.indexing_status})`],
    typeof score === "number" ? ["Score", score.toFixed(3)] : null,
    ["Uploaded", new Date(image.upload_timestamp * 1000).toLocaleString()],
    image.width ? ["Size", `${image.width} × ${image.height} px`] : null,
    ["Bytes", `${(image.size_bytes / 1024).toFixed(1)} KiB, ${image.content_type || "?"}`],
    image.sha256 ? ["SHA-256", image.sha256] : null,
    image.error ? ["Error", image.error] : null,
  ].filter(Boolean);
  $("detail-fields").replaceChildren(
    ...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  $("detail-metadata").textContent = JSON.stringify(image.metadata, null, 2);
  $("delete-button").disabled = false;
  $("detail").showModal();
}

async function deleteCurrent() {
  const image = state.current;
  if (!image) return;
  const name = label(image.metadata) || image.image_id;
  if (!confirm(`Delete ${name}? It is removed from storage and search for good.`)) return;
  $("delete-button").disabled = true;
  try {
    await api("DELETE", `/v1/images/${encodeURIComponent(image.image_id)}`);
  } catch (error) {
    $("delete-button").disabled = false;
    handle(error);
    return;
  }
  $("detail").close();
  state.images = state.images.filter((im) => im.image_id !== image.image_id);
  render();
  toast(`Deleted ${name}`, "info");
  refreshCounts().catch(handle);
}

// upload
const queue = [];
let active = 0;

function addFiles(files) {
  for (const file of files) {
    const bar = el("progress", { max: "100", value: "0" });
    const stateEl = el("span", { class: "state", text: "waiting" });
    const row = el("li", { "data-name": file.name }, el("span", { class: "name", text: file.name }), bar, stateEl);
    $("uploads").prepend(row);
    queue.push({ file, row, bar, stateEl });
  }
  pump();
}

function pump() {
  while (active < UPLOAD_CONCURRENCY && queue.length) {
    const job = queue.shift();
    active += 1;
    upload(job).finally(() => {
      active -= 1;
      pump();
      if (!active && !queue.length && state.mode === "all") showAll();
    });
  }
}

function upload({ file, row, bar, stateEl }) {
  return new Promise((resolve) => {
    const form = new FormData();
    form.append("images", file, file.name);
    form.append("metadata", JSON.stringify({ requests: [{ metadata: { file_name: file.name } }] }));
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/images/upload");
    xhr.setRequestHeader("X-Api-Key", state.key);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
      stateEl.textContent = "uploading";
    };
    xhr.onload = () => {
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) {
        const result = data.results[0];
        bar.value = 100;
        if (result.indexing_status === 3) {
          stateEl.textContent = "refused";
          stateEl.classList.add("error");
          stateEl.title = result.error || "";
        } else {
          stateEl.textContent = "uploaded";
          setTimeout(() => row.remove(), 8000);  // the gallery shows it from here on
        }
      } else {
        const error = errorFrom(xhr.status, data, xhr.getResponseHeader("retry-after"));
        stateEl.textContent = "failed";
        stateEl.classList.add("error");
        stateEl.title = error.message;
        handle(error);
      }
      resolve();
    };
    xhr.onerror = () => {
      stateEl.textContent = "network error";
      stateEl.classList.add("error");
      resolve();
    };
    xhr.send(form);
  });
}

// wiring
function init() {
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    signIn($("key-input").value);
  });
  $("sign-out").addEventListener("click", () => signOut(""));
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = $("search-input").value.trim();
    if (q) search(q); else showAll();
  });
  $("threshold").addEventListener("input", () => {
    const v = Number($("threshold").value);
    $("threshold-value").textContent = v > 0 ? v.toFixed(2) : "off";
  });
  $("show-all").addEventListener("click", () => {
    $("search-input").value = "";
    showAll();
  });
  $("more").addEventListener("click", loadMore);
  $("file-input").addEventListener("change", (e) => {
    addFiles(e.target.files);
    e.target.value = "";
  });
  const zone = $("dropzone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    addFiles(e.dataTransfer.files);
  });
  zone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file-input").click(); }
  });
  $("detail-close").addEventListener("click", () => $("detail").close());
  $("delete-button").addEventListener("click", deleteCurrent);
  $("detail").addEventListener("click", (e) => { if (e.target === $("detail")) $("detail").close(); });

  if (state.key) signIn(state.key);
  else signOut("");
}

document.addEventListener("DOMContentLoaded", init);
