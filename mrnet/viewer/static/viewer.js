// The exam viewer: three planes with slice sliders, a CAM overlay, window/level, per-slice scores.
// Plain JS, no libraries. Images come as PNG data URIs in the page's JSON, so the page works
// from file:// (a data URI does not taint a canvas; a file beside the page would).
// State can be set through the URL hash (task, overlay, opacity, <plane>=slice, wl.<plane>=centre,width)
// and user events can be replayed from it (events=...), which is how the browser tests drive
// the real handlers; the resulting state is mirrored in data-* attributes.
"use strict";

const DATA = JSON.parse(document.getElementById("exam-data").textContent);
const SVG_NS = "http://www.w3.org/2000/svg";
const DEFAULT_WINDOW = { center: 127.5, width: 255 };
const state = { task: DATA.task, overlay: true, opacity: DATA.opacity, planes: {} };
const views = {};

function loadImage(uri) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("image failed to load"));
    image.src = uri;
  });
}

// A vertical sprite of s square slices -> one byte per pixel (the red channel of a grey PNG).
async function spritePixels(uri, size, slices) {
  const image = await loadImage(uri);
  const canvas = document.createElement("canvas");
  canvas.width = size;
  canvas.height = size * slices;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(image, 0, 0);
  const rgba = context.getImageData(0, 0, size, size * slices).data;
  const grey = new Uint8Array(size * size * slices);
  for (let i = 0; i < grey.length; i++) grey[i] = rgba[4 * i];
  return grey;
}

function windowTable(center, width) {
  const table = new Uint8ClampedArray(256);
  const low = center - width / 2;
  for (let v = 0; v < 256; v++) table[v] = Math.round(((v - low) / Math.max(width, 1)) * 255);
  return table;
}

// Bilinear sampling of a heatmap stored smaller than the image (align_corners=False, as torch does).
function upsampling(n, heatSize) {
  const i0 = new Int32Array(n), i1 = new Int32Array(n), w = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const src = Math.min(Math.max(((i + 0.5) * heatSize) / n - 0.5, 0), heatSize - 1);
    i0[i] = Math.floor(src);
    i1[i] = Math.min(i0[i] + 1, heatSize - 1);
    w[i] = src - i0[i];
  }
  return { i0, i1, w };
}

function clampSlice(plane, index) {
  return Math.max(0, Math.min(DATA.planes[plane].slices - 1, index));
}

function render(plane) {
  const view = views[plane];
  const info = DATA.planes[plane];
  const st = state.planes[plane];
  const n = info.size;
  const hs = info.heatSize;
  const offset = st.slice * n * n;
  const heatOffset = st.slice * hs * hs;
  const lut = windowTable(st.center, st.width);
  const heat = state.overlay ? view.heat[state.task] : null;
  const { i0, i1, w } = view.grid;
  const colours = DATA.colormap;
  const out = view.frame.data;
  for (let i = 0; i < n * n; i++) {
    const grey = lut[view.grey[offset + i]];
    let r = grey, g = grey, b = grey;
    if (heat) {
      const y = Math.floor(i / n), x = i - y * n;
      const top = heatOffset + i0[y] * hs, bottom = heatOffset + i1[y] * hs;
      const upper = (1 - w[x]) * heat[top + i0[x]] + w[x] * heat[top + i1[x]];
      const lower = (1 - w[x]) * heat[bottom + i0[x]] + w[x] * heat[bottom + i1[x]];
      const h = Math.round((1 - w[y]) * upper + w[y] * lower);
      const weight = (state.opacity * h) / 255; // stronger evidence shows more colour, as in the PNG overlays
      const c = colours[h];
      r = (1 - weight) * grey + weight * c[0];
      g = (1 - weight) * grey + weight * c[1];
      b = (1 - weight) * grey + weight * c[2];
    }
    out[4 * i] = r;
    out[4 * i + 1] = g;
    out[4 * i + 2] = b;
    out[4 * i + 3] = 255;
  }
  view.context.putImageData(view.frame, 0, 0);
  view.slider.value = String(st.slice);
  drawScores(plane);
  const scores = info.scores[state.task];
  const p = DATA.probabilities[state.task][plane];
  view.readout.replaceChildren(
    `slice ${st.slice + 1}/${info.slices}, score ${formatScore(scores[st.slice])}; ` +
      `deciding slice ${info.deciding[state.task] + 1}; p(${state.task}) `
  );
  const strong = document.createElement("b");
  strong.textContent = p.toFixed(3);
  view.readout.append(strong, `; W/L ${Math.round(st.width)}/${Math.round(st.center)}`);
  const figure = view.figure.dataset;
  figure.slice = String(st.slice);
  figure.overlay = state.overlay ? "on" : "off";
  figure.window = `${Math.round(st.center)},${Math.round(st.width)}`;
  figure.deciding = String(info.deciding[state.task]);
  figure.task = state.task;
}

