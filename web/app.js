// The page at GET /: pick, drop or paste photos; each one is sent to POST /predict on its own, and its card
// shows the top 5 classes, the server's stage timings (Server-Timing), the request id and the trace id.
// Plain browser JavaScript with no build step and no third-party code, so it works offline and under a
// Content-Security-Policy that allows only this origin's scripts and styles.

const TOP_K = 5;
/** Requests in flight at once: enough to overlap upload and inference, few enough not to fill the queue. */
const CONCURRENCY = 2;
const ACCEPTED = new Set(["image/jpeg", "image/png", "image/webp"]);

/** Stages in the order a request goes through them, with their legend names. */
const STAGES = [
  ["read_body", "read body"],
  ["decode", "decode"],
  ["preprocess", "preprocess"],
  ["queue_wait", "queue"],
  ["inference", "inference"],
  ["postprocess", "postprocess"],
];

const $ = (selector, root = document) => root.querySelector(selector);

const state = {
  /**
   * The API key a person pasted, if the gateway asks for one. Only here, in memory: never in storage,
   * cookies or the URL, so reloading the page forgets it.
   */
  apiKey: undefined,
  /** TRACE_UI_URL from /info, `{trace_id}` to be replaced; undefined shows the id without a link. */
  traceUrl: undefined,
  /** Whether the server turns photos upright (EXIF_ORIENTATION), said next to a photo's tag. */
  orientationNote: "",
  queue: [],
  running: 0,
  done: 0,
  refused: 0,
  total: 0,
};

document.documentElement.classList.add("js");

/** Server-Timing (`name;dur=1.2;desc="x", …`) as a map of name to milliseconds. */
function parseServerTiming(header) {
  const timings = new Map();
  if (!header) return timings;
  for (const entry of header.split(",")) {
    const [name, ...params] = entry.trim().split(";");
    if (!name) continue;
    const dur = params.map((p) => p.trim()).find((p) => p.startsWith("dur="));
    timings.set(name.trim(), dur ? Number(dur.slice(4)) : 0);
  }
  return timings;
}

/** 32 hex digits of the trace from a W3C traceparent (`00-<trace>-<span>-<flags>`). */
function traceIdOf(traceparent) {
  const match = /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}$/.exec(traceparent?.trim() ?? "");
  return match ? match[1] : undefined;
}

/** A probability as a percentage, one decimal. */
function percent(p) {
  return `${(p * 100).toFixed(1)}%`;
}

function formatMs(ms) {
  return ms >= 100 ? `${Math.round(ms)} ms` : `${ms.toFixed(1)} ms`;
}

function formatBytes(n) {
  if (n >= 1024 * 1024) return `${+(n / (1024 * 1024)).toFixed(1)} MB`;
  if (n >= 1024) return `${Math.round(n / 1024)} KB`;
  return `${n} B`;
}

/** Headers carrying the key, when one was given. */
function keyHeaders() {
  return state.apiKey ? { authorization: `Bearer ${state.apiKey}` } : {};
}

/** Asks for a key (401: none or unknown; 403: one without the scope). */
function askForKey(status, detail) {
  const form = $("#key-form");
  form.hidden = false;
  form.dataset.state = state.apiKey ? "refused" : "needed";
  $("#key-forget").hidden = !state.apiKey;
  $("#key-hint").textContent = state.apiKey
    ? `The key was refused (${status}${detail ? `: ${detail}` : ""}). Paste another one.`
    : "This gateway needs an API key with the infer scope. It is kept only in this page's memory and sent " +
      "only to this server; reloading the page forgets it.";
  if (!state.apiKey) $("#api-key").focus();
}

function setUpKeyForm() {
  const form = $("#key-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("#api-key");
    const key = input.value.trim();
    // Cleared at once, so the key is not left in the DOM either.
    input.value = "";
    if (!key) return;
    state.apiKey = key;
    form.dataset.state = "given";
    $("#key-forget").hidden = false;
    $("#key-hint").textContent = "Key in use (kept in this page's memory only).";
    loadInfo();
  });
  $("#key-forget").addEventListener("click", () => {
    state.apiKey = undefined;
    askForKey();
  });
}

