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
        // far enough from the source neuron that a "before → after" label clears its circle
        const t = 0.42, x = a.x + t * (b.x - a.x), y = a.y + t * (b.y - a.y);
        const label = el("svg:text", { x, y: y - 3, class: "wlabel", "data-for": id });
        if (crowded) label.setAttribute("visibility", "hidden");
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
      if (depth > 0) {
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
  svg.append(edges, labels, nodes);
  svg.querySelectorAll(".element").forEach((node) =>
    node.addEventListener("click", () => select(node.dataset.id)));
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
  fillTable($("claims"), ["step", "quantity", "claimed", "source's formula", "formula gives", "backprop gives", "verdict"],
    view.claims.map((c) => {
      const verdict = el("td", { class: c.agrees === false ? "wrong" : c.agrees ? "agrees" : "" }, c.text.verdict);
      return [String(c.step), c.name, c.written, c.formula || "–", c.text.formula_value, c.text.true_value, verdict];
    }));
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
