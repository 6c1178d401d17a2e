// The explorer's playground: the settings (also in the page's address), play/pause/step at a chosen
// speed, the network drawn with each neuron's picture, the output over the plane with the points in
// their class colours, the curves, gradient health, a clicked point's step, and the export.
// The server trains both models and sends every picture and number; this file only draws them.
"use strict";

// orange (negative, class 0) through white to blue (positive, class 1)
const PALETTE = Array.from({ length: 256 }, (_, k) => {
  const t = k / 255, orange = [245, 147, 34], blue = [8, 119, 189], white = [245, 245, 245];
  const [from, to, s] = t < 0.5 ? [orange, white, t * 2] : [white, blue, (t - 0.5) * 2];
  return from.map((c, i) => Math.round(c + (to[i] - c) * s));
});
const CLASS_COLOURS = [[245, 147, 34], [8, 119, 189], [44, 160, 44], [148, 103, 189], [214, 39, 40], [140, 86, 75]];
const HEALTH_COLOURS = ["#2c5cc5", "#e08a00", "#2ca02c", "#9467bd", "#d62728", "#8c564b"];
const BACKGROUND = 0.55;
const NEURON_PX = 44, GAP_X = 120, GAP_Y = 56, NETWORK_WIDTH = 440;
const rgb = (c) => `rgb(${c.join(",")})`;

// -- the settings, and the page's address --------------------------------------------------------
function fillPlaygroundForm(opened) {
  const defaults = opened.playground_defaults;
  $("pg-dataset").replaceChildren(...opened.datasets.map((d) =>
    el("option", { value: d.name, title: d.description }, `${d.name} (${d.kind})`)));
  $("pg-dataset").append(el("option", { value: "csv" }, "your own points (CSV)"));
  $("pg-features").replaceChildren(el("legend", {}, "inputs"), ...opened.features.map((f) => {
    const label = el("label", { class: "feature" });
    label.append(el("input", { type: "checkbox", name: "feature", value: f.name }), ` ${f.label}`);
    return label;
  }));
  setForm(defaults);
  const l = state.limits;
  $("pg-csv-help").textContent = `One point a line: x1,x2,label (a class 0, 1, … up to ${l.max_classes - 1}) ` +
    `or x1,x2,value (any other number: regression). ${l.min_points} to ${l.max_points} points, at most ` +
    `${l.max_csv_chars.toLocaleString("en")} characters; a first line of words is a header.`;
}

function setForm(values) {
  for (const field of $("pg-settings").elements) {
    if (!field.name || !(field.name in values) && field.name !== "feature") continue;
    if (field.name === "feature") {
      if (values.features) field.checked = values.features.includes(field.value);
      continue;
    }
    const value = values[field.name];
    field.value = Array.isArray(value) ? value.join(", ") : value;
  }
  $("pg-classes-label").hidden = $("pg-dataset").value !== "blobs";
}

function settingsBody() {
  const body = { features: [] };
  for (const field of $("pg-settings").elements) {
    if (!field.name) continue;
    if (field.name === "feature") { if (field.checked) body.features.push(field.value); }
    else if (field.name === "hidden") {
      const text = field.value.trim();
      body.hidden = text === "" ? [] : text.split(",").map((part) => typed(part));
    } else if (field.tagName === "SELECT") body[field.name] = field.value;
    else body[field.name] = typed(field.value);
  }
  if (body.dataset === "csv") body.csv = $("pg-csv").value;
  return body;
}

// The settings and the epoch reached, in the address: opening it sets up the same data and
// weights and trains as many epochs, the same batches in the same order.
function writeAddress(epoch) {
  const settings = state.pg && state.pg.settings;
  if (!settings) return;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(settings)) {
    params.set(key, Array.isArray(value) ? value.join(",") : String(value));
  }
  params.set("epoch", String(epoch));
  history.replaceState(null, "", `#playground?${params}`);
}

