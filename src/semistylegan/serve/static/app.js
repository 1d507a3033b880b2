// semistylegan viewer: sliders -> POST /api/render -> <img>. No framework, no external files.
"use strict";

const state = {
  info: null,
  codes: [],
  seed: 0,
  psi: 1.0,
  imageId: null,
  imageCodes: null,
  inFlight: false,
  pending: false,
  renders: 0,
  errorsShown: 0,
};

const $ = (id) => document.getElementById(id);

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
  state.errorsShown += 1;
}

// A request that succeeds clears the errors shown before it started, never a newer one (a
// slow render must not hide the message of an upload that failed meanwhile).
function clearErrorsBefore(errorsShownAtStart) {
  if (state.errorsShown !== errorsShownAtStart) return;
  $("error").hidden = true;
  $("error").textContent = "";
}

async function api(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (e) {
    throw new Error("the server cannot be reached (is `semistylegan serve` still running?)");
  }
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    throw new Error(`unexpected answer from the server (HTTP ${response.status})`);
  }
  if (!response.ok) {
    throw new Error(body && typeof body.error === "string" ? body.error : `HTTP ${response.status}`);
  }
  return body;
}

function postJSON(path, obj) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(obj) });
}

function requestBody() {
  const body = { codes: state.codes.slice(), seed: state.seed, psi: state.psi };
  if (state.imageId) body.image_id = state.imageId;
  return body;
}

// Coalesce slider events: at most one request in flight, the latest state sent next.
async function render() {
  if (state.inFlight) { state.pending = true; return; }
  state.inFlight = true;
  try {
    do {
      state.pending = false;
      const errorsAtStart = state.errorsShown;
      const t0 = performance.now();
      const out = await postJSON("/api/render", requestBody());
      const img = $("output");
      img.src = out.image;
      state.renders += 1;
      img.dataset.renders = String(state.renders);
      $("timing").textContent = `(${out.ms.toFixed(0)} ms model, ${(performance.now() - t0).toFixed(0)} ms total)`;
      clearErrorsBefore(errorsAtStart);
    } while (state.pending);
  } catch (e) {
    showError(e.message);
  } finally {
    state.inFlight = false;
  }
}

function setSlider(i, value) {
  const v = Math.min(1, Math.max(0, value));
  state.codes[i] = v;
  $(`factor-${i}`).value = String(v);
  $(`factor-${i}-value`).textContent = v.toFixed(2);
}

function buildSliders(factors) {
  const box = $("sliders");
  box.textContent = "";
  factors.forEach((f, i) => {
    const row = document.createElement("div");
    row.className = "row slider-row";
    const label = document.createElement("label");
    label.htmlFor = `factor-${i}`;
    label.textContent = f.name;
    label.title = `${f.name} (${f.values} values in the data)`;
    const input = document.createElement("input");
    input.type = "range";
    input.id = `factor-${i}`;
    input.min = String(f.min);
    input.max = String(f.max);
    input.step = "0.01";
    input.setAttribute("aria-label", f.name);
    const out = document.createElement("output");
    out.id = `factor-${i}-value`;
    input.addEventListener("input", () => {
      state.codes[i] = Number(input.value);
      out.textContent = state.codes[i].toFixed(2);
      render();
    });
    row.append(label, input, out);
    box.append(row);
    state.codes.push(0.5);
    setSlider(i, 0.5);
  });
}

async function upload(file) {
  const limits = state.info.limits;
  if (file.size > limits.max_upload_bytes) {
    showError(`upload too large (${file.size} bytes; at most ${limits.max_upload_bytes})`);
    return;
  }
  const errorsAtStart = state.errorsShown;
  try {
    const out = await api("/api/upload", { method: "POST", body: file });
    state.imageId = out.image_id;
    state.imageCodes = out.codes;
    out.codes.forEach((v, i) => setSlider(i, v));
    $("original").src = out.original;
    $("original-fig").hidden = false;
    $("reset-codes").disabled = false;
    $("clear-image").disabled = false;
    $("image-note").textContent = state.info.needs_image
      ? `The image's ${state.info.coarse_resolution}x${state.info.coarse_resolution} downsample keeps the coarse content; the sliders set the fine factors.`
      : "The sliders start at the codes the encoder read from the image; the generator redraws it from them.";
    clearErrorsBefore(errorsAtStart);
    await render();
  } catch (e) {
    showError(e.message);
  }
}

async function traverse() {
  const steps = Number($("steps").value);
  if (!Number.isInteger(steps) || steps < 2 || steps > state.info.limits.max_steps) {
    showError(`steps must be an integer in [2, ${state.info.limits.max_steps}]`);
    return;
  }
  const errorsAtStart = state.errorsShown;
  try {
    const out = await postJSON("/api/traverse", { ...requestBody(), steps });
    const img = $("traversal");
    img.src = out.image;
    img.hidden = false;
    const labels = $("traversal-labels");
    labels.textContent = "";
    img.onload = () => {
      const rowHeight = img.height / out.rows.length;
      labels.textContent = "";
      out.rows.forEach((name) => {
        const d = document.createElement("div");
        d.textContent = name;
        d.style.height = `${rowHeight}px`;
        d.style.lineHeight = `${rowHeight}px`;
        labels.append(d);
      });
    };
    clearErrorsBefore(errorsAtStart);
  } catch (e) {
    showError(e.message);
  }
}

async function main() {
  try {
    state.info = await api("/api/info");
  } catch (e) {
    showError(e.message);
    return;
  }
  const info = state.info;
  $("model-info").textContent = `${info.method} on ${info.dataset}, ${info.resolution}x${info.resolution}`;
  buildSliders(info.factors);
  if (info.needs_image) {
    $("image-note").textContent = "Semi-StyleGAN-fine: without an upload, the coarse content is a fixed training image.";
  }
  $("psi").addEventListener("input", () => {
    state.psi = Number($("psi").value);
    $("psi-value").textContent = state.psi.toFixed(2);
    render();
  });
  $("new-z").addEventListener("click", () => {
    state.seed = Math.floor(Math.random() * info.limits.max_seed);
    $("seed").textContent = String(state.seed);
    render();
  });
  $("upload").addEventListener("change", (ev) => {
    const file = ev.target.files[0];
    if (file) upload(file);
  });
  $("reset-codes").addEventListener("click", () => {
    if (state.imageCodes) { state.imageCodes.forEach((v, i) => setSlider(i, v)); render(); }
  });
  $("clear-image").addEventListener("click", () => {
    state.imageId = null;
    state.imageCodes = null;
    $("original-fig").hidden = true;
    $("reset-codes").disabled = true;
    $("clear-image").disabled = true;
    $("upload").value = "";
    render();
  });
  $("traverse").addEventListener("click", traverse);
  await render();
}

main();
