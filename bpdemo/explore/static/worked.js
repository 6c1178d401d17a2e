// The explorer's worked example: the network drawn in SVG, the phases, the detail panel, the claims.
// Every number and text comes from the server (see app.js for how requests are sent).
"use strict";

const PHASES = ["forward", "loss", "backward", "update"];

// -- the worked example: drawing --------------------------------------------------------------
function layout(sizes) {
  const gapX = 240, gapY = 125, top = 50, left = 70;
  const tallest = Math.max(...sizes);
  const height = top * 2 + (tallest - 1) * gapY + 40;
  const pos = (depth, unit) => ({
    x: left + depth * gapX,
    y: top + 20 + (unit + (tallest - sizes[depth]) / 2) * gapY,
  });
  return { pos, width: left + (sizes.length - 1) * gapX + 230, height };
}

function drawNetwork(view) {
  const sizes = view.network.sizes;
  const svg = $("network");
  const { pos, width, height } = layout(sizes);
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  const edges = el("svg:g"), labels = el("svg:g"), nodes = el("svg:g");
  for (let layer = 0; layer + 1 < sizes.length; layer++) {
    const crowded = sizes[layer] * sizes[layer + 1] > 36;
    for (let j = 0; j < sizes[layer + 1]; j++) {
      for (let i = 0; i < sizes[layer]; i++) {
        const a = pos(layer, i), b = pos(layer + 1, j);
        const id = `w${layer}_${j}_${i}`;
        const g = el("svg:g", { id: `el-${id}`, class: "element weight", "data-id": id });
        g.append(el("svg:line", { x1: a.x, y1: a.y, x2: b.x, y2: b.y, class: "edge" }));
        g.append(el("svg:line", { x1: a.x, y1: a.y, x2: b.x, y2: b.y, class: "hit" }));
        edges.append(g);
        // placed once its text is known (placeLabels), clear of every neuron
        const label = el("svg:text", {
          class: "wlabel", "data-for": id, "data-x1": a.x, "data-y1": a.y, "data-x2": b.x, "data-y2": b.y,
        });
        if (crowded) label.dataset.crowded = "true";
        labels.append(label);
      }
    }
  }
  const names = view.network.labels;
  const layerNames = [names.inputs, ...(names.hidden || sizes.slice(2).map(() => null)), names.outputs];
  sizes.forEach((count, depth) => {
    for (let j = 0; j < count; j++) {
      const p = pos(depth, j), id = `n${depth}_${j}`;
      const name = layerNames[depth] && layerNames[depth][j];
      if (name) nodes.append(el("svg:text", { x: p.x, y: p.y - 48, class: "name" }, name));
      const g = el("svg:g", { id: `el-${id}`, class: "element neuron", "data-id": id });
      g.append(el("svg:circle", { cx: p.x, cy: p.y, r: 42 }));
      g.append(el("svg:text", { x: p.x, y: p.y - 4, class: "line0" }));
      g.append(el("svg:text", { x: p.x, y: p.y + 12, class: "line1" }));
      nodes.append(g);
      if (depth > 0 && view.network.bias !== false) {  // a network without biases draws none
        const bid = `b${depth - 1}_${j}`;
        const b = el("svg:g", { id: `el-${bid}`, class: "element bias", "data-id": bid });
        b.append(el("svg:rect", { x: p.x - 45, y: p.y + 46, width: 90, height: 18, rx: 4 }));
        b.append(el("svg:text", { x: p.x, y: p.y + 59, class: "line0" }));
        nodes.append(b);
      }
    }
  });
  const out = pos(sizes.length - 1, 0);
  const loss = el("svg:g", { id: "el-loss", class: "element loss", "data-id": "loss" });
  loss.append(el("svg:rect", { x: out.x + 70, y: out.y - 22, width: 130, height: 44, rx: 6 }));
  loss.append(el("svg:text", { x: out.x + 135, y: out.y + 5, class: "line0" }));
  nodes.append(loss);
  svg.append(edges, nodes, labels);  // the labels above the lines and the neurons
  svg.querySelectorAll(".element").forEach((node) =>
    node.addEventListener("click", () => select(node.dataset.id)));
}