async function restoreFromAddress() {
  const hash = decodeURIComponent(location.hash);
  if (hash.startsWith("#images")) { showPage("images"); return; }
  if (!hash.startsWith("#playground")) return;
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const values = {};
  for (const [key, value] of params) {
    values[key] = ["hidden", "features"].includes(key) ? (value ? value.split(",") : []) : value;
  }
  const pasted = values.dataset === "csv";
  if (pasted) values.dataset = "xor";  // pasted points are not in an address
  setForm(values);
  showTab("playground");  // set up below, with the address's settings, and awaited
  if (!(await setUp())) return;
  if (pasted) { showMessage("this link was made with pasted points, which a link does not hold: paste them again"); return; }
  const epochs = Number(values.epoch) || 0;
  if (epochs > 0) await trainEpochs(epochs);
}

// -- set-up ----------------------------------------------------------------------------------------
async function setUp() {
  stop();
  await settle();
  const answer = await call("/api/playground/setup", settingsBody());
  if (!answer) return false;
  state.pgReady = true;
  state.pg = answer;
  drawPoints(answer);
  buildNetwork(answer);
  const p = answer;
  $("pg-problem").textContent = `${p.kind}: ${p.train_points} training points, ${p.test_points} test points; ` +
    `network ${p.network.sizes.join("-")} (${p.network.activations.join(", ")}), loss ${p.network.loss}` +
    (p.network.dropout ? `, dropout ${p.network.dropout} after each hidden layer` : "") +
    `; ${p.steps_per_epoch} steps an epoch`;
  $("pg-picture-legend").textContent = pictureLegend(p);
  renderFrame(answer.frame);
  writeAddress(0);
  return true;
}

function pictureLegend(p) {
  if (p.kind === "regression") {
    const [low, high] = p.value_range;
    return `the colour is the value, orange ${low.toPrecision(3)} to blue ${high.toPrecision(3)}: ` +
      "the points' own, the background the hand-written model's prediction";
  }
  if (p.kind === "classes") {
    return "a colour per class; the background is the hand-written model's most probable class, " +
      "paler where it is less sure. Click a point for its backpropagation.";
  }
  return "orange: class 0, blue: class 1; the shade is the hand-written model's probability of " +
    "class 1. Click a point for its backpropagation.";
}

function pointColour(p, kind) {
  return kind === "regression" ? rgb(PALETTE[p.shade]) : rgb(CLASS_COLOURS[p.label]);
}

function drawPoints(answer) {
  const svg = $("pg-points"), size = svg.clientWidth || 360;
  svg.replaceChildren(...answer.points.map((p, index) => {
    const dot = el("svg:circle", {
      cx: p.u * size, cy: p.v * size, r: 3.6, fill: pointColour(p, answer.kind),
      class: `point${p.test ? " test" : ""}`, "data-index": index, "data-label": p.label,
    });
    dot.append(el("svg:title", {}, `point ${index}${p.test ? " (test)" : ""}: ` +
      `(${p.x.toPrecision(3)}, ${p.y.toPrecision(3)}), ${answer.kind === "regression" ? "value" : "class"} ` +
      `${answer.kind === "regression" ? p.label.toPrecision(3) : p.label}`));
    dot.addEventListener("click", () => showPoint(index));
    return dot;
  }));
  showTestPoints();
}

function showTestPoints() {
  $("pg-points").classList.toggle("hide-test", !$("pg-show-test").checked);
}

// -- the network, each neuron a picture ------------------------------------------------------------
// The server names every neuron and every layer with weights, one way for the whole tab.
const neuronName = (depth, unit) => state.pg.network.neurons[depth][unit];
const layerName = (layer) => state.pg.network.layers[layer];