function formatScore(value) {
  return (value >= 0 ? "+" : "") + value.toFixed(3);
}

// Bars of each slice's share of the logit for the selected task; the deciding slice highlighted.
function drawScores(plane) {
  const svg = views[plane].svg;
  const info = DATA.planes[plane];
  const scores = info.scores[state.task];
  const step = 10;
  const height = 48;
  const top = Math.max(0, ...scores);
  const bottom = Math.min(0, ...scores);
  const span = Math.max(top - bottom, 1e-9);
  const zero = 2 + ((top - 0) / span) * (height - 4);
  svg.setAttribute("viewBox", `0 0 ${scores.length * step} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.replaceChildren();
  const axis = document.createElementNS(SVG_NS, "line");
  axis.setAttribute("class", "zero");
  axis.setAttribute("x1", "0");
  axis.setAttribute("x2", String(scores.length * step));
  axis.setAttribute("y1", String(zero));
  axis.setAttribute("y2", String(zero));
  svg.append(axis);
  scores.forEach((score, index) => {
    const bar = document.createElementNS(SVG_NS, "rect");
    const y = 2 + ((top - Math.max(score, 0)) / span) * (height - 4);
    const length = (Math.abs(score) / span) * (height - 4);
    bar.setAttribute("class", index === info.deciding[state.task] ? "bar deciding" : "bar");
    bar.setAttribute("x", String(index * step + 1));
    bar.setAttribute("width", String(step - 2));
    bar.setAttribute("y", String(y));
    bar.setAttribute("height", String(Math.max(length, 0.5)));
    const title = document.createElementNS(SVG_NS, "title");
    title.textContent = `slice ${index + 1}: ${formatScore(score)}`;
    bar.append(title);
    svg.append(bar);
  });
  const current = document.createElementNS(SVG_NS, "rect");
  current.setAttribute("class", "current");
  current.setAttribute("x", String(state.planes[plane].slice * step));
  current.setAttribute("width", String(step));
  current.setAttribute("y", "1");
  current.setAttribute("height", String(height - 2));
  svg.append(current);
}

function renderAll() {
  for (const plane of Object.keys(views)) render(plane);
  document.body.dataset.task = state.task;
  document.body.dataset.overlay = state.overlay ? "on" : "off";
  document.body.dataset.opacity = String(state.opacity);
  document.getElementById("overlay").checked = state.overlay;
  document.getElementById("opacity").value = String(state.opacity);
  for (const row of document.querySelectorAll("#probabilities tbody tr")) {
    const selected = row.dataset.task === state.task;
    row.classList.toggle("selected", selected);
    row.querySelector("input").checked = selected;
  }
}

function setSlice(plane, index) {
  state.planes[plane].slice = clampSlice(plane, index);
  render(plane);
}

function setTask(task) {
  if (!DATA.tasks.includes(task)) return;
  state.task = task;
  for (const plane of Object.keys(views)) state.planes[plane].slice = DATA.planes[plane].deciding[task];
  renderAll();
}

function resetWindow(plane) {
  Object.assign(state.planes[plane], DEFAULT_WINDOW);
  render(plane);
}

function attachPlane(plane) {
  const view = views[plane];
  const canvas = view.canvas;
  view.slider.addEventListener("input", () => setSlice(plane, Number(view.slider.value)));
  canvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    setSlice(plane, state.planes[plane].slice + Math.sign(event.deltaY));
  }, { passive: false });
  canvas.addEventListener("keydown", (event) => {
    const moves = { ArrowUp: -1, ArrowLeft: -1, ArrowDown: 1, ArrowRight: 1, PageUp: -5, PageDown: 5 };
    if (event.key in moves) {
      event.preventDefault();
      setSlice(plane, state.planes[plane].slice + moves[event.key]);
    } else if (event.key === "Home" || event.key === "End") {
      event.preventDefault();
      setSlice(plane, event.key === "Home" ? 0 : DATA.planes[plane].slices - 1);
    } else if (event.key === "o") {
      state.overlay = !state.overlay;
      renderAll();
    }
  });
  // Window/level as in radiology viewers: drag right widens the window, drag down raises the level.
  canvas.addEventListener("mousedown", (event) => {
    event.preventDefault();
    canvas.focus();
    const start = { x: event.clientX, y: event.clientY, ...state.planes[plane] };
    const move = (e) => {
      state.planes[plane].width = Math.max(1, start.width + (e.clientX - start.x));
      state.planes[plane].center = start.center + (e.clientY - start.y);
      render(plane);
    };
    const up = () => {
      window.removeEventListener("mousemove", move);
      window.removeEventListener("mouseup", up);
    };
    window.addEventListener("mousemove", move);
    window.addEventListener("mouseup", up);
  });
  canvas.addEventListener("dblclick", () => resetWindow(plane));
  view.svg.addEventListener("click", (event) => {
    const box = view.svg.getBoundingClientRect();
    setSlice(plane, Math.floor(((event.clientX - box.left) / box.width) * DATA.planes[plane].slices));
  });
}

function attachControls() {
  document.getElementById("overlay").addEventListener("change", (event) => {
    state.overlay = event.target.checked;
    renderAll();
  });
  document.getElementById("opacity").addEventListener("input", (event) => {
    state.opacity = Number(event.target.value);
    renderAll();
  });
  document.getElementById("reset-window").addEventListener("click", () => {
    for (const plane of Object.keys(views)) resetWindow(plane);
  });
  for (const row of document.querySelectorAll("#probabilities tbody tr")) {
    row.addEventListener("click", () => setTask(row.dataset.task));
  }
}

function applyHash(params) {
  if (params.has("task")) state.task = DATA.tasks.includes(params.get("task")) ? params.get("task") : state.task;
  if (params.has("overlay")) state.overlay = params.get("overlay") !== "off";
  if (params.has("opacity")) state.opacity = Math.max(0, Math.min(1, Number(params.get("opacity")) || 0));
  for (const plane of Object.keys(DATA.planes)) {
    const st = state.planes[plane];
    st.slice = params.has(plane) ? clampSlice(plane, Number(params.get(plane)) || 0) : DATA.planes[plane].deciding[state.task];
    if (params.has(`wl.${plane}`)) {
      const [center, width] = params.get(`wl.${plane}`).split(",").map(Number);
      if (Number.isFinite(center) && width > 0) Object.assign(st, { center, width });
    }
  }
}

// events=key:axial:ArrowDown|wheel:coronal:100|drag:sagittal:40:-20|slider:axial:2|click:overlay|task:acl
function replay(list) {
  let done = 0;
  for (const item of list.split("|").filter(Boolean)) {
    const [kind, target, a, b] = item.split(":");
    const view = views[target];
    if (kind === "key" && view) {
      view.canvas.focus();
      view.canvas.dispatchEvent(new KeyboardEvent("keydown", { key: a, bubbles: true, cancelable: true }));
    } else if (kind === "wheel" && view) {
      view.canvas.dispatchEvent(new WheelEvent("wheel", { deltaY: Number(a), bubbles: true, cancelable: true }));
    } else if (kind === "drag" && view) {
      const box = view.canvas.getBoundingClientRect();
      const x = box.left + 5, y = box.top + 5;
      view.canvas.dispatchEvent(new MouseEvent("mousedown", { clientX: x, clientY: y, bubbles: true }));
      window.dispatchEvent(new MouseEvent("mousemove", { clientX: x + Number(a), clientY: y + Number(b) }));
      window.dispatchEvent(new MouseEvent("mouseup", { clientX: x + Number(a), clientY: y + Number(b) }));
    } else if (kind === "slider" && view) {
      view.slider.value = a;
      view.slider.dispatchEvent(new Event("input", { bubbles: true }));
    } else if (kind === "click") {
      document.getElementById(target).click();
    } else if (kind === "task") {
      document.querySelector(`#probabilities tr[data-task="${target}"]`).click();
    } else {
      continue;
    }
    done++;
  }
  document.body.dataset.eventsReplayed = String(done);
}