async function loadInfo() {
  let info;
  try {
    const res = await fetch("info", { headers: { accept: "application/json", ...keyHeaders() } });
    info = await res.json();
    if (res.status === 401 || res.status === 403) {
      setStatus("key needed");
      askForKey(res.status, info.detail);
      return;
    }
  } catch {
    setStatus("unreachable");
    return;
  }
  const config = info.config ?? {};
  state.traceUrl = info.trace_ui_url ?? config.TRACE_UI_URL ?? undefined;
  setStatus(info.status ?? "unknown");
  if (config.EXIF_ORIENTATION === "apply") state.orientationNote = ", turned upright";
  if (config.EXIF_ORIENTATION === "ignore") state.orientationNote = ", ignored";
  const model = info.model;
  if (model) {
    $("#model-name").textContent = model.name;
    $("#model-version").textContent = model.version;
    $("#model-weights").textContent = model.weights;
    $("#model-weights").dataset.weights = model.weights;
    if (model.warning) showWarning(model.warning);
  }
  const limits = [];
  if (config.MAX_BODY_BYTES) limits.push(`up to ${formatBytes(config.MAX_BODY_BYTES)} each`);
  if (config.MAX_IMAGE_PIXELS) limits.push(`${Math.round(config.MAX_IMAGE_PIXELS / 1e6)} megapixels at most`);
  $("#limits").textContent = `JPEG, PNG or WebP${limits.length ? `, ${limits.join(", ")}` : ""}. ` +
    "Photos go only to this server.";
}

function setStatus(status) {
  const el = $("#status");
  el.dataset.status = status;
  el.textContent = status;
}

function showWarning(text) {
  $("#warning-text").textContent = text;
  $("#warning").hidden = false;
}

function addFiles(files) {
  const list = [...files];
  if (list.length === 0) return;
  $("#toolbar").hidden = false;
  const results = $("#results");
  // The newest batch goes first, in the order the photos were chosen.
  const batch = document.createDocumentFragment();
  for (const file of list) {
    const card = $("#card-template").content.firstElementChild.cloneNode(true);
    $(".file-name", card).textContent = file.name || "pasted image";
    $(".file-name", card).title = file.name;
    $(".image-meta", card).textContent = `${file.type || "unknown type"} · ${formatBytes(file.size)}`;
    batch.append(card);
    drawPreview(file, card);
    state.queue.push({ file, card });
    state.total++;
  }
  results.prepend(batch);
  results.classList.toggle("single", results.children.length === 1);
  updateSummary();
  pump();
}

/** Draws the photo into the card's canvas (no object URL, so the CSP needs no blob: source). */
async function drawPreview(file, card) {
  const canvas = $(".thumb", card);
  if (!ACCEPTED.has(file.type) && !file.type.startsWith("image/")) {
    card.classList.add("no-preview");
    return;
  }
  try {
    // The browser applies EXIF orientation here, as the gateway does by default.
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(1, 640 / Math.max(bitmap.width, bitmap.height));
    canvas.width = Math.round(bitmap.width * scale);
    canvas.height = Math.round(bitmap.height * scale);
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
  } catch {
    card.classList.add("no-preview");
  }
}

function pump() {
  while (state.running < CONCURRENCY && state.queue.length > 0) {
    const job = state.queue.shift();
    state.running++;
    classify(job.file, job.card).finally(() => {
      state.running--;
      state.done++;
      updateSummary();
      pump();
    });
  }
}

function updateSummary() {
  const photos = (n) => `${n} photo${n === 1 ? "" : "s"}`;
  const pending = state.total - state.done;
  const parts = [`${photos(state.done - state.refused)} classified`];
  if (state.refused > 0) parts.push(`${state.refused} refused`);
  if (pending > 0) parts.push(`${pending} in progress`);
  $("#summary").textContent = parts.join(", ");
}

async function classify(file, card) {
  const form = new FormData();
  form.append("file", file, file.name || "pasted-image");
  let res;
  try {
    res = await fetch(`predict?top_k=${TOP_K}`, { method: "POST", body: form, headers: keyHeaders() });
  } catch (err) {
    showProblem(card, { title: "The server cannot be reached", detail: String(err.message ?? err) });
    return;
  }
  showIds(card, res.headers.get("x-request-id"), traceIdOf(res.headers.get("traceparent")));
  showTimings(card, parseServerTiming(res.headers.get("server-timing")));
  const type = res.headers.get("content-type") ?? "";
  let body;
  try {
    body = type.includes("json") ? await res.json() : { detail: await res.text() };
  } catch {
    body = {};
  }
  if (res.status === 401 || res.status === 403) askForKey(res.status, body.detail);
  if (!res.ok) {
    showProblem(card, {
      status: res.status,
      title: body.title ?? `HTTP ${res.status}`,
      detail: body.detail ?? body.error ?? "",
      code: body.code,
    });
    return;
  }
  if (body.warning) showWarning(body.warning);
  showPrediction(card, body);
}