function buildNetwork(answer) {
  const sizes = answer.network.sizes, tallest = Math.max(...sizes);
  const gapX = Math.min(GAP_X, (NETWORK_WIDTH - NEURON_PX - 40) / (sizes.length - 1));  // it fits
  const width = 20 + (sizes.length - 1) * gapX + NEURON_PX + 20, height = tallest * GAP_Y + 10;
  const box = $("pg-network");
  box.style.width = `${width}px`;
  box.style.height = `${height}px`;
  const svg = el("svg:svg", { width, height, class: "pg-edges" });
  const centre = (depth, unit) => ({
    x: 20 + depth * gapX + NEURON_PX / 2,
    y: 5 + (unit + (tallest - sizes[depth]) / 2) * GAP_Y + NEURON_PX / 2,
  });
  const nodes = [];
  for (let layer = 0; layer + 1 < sizes.length; layer++) {
    for (let j = 0; j < sizes[layer + 1]; j++) {
      for (let i = 0; i < sizes[layer]; i++) {
        const a = centre(layer, i), b = centre(layer + 1, j);
        svg.append(el("svg:line", { x1: a.x + NEURON_PX / 2, y1: a.y, x2: b.x - NEURON_PX / 2, y2: b.y,
          id: `pg-w${layer}_${j}_${i}`, class: "pg-edge" }));
      }
    }
  }
  sizes.forEach((count, depth) => {
    for (let unit = 0; unit < count; unit++) {
      const c = centre(depth, unit);
      const canvas = el("canvas", { id: `pg-n${depth}_${unit}`, class: "pg-neuron", title: neuronName(depth, unit),
        width: answer.settings.neuron_grid, height: answer.settings.neuron_grid });
      canvas.style.left = `${c.x - NEURON_PX / 2}px`;
      canvas.style.top = `${c.y - NEURON_PX / 2}px`;
      canvas.addEventListener("click", () => showNeuron(depth, unit));
      canvas.addEventListener("mouseenter", () => enlarge(canvas, depth, unit));
      nodes.push(canvas);
      if (depth === 0) {
        const label = el("span", { class: "pg-feature-label" }, answer.features[unit].label);
        label.style.left = "0px";
        label.style.top = `${c.y + NEURON_PX / 2 - 2}px`;
        nodes.push(label);
      }
    }
  });
  box.replaceChildren(svg, ...nodes);
}

function paint(canvas, shades, size) {
  const image = new ImageData(size, size);
  shades.forEach((shade, k) => { image.data.set([...PALETTE[shade], 255], k * 4); });
  canvas.getContext("2d").putImageData(image, 0, 0);
}

// A small picture drawn over all of `canvas`, each of its pixels a sharp square (no smoothing).
function drawEnlarged(canvas, picture) {
  const context = canvas.getContext("2d");
  context.imageSmoothingEnabled = false;
  context.drawImage(picture, 0, 0, canvas.width, canvas.height);
}

function paintEnlarged(canvas, shades, size) {
  const small = el("canvas", { width: size, height: size });
  paint(small, shades, size);
  drawEnlarged(canvas, small);
}

function renderNetwork(frame) {
  const size = frame.neurons.size;
  frame.neurons.pictures.forEach((layer, depth) => layer.forEach((shades, unit) => {
    const canvas = $(`pg-n${depth}_${unit}`);
    if (canvas) { paint(canvas, shades, size); canvas.dataset.sum = shades.reduce((a, b) => a + b, 0); }
  }));
  let largest = 1e-12;
  for (const layer of frame.weights) for (const row of layer.weight) for (const w of row) largest = Math.max(largest, Math.abs(w));
  frame.weights.forEach((layer, l) => layer.weight.forEach((row, j) => row.forEach((w, i) => {
    const edge = $(`pg-w${l}_${j}_${i}`);
    if (!edge) return;
    edge.setAttribute("stroke", w >= 0 ? rgb(PALETTE[230]) : rgb(PALETTE[25]));
    edge.setAttribute("stroke-width", (0.4 + 4.6 * Math.abs(w) / largest).toFixed(2));
    edge.dataset.weight = w;
    edge.replaceChildren(el("svg:title", {}, `${layerName(l)} weight[${j}, ${i}] = ${w.toPrecision(4)}`));
  })));
}

// Hovering a neuron shows its picture as drawn (its neuron grid), large; a click asks for it at
// the output grid's resolution.
function enlarge(canvas, depth, unit) {
  drawEnlarged($("pg-neuron-canvas"), canvas);
  $("pg-neuron-title").textContent = `${neuronName(depth, unit)} (${canvas.width}×${canvas.height}; click for ` +
    `${state.pg.settings.grid}×${state.pg.settings.grid})`;
  $("pg-neuron-big").hidden = false;
}