async function main() {
  for (const figure of document.querySelectorAll("figure.plane")) {
    const plane = figure.dataset.plane;
    const info = DATA.planes[plane];
    const canvas = figure.querySelector("canvas");
    const context = canvas.getContext("2d");
    const heat = {};
    for (const task of DATA.tasks) heat[task] = await spritePixels(info.heat[task], info.heatSize, info.slices);
    views[plane] = {
      figure, canvas, context,
      frame: context.createImageData(info.size, info.size),
      grey: await spritePixels(info.image, info.size, info.slices),
      heat,
      grid: upsampling(info.size, info.heatSize),
      slider: figure.querySelector("input.slider"),
      svg: figure.querySelector("svg.scores"),
      readout: figure.querySelector(".readout"),
    };
    state.planes[plane] = { slice: info.deciding[state.task], ...DEFAULT_WINDOW };
  }
  const params = new URLSearchParams(location.hash.slice(1));
  applyHash(params);
  for (const plane of Object.keys(views)) attachPlane(plane);
  attachControls();
  renderAll();
  if (params.has("events")) replay(params.get("events"));
  window.addEventListener("hashchange", () => {
    applyHash(new URLSearchParams(location.hash.slice(1)));
    renderAll();
  });
  document.body.dataset.ready = "1";
}

main().catch((error) => {
  document.body.dataset.ready = "error";
  document.body.dataset.error = String(error);
});