function showPrediction(card, body) {
  card.dataset.state = "done";
  const list = $(".top5", card);
  list.replaceChildren();
  const template = $("#class-template");
  for (const [rank, cls] of body.top_k.entries()) {
    const item = template.content.firstElementChild.cloneNode(true);
    item.dataset.classId = String(cls.class_id);
    item.dataset.confidence = String(cls.confidence);
    $(".label", item).textContent = cls.class_name;
    $(".label", item).title = `ImageNet class ${cls.class_id}`;
    $(".pct", item).textContent = percent(cls.confidence);
    // CSSOM, not a style attribute: allowed under a CSP without 'unsafe-inline'.
    $(".fill", item).style.width = `${Math.max(0.5, cls.confidence * 100)}%`;
    $(".bar", item).setAttribute("aria-hidden", "true");
    if (rank === 0) item.classList.add("first");
    list.append(item);
  }
  const image = body.image;
  if (image) {
    const turned = image.orientation > 1
      ? ` · EXIF orientation ${image.orientation}${state.orientationNote}`
      : "";
    $(".image-meta", card).textContent = `${image.format.toUpperCase()} · ${image.width}×${image.height} · ` +
      formatBytes(image.bytes) + turned;
  }
}

function showProblem(card, problem) {
  card.dataset.state = "refused";
  state.refused++;
  const box = $(".problem", card);
  box.hidden = false;
  $(".problem-status", box).textContent = problem.status
    ? `${problem.status}${problem.code ? ` · ${problem.code}` : ""}`
    : "";
  $(".problem-title", box).textContent = problem.title;
  $(".problem-detail", box).textContent = problem.detail;
}

function showIds(card, requestId, traceId) {
  $(".request-id", card).textContent = requestId ?? "none";
  const trace = $(".trace-id", card);
  trace.replaceChildren();
  if (!traceId) {
    trace.textContent = "none";
  } else if (state.traceUrl) {
    const link = document.createElement("a");
    link.href = state.traceUrl.replaceAll("{trace_id}", traceId);
    link.target = "_blank";
    link.rel = "noopener";
    link.textContent = traceId;
    link.title = "Open this request's trace";
    trace.append(link);
  } else {
    trace.textContent = traceId;
  }
}

function showTimings(card, timings) {
  const stages = STAGES.filter(([name]) => timings.has(name));
  if (stages.length === 0) return;
  const section = $(".timings", card);
  section.hidden = false;
  const sum = stages.reduce((s, [name]) => s + timings.get(name), 0);
  const total = timings.get("total") ?? sum;
  $(".total", section).textContent = formatMs(total);
  const stack = $(".stack", section);
  const legend = $(".legend", section);
  stack.replaceChildren();
  legend.replaceChildren();
  const described = [];
  for (const [name, label] of stages) {
    const ms = timings.get(name);
    const segment = document.createElement("span");
    segment.className = "segment";
    segment.dataset.stage = name;
    segment.dataset.ms = String(ms);
    segment.style.flexGrow = String(sum > 0 ? ms / sum : 1 / stages.length);
    segment.title = `${label}: ${formatMs(ms)}`;
    stack.append(segment);
    const key = document.createElement("li");
    key.dataset.stage = name;
    key.append(Object.assign(document.createElement("span"), { className: "swatch" }));
    key.append(`${label} ${formatMs(ms)}`);
    legend.append(key);
    described.push(`${label} ${formatMs(ms)}`);
  }
  stack.setAttribute("aria-label", `Server time by stage: ${described.join(", ")}`);
}

function setUpDropZone() {
  const form = $("#upload");
  const input = $("#file");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    addFiles(input.files);
  });
  input.addEventListener("change", () => {
    addFiles(input.files);
    input.value = "";
  });
  for (const type of ["dragenter", "dragover"]) {
    form.addEventListener(type, (event) => {
      event.preventDefault();
      form.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "dragend"]) {
    form.addEventListener(type, () => form.classList.remove("dragging"));
  }
  form.addEventListener("drop", (event) => {
    event.preventDefault();
    form.classList.remove("dragging");
    addFiles(event.dataTransfer?.files ?? []);
  });
  // Dropping a photo anywhere else must not navigate away from the page.
  globalThis.addEventListener("dragover", (event) => event.preventDefault());
  globalThis.addEventListener("drop", (event) => event.preventDefault());
  globalThis.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files ?? [])];
    if (files.length > 0) addFiles(files);
  });
  $("#clear").addEventListener("click", () => {
    $("#results").replaceChildren();
    state.queue.length = 0;
    state.total = state.running;
    state.done = 0;
    state.refused = 0;
    $("#toolbar").hidden = state.running === 0;
    updateSummary();
  });
}

setUpDropZone();
setUpKeyForm();
loadInfo();