async function showNeuron(depth, unit) {
  await settle();
  const answer = await call("/api/playground/neuron", { depth, unit });
  if (!answer) return;
  paintEnlarged($("pg-neuron-canvas"), answer.p255, answer.size);
  $("pg-neuron-title").textContent = `${neuronName(depth, unit)}: its output over the plane (${answer.size}×${answer.size})`;
  $("pg-neuron-big").hidden = false;
  $("pg-neuron-big").dataset.depth = depth;
  $("pg-neuron-big").dataset.unit = unit;
}

// -- a frame ---------------------------------------------------------------------------------------
function renderOutput(frame) {
  const grid = frame.grid, g = grid.size, kind = state.pg.kind, classes = state.pg.classes;
  const image = new ImageData(g, g);
  // the background paler than the points (BACKGROUND of the full colour), so that a point of
  // class 1 stands out on the region the model gives class 1
  grid.p255.forEach((shade, k) => {
    let colour = PALETTE[shade].map((c) => Math.round(245 + (c - 245) * BACKGROUND));
    if (kind === "classes") {  // the winning class's colour, paler where it is less sure
      const sure = Math.max(0, (shade / 255 - 1 / classes) / (1 - 1 / classes)) * BACKGROUND;
      colour = CLASS_COLOURS[grid.classes[k]].map((c) => Math.round(245 + (c - 245) * sure));
    }
    image.data.set([...colour, 255], k * 4);
  });
  const small = el("canvas", { width: g, height: g });
  small.getContext("2d").putImageData(image, 0, 0);
  const canvas = $("pg-canvas"), context = canvas.getContext("2d");
  context.imageSmoothingEnabled = true;
  context.drawImage(small, 0, 0, canvas.width, canvas.height);
}

function renderCurves(frame) {
  const svg = $("pg-curve"), w = 420, h = 200, left = 56, bottom = 24, top = 40;
  const line = (points, cls) => el("svg:polyline", { class: cls, points: points
    .filter((p) => typeof p[1] === "number")
    .map(([u, v]) => `${left + u * (w - left - 8)},${h - bottom - v * (h - bottom - top)}`).join(" ") });
  const lines = [line(frame.curve.manual, "manual"), line(frame.curve.autograd, "autograd")];
  if (state.pg.test_points) lines.push(line(frame.curve.test_manual, "test-manual"), line(frame.curve.test_autograd, "test-autograd"));
  svg.replaceChildren(
    el("svg:text", { x: 8, y: 14, class: "tick" }, "training loss: hand-written (blue), autograd (dashed orange)"),
    el("svg:text", { x: 8, y: 28, class: "tick" }, state.pg.test_points
      ? "test loss: hand-written (green), autograd (dashed purple)" : "no test points (test share 0)"),
    el("svg:line", { x1: left, y1: h - bottom, x2: w - 8, y2: h - bottom, class: "axis" }),
    el("svg:line", { x1: left, y1: top, x2: left, y2: h - bottom, class: "axis" }),
    el("svg:text", { x: left - 4, y: top + 4, class: "tick end" }, frame.text.top),
    el("svg:text", { x: left - 4, y: h - bottom, class: "tick end" }, "0"),
    el("svg:text", { x: w - 8, y: h - 6, class: "tick end" }, `step ${frame.curve.last_step}`),
    ...lines);
}