// -- the numbers fit their places ---------------------------------------------------------------
const NEURON_RADIUS = 42, TEXT_SIZE = 11.5, SMALLEST_TEXT = 7;

// A text set smaller where it is wider than `room`, and squeezed if even the smallest size is too
// wide (1e+145).
function fitText(t, room) {
  t.style.fontSize = "";
  t.removeAttribute("textLength");
  t.removeAttribute("lengthAdjust");
  if (!t.textContent) return;
  const width = t.getComputedTextLength();
  if (width <= room) return;
  t.style.fontSize = `${Math.max(SMALLEST_TEXT, TEXT_SIZE * room / width)}px`;
  if (t.getComputedTextLength() > room) {
    t.setAttribute("textLength", room);
    t.setAttribute("lengthAdjust", "spacingAndGlyphs");
  }
}

function fitNeuronTexts() {
  // Each line of a neuron inside its circle: at the line's height the circle is 2·√(r² − dy²) wide.
  document.querySelectorAll("#network .neuron").forEach((g) => {
    const cy = Number(g.querySelector("circle").getAttribute("cy"));
    g.querySelectorAll("text").forEach((t) => {
      const dy = Math.abs(Number(t.getAttribute("y")) - cy) + TEXT_SIZE * 0.6;
      fitText(t, 2 * Math.sqrt(Math.max(NEURON_RADIUS ** 2 - dy ** 2, 0)) - 8);
    });
  });
}

function fitBiasTexts() {
  // A bias's text inside its box.
  document.querySelectorAll("#network .bias").forEach((g) => {
    fitText(g.querySelector("text"), Number(g.querySelector("rect").getAttribute("width")) - 6);
  });
}

function overlaps(a, b, gap = 0) {
  return a.x < b.x + b.width + gap && b.x < a.x + a.width + gap &&
    a.y < b.y + b.height + gap && b.y < a.y + a.height + gap;
}

function placeLabels() {
  // Each weight's label on its edge, where it covers no neuron, no box and no other label: tried
  // from the middle of the edge outwards, just above it, then just below; left out where none is
  // free (its number is in the detail panel), and in a crowded layer gap.
  const svg = $("network");
  const blocked = [...svg.querySelectorAll(".neuron circle, .bias rect, .loss rect, text.name")]
    .map((node) => node.getBBox());
  const taken = [];
  const spots = [0.5, 0.42, 0.58, 0.34, 0.66, 0.27, 0.73, 0.2, 0.8];
  svg.querySelectorAll("text.wlabel").forEach((label) => {
    label.setAttribute("visibility", "hidden");
    if (label.dataset.crowded || !label.textContent) return;
    const [x1, y1, x2, y2] = ["x1", "y1", "x2", "y2"].map((k) => Number(label.dataset[k]));
    for (const t of spots) {
      for (const shift of [-4, 13]) {
        label.setAttribute("x", x1 + t * (x2 - x1));
        label.setAttribute("y", y1 + t * (y2 - y1) + shift);
        const box = label.getBBox();
        if (blocked.some((b) => overlaps(box, b, 2)) || taken.some((b) => overlaps(box, b, 1))) continue;
        label.setAttribute("visibility", "visible");
        taken.push(box);
        return;
      }
    }
  });
}

function setValues(node, values) {
  for (const key of Object.keys(node.dataset)) if (key !== "id") delete node.dataset[key];
  for (const [key, value] of Object.entries(values || {})) node.dataset[key] = String(value);
}

