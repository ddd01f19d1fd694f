// Viewfinder's web page: plain JavaScript over the HTTP API, no build step, no other origin.
"use strict";

const KEY_STORAGE = "viewfinder.apiKey";
const PAGE = 60;
const THUMB = 256;
const CARD_TAGS = 3;  // tag chips on a gallery card (the detail view shows them all)
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
  filters: [],          // active filter chips: {label, clause} (README, Filters)
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

// What to call an image: the file name it was uploaded with, else a name from its metadata.
function displayName(image) {
  return image.file_name || label(image.metadata);
}

// One line beside the slider: what a minimum score means (scores are calibrated, 0.5 = even odds).
function thresholdHint(v) {
  if (v <= 0) return "off: every image is ranked, related or not";
  if (v < 0.5) return "below even odds: more results, more of them unrelated";
  if (v === 0.5) return "as likely a match as not";
  return "likelier a match than not: fewer, surer results";
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

// filter chips: each adds one condition; all of them must hold
const FILTER_KINDS = {
  tag: { placeholder: "dog", type: "text" },
  meta: { placeholder: "album=trip", type: "text" },
  "uploaded-from": { type: "date", field: "upload_timestamp", op: "$gte", word: "uploaded from" },
  "uploaded-to": { type: "date", field: "upload_timestamp", op: "$lt", word: "uploaded until" },
  "taken-from": { type: "date", field: "exif.taken_at", op: "$gte", word: "taken from" },
  "taken-to": { type: "date", field: "exif.taken_at", op: "$lt", word: "taken until" },
};

function filterFrom(kind, text) {
  const value = text.trim();
  if (!value) return null;
  if (kind === "tag") return { label: `tag: ${value}`, clause: { tags: { $contains: value } } };
  if (kind === "meta") {
    const at = value.indexOf("=");
    if (at < 1) return null;
    const key = value.slice(0, at).trim();
    const raw = value.slice(at + 1).trim();
    let parsed = raw;
    try {
      const json = JSON.parse(raw);
      if (typeof json === "number" || typeof json === "boolean") parsed = json;
    } catch (_) { /* a plain string */ }
    return { label: `${key} = ${raw}`, clause: { [`metadata.${key}`]: parsed } };
  }
  const spec = FILTER_KINDS[kind];
  const day = Date.parse(`${value}T00:00:00Z`) / 1000;
  if (!Number.isFinite(day)) return null;
  // "until" a day includes that day: before the next midnight (UTC)
  const bound = spec.op === "$lt" ? day + 86400 : day;
  return { label: `${spec.word} ${value}`, clause: { [spec.field]: { [spec.op]: bound } } };
}

function currentFilter() {
  if (!state.filters.length) return null;
  if (state.filters.length === 1) return state.filters[0].clause;
  return { $and: state.filters.map((f) => f.clause) };
}

function withFilter(body) {
  const filter = currentFilter();
  if (filter) body.filter = filter;
  return body;
}

function listPath(limit, offset) {
  const filter = currentFilter();
  const extra = filter ? `&filter=${encodeURIComponent(JSON.stringify(filter))}` : "";
  return `/v1/images?limit=${limit}&offset=${offset}${extra}`;
}

function renderFilters() {
  $("filter-chips").replaceChildren(...state.filters.map((f, n) => {
    const remove = el("button", { type: "button", class: "chip-remove", text: "×",
      title: `Remove ${f.label}`, "aria-label": `Remove filter ${f.label}` });
    remove.addEventListener("click", () => { state.filters.splice(n, 1); filtersChanged(); });
    return el("li", { class: "filter-chip" }, f.label, remove);
  }));
}

function filtersChanged() {
  renderFilters();
  if (state.mode === "search" && !state.query.startsWith("like ")) search(state.query);
  else showAll();
}

function addFilter() {
  const found = filterFrom($("filter-kind").value, $("filter-value").value);
  if (!found) {
    toast("Type a tag or key=value, or pick a date, first.", "error");
    return;
  }
  state.filters.push(found);
  $("filter-value").value = "";
  filtersChanged();
}

function filterKindChanged() {
  const spec = FILTER_KINDS[$("filter-kind").value];
  const input = $("filter-value");
  input.type = spec.type;
  input.placeholder = spec.placeholder || "";
  input.value = "";
}

// gallery and search results
async function showAll() {
  state.mode = "all";
  state.query = "";
  state.offset = 0;
  $("show-all").hidden = true;
  try {
    const page = await api("GET", listPath(PAGE, 0));
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
    const page = await api("GET", listPath(PAGE, state.offset));
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
    const found = await api("POST", "/v1/images/search", withFilter(body));
    state.mode = "search";
    state.query = query;
    state.images = found.results.map((r) => ({
      image_id: r.image_id,
      image_url: r.image_url,
      metadata: r.image_metadata,
      file_name: r.file_name,
      upload_timestamp: r.upload_timestamp,
      score: r.score,
      tags: r.tags,
      exif: r.exif,
    }));
    $("more").hidden = true;
    $("show-all").hidden = false;
    render();
  } catch (error) {
    handle(error);
  }
}

// search by example: the image in the detail view, the query image left out by the server
async function searchSimilar() {
  const image = state.current;
  if (!image) return;
  const threshold = Number($("threshold").value);
  const body = {
    image_id: image.image_id,
    max_results: Number($("max-results").value),
    threshold: threshold > 0 ? threshold : null,
  };
  try {
    const found = await api("POST", "/v1/images/search", withFilter(body));
    $("detail").close();
    state.mode = "search";
    state.query = `like ${displayName(image) || image.image_id.slice(0, 8)}`;
    state.images = found.results.map((r) => ({
      image_id: r.image_id,
      image_url: r.image_url,
      metadata: r.image_metadata,
      file_name: r.file_name,
      upload_timestamp: r.upload_timestamp,
      score: r.score,
      tags: r.tags,
      exif: r.exif,
    }));
    $("more").hidden = true;
    $("show-all").hidden = false;
    render();
  } catch (error) {
    handle(error);
  }
}

// near-duplicates: each group of copies (oldest first) as a row of cards
async function showDuplicates() {
  let found;
  try {
    found = await api("GET", "/v1/duplicates");
  } catch (error) {
    handle(error);
    return;
  }
  state.mode = "duplicates";
  state.images = [];
  const groups = found.results;
  $("grid-title").textContent = `${groups.length} group${groups.length === 1 ? "" : "s"} of near-duplicates`;
  $("empty").hidden = groups.length > 0;
  $("empty").textContent = "No near-duplicates: no two images are copies of one another.";
  $("more").hidden = true;
  $("show-all").hidden = false;
  $("grid").replaceChildren(...groups.map((g, n) => el("li", { class: "dup-group" },
    el("h3", { text: `${g.images.length} images · similarity ≥ ${g.similarity.toFixed(3)}`,
      title: `group ${n + 1}: cosine of the stored vectors, perceptual hashes agreeing` }),
    el("ul", { class: "grid" }, ...g.images.map(card)))));
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
    : el("img", { class: "thumb", src: thumbUrl(image), alt: displayName(image) || "image", loading: "lazy" });
  const name = displayName(image);
  const caption = el("div", { class: "caption" },
    el("span", { class: "label", text: name || image.image_id.slice(0, 8), title: name || image.image_id }),
    status ? el("span", { class: `badge ${status}`, text: status }) : null);
  const taken = image.exif && typeof image.exif.taken_at === "number"
    ? el("div", { class: "taken", text: takenText(image.exif.taken_at, false), title: "taken (EXIF, UTC)" })
    : null;
  const node = el("li", { class: "card", tabindex: "0", "data-id": image.image_id }, thumb, caption,
    taken, tagChips(image.tags, CARD_TAGS));
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

// What the model sees in an image (extension `tags`, best first), as chips; null when none.
function tagChips(tags, max) {
  if (!tags || !tags.length) return null;
  return el("ul", { class: "tags" }, ...tags.slice(0, max).map((t) =>
    el("li", { class: "tag", text: t.name, title: `${t.name}: ${Math.round(t.confidence * 100)}% sure` })));
}

function takenText(seconds, withTime) {
  const when = new Date(seconds * 1000);
  return withTime
    ? when.toLocaleString(undefined, { timeZone: "UTC", timeZoneName: "short" })
    : when.toLocaleDateString(undefined, { timeZone: "UTC" });
}

// The detail rows of an image's EXIF (extension `exif`). A capture time without an offset in
// the file is the camera's clock read as UTC, so it is shown in UTC: as the camera showed it.
function exifRows(exif) {
  if (!exif) return [];
  const camera = [exif.make, exif.model].filter(Boolean).join(" ");
  const taken = typeof exif.taken_at === "number" ? takenText(exif.taken_at, true) : null;
  return [
    taken ? ["Taken", taken] : null,
    camera ? ["Camera", camera] : null,
    exif.orientation ? ["Orientation", String(exif.orientation)] : null,
    exif.gps ? ["GPS", `${exif.gps.lat.toFixed(6)}, ${exif.gps.lon.toFixed(6)}`] : null,
  ];
}

// While images are being indexed, refresh the gallery so their badges change.
function schedulePoll() {
  clearTimeout(state.pollTimer);
  if (state.mode !== "all" || !state.key) return;
  if (!state.images.some((im) => im.status === "queued")) return;
  state.pollTimer = setTimeout(async () => {
    if (state.mode !== "all") return;
    try {
      const page = await api("GET", listPath(Math.max(state.offset, PAGE), 0));
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
  $("detail-title").textContent = displayName(image) || image.image_id;
  const img = $("detail-img");
  img.src = image.status === "failed" ? "" : image.image_url;
  img.alt = displayName(image) || "image";
  $("detail-open").href = image.image_url;
  const rows = [
    image.file_name ? ["File", image.file_name] : null,
    ["ID", image.image_id],
    ["Status", `${image.status} (${image.indexing_status})`],
    typeof score === "number" ? ["Score", score.toFixed(3)] : null,
    ["Uploaded", new Date(image.upload_timestamp * 1000).toLocaleString()],
    image.width ? ["Size", `${image.width} × ${image.height} px`] : null,
    ["Bytes", `${(image.size_bytes / 1024).toFixed(1)} KiB, ${image.content_type || "?"}`],
    image.sha256 ? ["SHA-256", image.sha256] : null,
    image.error ? ["Error", image.error] : null,
    ...exifRows(image.exif),
    image.tags && image.tags.length ? ["Tags", tagChips(image.tags, image.tags.length)] : null,
  ].filter(Boolean);
  $("detail-fields").replaceChildren(
    ...rows.flatMap(([k, v]) => [
      el("dt", { text: k }), typeof v === "string" ? el("dd", { text: v }) : el("dd", {}, v)]));
  $("detail-metadata").textContent = JSON.stringify(image.metadata, null, 2);
  $("delete-button").disabled = false;
  $("detail").showModal();
}

async function deleteCurrent() {
  const image = state.current;
  if (!image) return;
  const name = displayName(image) || image.image_id;
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
  if (state.mode === "duplicates") showDuplicates(); else render();
  toast(`Deleted ${name}`, "info");
  refreshCounts().catch(handle);
}

// upload: one summary line (overall progress, counts) with the per-file list behind a toggle
const queue = [];
let active = 0;
const batch = { total: 0, done: 0, failed: 0, bytes: 0, jobs: [] };

function addFiles(fileList) {
  const files = Array.from(fileList || []);
  if (!files.length) return;
  if (batch.total && batch.done === batch.total) startBatch();
  for (const file of files) {
    const bar = el("progress", { max: "100", value: "0" });
    const stateEl = el("span", { class: "state", text: "waiting" });
    const row = el("li", { "data-name": file.name }, el("span", { class: "name", text: file.name, title: file.name }), bar, stateEl);
    $("uploads").append(row);
    const job = { file, row, bar, stateEl, loaded: 0 };
    batch.jobs.push(job);
    batch.total += 1;
    batch.bytes += file.size || 1;
    queue.push(job);
  }
  $("upload-status").hidden = false;
  renderUploads();
  pump();
}

// A new batch once the last one is done: its uploads make way, its failures stay listed.
function startBatch() {
  const kept = batch.jobs.filter((job) => job.row.classList.contains("failed"));
  for (const job of batch.jobs) if (!kept.includes(job)) job.row.remove();
  const bytes = kept.reduce((sum, job) => sum + (job.file.size || 1), 0);
  Object.assign(batch, { total: kept.length, done: kept.length, failed: kept.length, bytes, jobs: kept });
}

function clearUploads() {
  Object.assign(batch, { total: 0, done: 0, failed: 0, bytes: 0, jobs: [] });
  $("uploads").replaceChildren();
  $("upload-status").hidden = true;
  showUploadDetails(false);
}

function showUploadDetails(open) {
  $("uploads").hidden = !open;
  $("upload-toggle").setAttribute("aria-expanded", String(open));
  $("upload-toggle").textContent = open ? "Hide details" : "Details";
}

function renderUploads() {
  const running = batch.done < batch.total;
  const sent = batch.jobs.reduce((sum, job) => sum + job.loaded, 0);
  $("upload-progress").value = running ? Math.min(99, Math.floor((100 * sent) / batch.bytes)) : 100;
  const text = running
    ? `Uploading ${batch.total} file${batch.total === 1 ? "" : "s"}: ${batch.done} done`
    : `${batch.total - batch.failed} of ${batch.total} uploaded`;
  const summary = $("upload-summary");
  const key = `${text}|${batch.failed}`;
  if (summary.dataset.shown !== key) {  // progress events come often; announce changes only
    summary.dataset.shown = key;
    summary.replaceChildren(text);
    if (batch.failed) summary.append(" · ", el("span", { class: "error", text: `${batch.failed} failed` }));
  }
  $("upload-dismiss").hidden = running;
}

function pump() {
  while (active < UPLOAD_CONCURRENCY && queue.length) {
    const job = queue.shift();
    active += 1;
    upload(job).finally(() => {
      active -= 1;
      batch.done += 1;
      renderUploads();
      pump();
      if (!active && !queue.length && state.mode === "all") showAll();
    });
  }
}

function fail(job, text, title) {
  job.stateEl.textContent = text;
  job.stateEl.classList.add("error");
  job.stateEl.title = title || "";
  job.row.classList.add("failed");
  batch.failed += 1;
}

function upload(job) {
  const { file, bar, stateEl } = job;
  return new Promise((resolve) => {
    const form = new FormData();
    form.append("images", file, file.name);  // the server keeps the name as `file_name`
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/images/upload");
    xhr.setRequestHeader("X-Api-Key", state.key);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) {
        bar.value = Math.round((100 * e.loaded) / e.total);
        job.loaded = ((file.size || 1) * e.loaded) / e.total;
        renderUploads();
      }
      stateEl.textContent = "uploading";
    };
    xhr.onload = () => {
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
      job.loaded = file.size || 1;
      if (xhr.status >= 200 && xhr.status < 300) {
        const result = data.results[0];
        bar.value = 100;
        if (result.indexing_status === 3) fail(job, "refused", result.error);
        else stateEl.textContent = "uploaded";
      } else {
        const error = errorFrom(xhr.status, data, xhr.getResponseHeader("retry-after"));
        fail(job, "failed", error.message);
        handle(error);
      }
      resolve();
    };
    xhr.onerror = () => {
      job.loaded = file.size || 1;
      fail(job, "network error");
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
  const showThreshold = () => {
    const v = Number($("threshold").value);
    $("threshold-value").textContent = v > 0 ? v.toFixed(2) : "off";
    $("threshold-hint").textContent = thresholdHint(v);
  };
  $("threshold").addEventListener("input", showThreshold);
  $("filter-kind").addEventListener("change", filterKindChanged);
  $("filter-add").addEventListener("click", addFilter);
  $("filter-value").addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); addFilter(); }
  });
  showThreshold();
  $("upload-toggle").addEventListener("click", () => showUploadDetails($("uploads").hidden));
  $("upload-dismiss").addEventListener("click", clearUploads);
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
  $("similar-button").addEventListener("click", searchSimilar);
  $("duplicates-button").addEventListener("click", showDuplicates);
  $("detail").addEventListener("click", (e) => { if (e.target === $("detail")) $("detail").close(); });

  if (state.key) signIn(state.key);
  else signOut("");
}

document.addEventListener("DOMContentLoaded", init);