function renderStats(frame) {
  const t = frame.text;
  const stats = [
    ["training loss", t.loss_manual, t.loss_autograd],
    ["test loss", t.test_loss_manual, t.test_loss_autograd],
    [`training ${t.score}`, t.accuracy_manual, t.accuracy_autograd],
    [`test ${t.score}`, t.test_score_manual, t.test_score_autograd],
  ];
  fillTable($("pg-stats"), ["", "hand-written", "autograd"], stats);
  const rows = $("pg-stats").rows;
  const mark = (row, id, values) => { row.id = id; for (const [k, v] of Object.entries(values)) row.dataset[k] = v; };
  mark(rows[1], "pg-loss", { manual: frame.loss.manual, autograd: frame.loss.autograd, first: frame.loss.first });
  mark(rows[2], "pg-test-loss", { manual: frame.test_loss.manual, autograd: frame.test_loss.autograd });
  mark(rows[3], "pg-score", frame.scores.train);
  mark(rows[4], "pg-test-score", frame.scores.test);
  // Two questions, never mixed: the verdict compares both gradients at the hand-written model's
  // weights (green or red); the drift of the two runs, each trained on its own, is neutral.
  const diff = el("tr", { id: "pg-diff", "data-value": frame.max_grad_diff, "data-tolerance": frame.tolerance });
  const outside = frame.within_tolerance ? "" : ` ${t.outside_from}`;
  diff.append(el("td", {}, "largest gradient difference so far, both at the hand-written weights"),
    el("td", { colspan: 2, class: frame.within_tolerance ? "agrees" : "wrong" },
      `${t.max_grad_diff} relative (${t.verdict} ${t.tolerance}${outside}, ${frame.steps_compared} steps)`));
  const drift = el("tr", { id: "pg-drift", class: "drift",
    "data-value": frame.drift.max_rel_grad_diff, "data-parted-step": frame.drift.parted_at_step ?? "",
    "data-past-step": frame.drift.past_tolerance_at_step ?? "" });
  drift.append(el("td", {}, "drift of the two runs, each trained on its own"),
    el("td", { colspan: 2 }, t.drift));
  const gridRow = el("tr", { class: "drift" });
  gridRow.append(el("td", {}, "their outputs over the plane: largest |hand-written − autograd|"), el("td", { colspan: 2 }, t.grid_diff));
  $("pg-stats").append(diff, drift, gridRow);
  $("pg-drift-why").textContent = t.why_drift;
}

function renderHealth(frame) {
  const health = frame.health, svg = $("pg-health"), w = 420, h = 180, left = 56, bottom = 22, top = 10;
  const values = health.layers.flat().filter((v) => v > 0 && Number.isFinite(v));
  const children = [
    el("svg:line", { x1: left, y1: h - bottom, x2: w - 8, y2: h - bottom, class: "axis" }),
    el("svg:line", { x1: left, y1: top, x2: left, y2: h - bottom, class: "axis" }),
  ];
  if (values.length) {
    let low = Math.floor(Math.log10(Math.min(...values))), high = Math.ceil(Math.log10(Math.max(...values)));
    if (high === low) high += 1;
    const first = health.steps[0], last = Math.max(health.steps[health.steps.length - 1], first + 1);
    const x = (s) => left + (s - first) / (last - first) * (w - left - 8);
    const y = (v) => h - bottom - (Math.log10(v) - low) / (high - low) * (h - bottom - top);
    health.layers.forEach((norms, layer) => {
      const points = norms.map((v, k) => [health.steps[k], v]).filter(([, v]) => v > 0 && Number.isFinite(v));
      children.push(el("svg:polyline", { class: "layer", stroke: HEALTH_COLOURS[layer % HEALTH_COLOURS.length],
        "data-layer": layer, points: points.map(([s, v]) => `${x(s).toFixed(1)},${y(v).toFixed(1)}`).join(" ") }));
      children.push(el("svg:text", { x: w - 10, y: 12 + 12 * layer, class: "tick end", fill: HEALTH_COLOURS[layer % HEALTH_COLOURS.length] },
        layerName(layer)));
    });
    children.push(el("svg:text", { x: left - 4, y: top + 8, class: "tick end" }, `1e${high}`),
      el("svg:text", { x: left - 4, y: h - bottom, class: "tick end" }, `1e${low}`),
      el("svg:text", { x: w - 8, y: h - 6, class: "tick end" }, `step ${last}`));
  } else {
    children.push(el("svg:text", { x: left + 8, y: h / 2, class: "tick" }, "drawn once training has begun"));
  }
  svg.replaceChildren(...children);
  const verdict = $("pg-health-verdict");
  verdict.textContent = `gradient health (bpdemo.health's rules): ${health.text}`;
  verdict.dataset.verdict = health.verdict;
  verdict.classList.toggle("warn", health.verdict !== "healthy");
}