function renderWorked() {
  const view = state.view;
  if (!view) return;
  const shape = view.network.sizes.join("-");
  if (shape !== state.shape) { drawNetwork(view); state.shape = shape; }
  const items = view.phases[state.phase];
  for (const [id, item] of Object.entries(items)) {
    const node = $(`el-${id}`);
    if (!node) continue;
    setValues(node, item.values);
    const texts = node.querySelectorAll("text");
    const label = document.querySelector(`text[data-for="${id}"]`);
    if (label) label.textContent = item.show.join(" ");
    else texts.forEach((t, k) => { t.textContent = item.show[k] || ""; });
    // the server marks each weight's edge; one meaning per mark, the pictures' own (see the legend)
    if (item.mark) node.dataset.mark = item.mark;
  }
  fitNeuronTexts();
  fitBiasTexts();
  placeLabels();
  $("network").dataset.phase = state.phase;
  renderLegend(view.legend[state.phase]);
  $("w-title").textContent = view.title;
  $("w-rule").textContent = `network ${view.network.sizes.join("-")}, ` +
    `${view.network.activations.join(", ")}; loss ${view.network.loss}: L = ${view.network.loss_formula}; ` +
    `${view.update_rule}; ${view.network.dtype}`;
  $("w-step").textContent = view.step;
  $("w-step").dataset.value = view.step;
  if (document.activeElement !== $("w-lr")) $("w-lr").value = view.lr;
  document.querySelectorAll("#phases button").forEach((b) =>
    b.classList.toggle("active", b.dataset.phase === state.phase));
  const sampleSelect = $("w-sample");
  $("w-sample-label").hidden = view.samples < 2;
  if (sampleSelect.options.length !== view.samples) {
    sampleSelect.replaceChildren(...Array.from({ length: view.samples }, (_, k) => el("option", { value: k }, k)));
  }
  sampleSelect.value = view.sample;
  const agreement = view.agreement;
  const status = $("w-status");
  status.textContent = view.message || agreement.text;
  status.classList.toggle("warn", Boolean(view.message) || !agreement.within_tolerance);
  renderDetail();
  renderClaims();
}

function renderLegend(entries) {
  const legend = $("legend");
  legend.replaceChildren(el("span", { class: "muted" }, "edges:"));
  for (const entry of entries) {
    // a zero's meaning only when an edge has it
    if (entry.mark === "zero" && !document.querySelector('#network .weight[data-mark="zero"]')) continue;
    const item = el("span", { class: "entry", "data-mark": entry.mark });
    const swatch = el("svg:svg", { width: 34, height: 10, class: "swatch", "data-mark": entry.mark });
    swatch.append(el("svg:line", { x1: 2, y1: 5, x2: 32, y2: 5, class: "edge" }));
    item.append(swatch, el("span", { class: "text" }, entry.text));
    legend.append(item);
  }
}

function renderDetail() {
  const id = state.selected;
  const item = id && state.view.phases[state.phase][id];
  document.querySelectorAll(".element.selected").forEach((n) => n.classList.remove("selected"));
  $("d-edit").hidden = true;
  $("d-hint").hidden = Boolean(item);
  if (!item) {
    $("d-lines").replaceChildren(); $("d-paths").replaceChildren(); $("d-compare").replaceChildren();
    return;
  }
  $(`el-${id}`).classList.add("selected");
  $("d-title").textContent = item.title;
  $("d-lines").replaceChildren(...item.lines.map((line) => el("div", {}, line)));
  const paths = $("d-paths");
  paths.replaceChildren();
  if (item.paths) {
    const p = item.paths;
    paths.append(el("p", { class: "muted" }, `the chain rule, path by path (sample ${p.sample}; ` +
      `${p.count} path${p.count > 1 ? "s" : ""}${p.count > p.shown.length ? `, ${p.shown.length} shown` : ""}):`));
    for (const path of p.shown) {
      const line = el("div", { class: "path" });
      path.factors.forEach((f, k) => {
        if (k) line.append(el("span", { class: "times" }, "×"));
        const chip = el("span", { class: "factor" });
        chip.append(el("small", {}, f.name), el("b", {}, f.text));
        line.append(chip);
      });
      line.append(el("span", { class: "times" }, "="), el("b", { class: "product" }, path.text.split(" = ").pop()));
      paths.append(line);
    }
  }
  if (item.compare.length) {
    fillTable($("d-compare"), ["", "hand-written", "autograd", "difference"],
      item.compare.map((r) => [r.quantity, ...r.text]));
  } else {
    $("d-compare").replaceChildren();
  }
  if (item.edit) {
    $("d-edit").hidden = false;
    $("d-edit-label").textContent = state.view.step === 1 || item.edit.what === "input" || item.edit.what === "target"
      ? "starting value" : "value";
    $("d-value").value = item.edit.value;
  }
}