function renderFrame(frame) {
  renderOutput(frame);
  renderNetwork(frame);
  renderCurves(frame);
  renderStats(frame);
  renderHealth(frame);
  $("pg-stepno").textContent = frame.step;
  $("pg-epoch").textContent = frame.epoch;
  fillTable($("pg-norms"), ["layer", "hand-written", "autograd"], frame.grad_norms.map((r) => r.text));
  $("pg-status").textContent = frame.message;
  $("pg-status").classList.toggle("warn", Boolean(frame.message));
  if (frame.diverged_at_step !== null) stop();
}

// -- training ----------------------------------------------------------------------------------------
// `epochs` epochs in as few requests as the server's limit on steps allows, then one frame drawn.
async function trainEpochs(epochs) {
  if (!state.pgReady) return false;
  const most = Math.max(1, Math.floor(state.limits.max_steps_per_request / state.pg.steps_per_epoch));
  let frame = null;
  for (let left = epochs; left > 0;) {
    const now = Math.min(left, most, state.limits.max_epochs_per_request);
    frame = await call("/api/playground/train", { epochs: now });
    if (!frame) return false;
    left -= now;
    if (frame.diverged_at_step !== null) break;
  }
  renderFrame(frame);
  writeAddress(frame.epoch);
  return frame.diverged_at_step === null;
}

const train = () => trainEpochs(Number($("pg-speed").value));

function stop() { state.playing = false; $("pg-play").textContent = "▶ play"; }

async function play() {
  if (state.playing) { stop(); return; }
  if (state.busy) return;
  state.playing = true;
  $("pg-play").textContent = "⏸ pause";
  while (state.playing) {
    if (!(await train())) { stop(); break; }
    await new Promise((resolve) => requestAnimationFrame(resolve));
  }
}

// -- a point's backpropagation, and the export ------------------------------------------------------
async function showPoint(index) {
  stop();
  await settle();
  const view = await call("/api/playground/point", { index });
  if (!view) return;
  state.view = view;
  state.phase = "forward";
  state.selected = null;
  showPage("worked");
  renderWorked();
}

function download(name, text, type) {
  const link = el("a", { href: URL.createObjectURL(new Blob([text], { type })), download: name });
  document.body.append(link);
  link.click();
  link.remove();
}

async function exportNetwork(what) {
  await settle();
  const answer = await call("/api/playground/export");
  if (!answer) return;
  if (what === "json") {
    const { script, ...weights } = answer;
    download(`playground_step${answer.step}.json`, JSON.stringify(weights, null, 1), "application/json");
  } else {
    download(`playground_step${answer.step}.py`, answer.script, "text/x-python");
  }
}

// -- wiring ------------------------------------------------------------------------------------
$("pg-settings").addEventListener("submit", (event) => { event.preventDefault(); setUp(); });
$("pg-dataset").addEventListener("change", () => { $("pg-classes-label").hidden = $("pg-dataset").value !== "blobs"; });
$("pg-play").addEventListener("click", play);
$("pg-step").addEventListener("click", () => { if (!state.playing) train(); });
$("pg-speed").addEventListener("input", () => { $("pg-speed-value").textContent = $("pg-speed").value; });
$("pg-show-test").addEventListener("change", showTestPoints);
$("pg-export-json").addEventListener("click", () => exportNetwork("json"));
$("pg-export-script").addEventListener("click", () => exportNetwork("script"));
$("pg-csv-file").addEventListener("change", async () => {
  const file = $("pg-csv-file").files[0];
  if (!file) return;
  if (file.size > state.limits.max_csv_chars * 4) {
    showMessage(`the file is ${file.size} bytes; paste or upload at most ${state.limits.max_csv_chars} characters`);
    return;
  }
  $("pg-csv").value = await file.text();
});
$("pg-csv-use").addEventListener("click", () => { $("pg-dataset").value = "csv"; setUp(); });