function renderClaims() {
  const view = state.view;
  $("claims-legend").textContent = view.claims.length ? view.claims_legend : "This example states no claims.";
  $("claims-note").textContent = view.claims_note;
  $("claims-note").hidden = !view.claims_note;
  // the audit's two verdicts: the claim against backpropagation, and against the source's formula;
  // under a wrong claim, the slips that reproduce it
  const verdictCell = (agrees, text) =>
    el("td", { class: agrees === false ? "wrong" : agrees ? "agrees" : "" }, text);
  fillTable($("claims"), ["step", "quantity", "claimed", "source's formula", "formula gives",
    "backprop gives", "claim vs backprop", "claim vs formula", "why"],
  view.claims.map((c) => [String(c.step), c.name, c.written, c.formula || "–", c.text.formula_value,
    c.text.true_value, verdictCell(c.agrees, c.text.verdict),
    verdictCell(c.formula_agrees, c.text.formula_verdict),
    el("td", { class: "why" }, (c.diagnosis || []).join("; ") || "")]));
  Array.from($("claims").rows).slice(1).forEach((tr, k) =>
    tr.addEventListener("click", () => showClaim(view.claims[k])));
}

// -- the worked example: moving and editing ---------------------------------------------------
async function goTo(step, phase) {
  const view = await call("/api/worked/step", { step, sample: state.view ? state.view.sample : 0 });
  if (!view) return false;
  state.view = view;
  state.phase = phase;
  renderWorked();
  return true;
}

function movePhase(by) {
  if (state.busy || !state.view) return;
  const k = PHASES.indexOf(state.phase) + by;
  if (k >= 0 && k < PHASES.length) { state.phase = PHASES[k]; renderWorked(); return; }
  const step = state.view.step + by;
  if (step >= 1 && step <= state.limits.max_step) goTo(step, by > 0 ? "forward" : "update");
}

function moveStep(by) {
  if (state.busy || !state.view) return;
  const step = state.view.step + by;
  if (step >= 1 && step <= state.limits.max_step) goTo(step, state.phase);
}

function select(id) { state.selected = id; renderDetail(); }

async function showClaim(claim) {
  if (!claim.target) return;
  await settle();
  if (typeof claim.step === "number" && claim.step !== state.view.step) {
    if (!(await goTo(claim.step, claim.target.phase))) return;
  }
  state.phase = claim.target.phase;
  state.selected = claim.target.element;
  renderWorked();
  const node = $(`el-${claim.target.element}`);
  node.classList.add("highlight");
  setTimeout(() => node.classList.remove("highlight"), 2500);
}

async function edit(change) {
  await settle();
  const view = await call("/api/worked/edit", { ...change, sample: state.view.sample });
  if (view) { state.view = view; renderWorked(); }
}

// -- wiring ------------------------------------------------------------------------------------
$("phase-next").addEventListener("click", () => movePhase(1));
$("phase-prev").addEventListener("click", () => movePhase(-1));
$("step-next").addEventListener("click", () => moveStep(1));
$("step-prev").addEventListener("click", () => moveStep(-1));
document.querySelectorAll("#phases button").forEach((b) => b.addEventListener("click", () => {
  state.phase = b.dataset.phase; renderWorked();
}));
$("w-sample").addEventListener("change", async () => {
  await settle();
  const view = await call("/api/worked/step", { step: state.view.step, sample: Number($("w-sample").value) });
  if (view) { state.view = view; renderWorked(); }
});
$("w-lr-set").addEventListener("click", () => edit({ what: "lr", value: typed($("w-lr").value) }));
$("w-reset").addEventListener("click", async () => {
  await settle();
  const view = await call("/api/worked/reset");
  if (view) { state.view = view; renderWorked(); }
});
$("d-edit").addEventListener("submit", (event) => {
  event.preventDefault();
  const item = state.view.phases[state.phase][state.selected];
  if (item && item.edit) edit({ ...item.edit, value: typed($("d-value").value) });
});
document.addEventListener("keydown", (event) => {
  if ($("page-worked").hidden || ["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName)) return;
  if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
  event.preventDefault();
  const by = event.key === "ArrowRight" ? 1 : -1;
  if (event.shiftKey) moveStep(by); else movePhase(by);
});
