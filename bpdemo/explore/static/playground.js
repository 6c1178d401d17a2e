// The explorer's playground: the settings, play/pause/step, and each frame drawn as it comes.
// The server trains both models and sends the boundary, the curves and every number.
"use strict";

// -- the playground -----------------------------------------------------------------------------
const PALETTE = Array.from({ length: 256 }, (_, k) => {
  const t = k / 255, orange = [245, 147, 34], blue = [8, 119, 189], white = [245, 245, 245];
  const [from, to, s] = t < 0.5 ? [orange, white, t * 2] : [white, blue, (t - 0.5) * 2];
  return from.map((c, i) => Math.round(c + (to[i] - c) * s));
});

function settingsBody() {
  const body = {};
  for (const field of $("pg-settings").elements) {
    if (!field.name) continue;
    if (field.name === "hidden") {
      const text = field.value.trim();
      body.hidden = text === "" ? [] : text.split(",").map((part) => typed(part));
    } else if (field.tagName === "SELECT") body[field.name] = field.value;
    else body[field.name] = typed(field.value);
  }
  return body;
}

async function setUp() {
  stop();
  await settle();
  const answer = await call("/api/playground/setup", settingsBody());
  if (!answer) return;
  state.pgReady = true;
  const svg = $("pg-points"), size = svg.clientWidth || 360;
  svg.replaceChildren(...answer.points.map((p) => el("svg:circle", {
    cx: p.u * size, cy: p.v * size, r: 3.2, class: p.label ? "class1" : "class0" })));
  renderFrame(answer.frame);
}

function renderFrame(frame) {
  const grid = frame.grid, g = grid.size;
  const image = new ImageData(g, g);
  grid.p255.forEach((shade, k) => { image.data.set([...PALETTE[shade], 255], k * 4); });
  const small = document.createElement("canvas");
  small.width = g; small.height = g;
  small.getContext("2d").putImageData(image, 0, 0);
  const canvas = $("pg-canvas"), context = canvas.getContext("2d");
  context.imageSmoothingEnabled = true;
  context.drawImage(small, 0, 0, canvas.width, canvas.height);

  const svg = $("pg-curve"), w = 420, h = 200, left = 56, bottom = 24, top = 26;
  const line = (points, cls) => el("svg:polyline", { class: cls, points: points
    .filter((p) => typeof p[1] === "number")
    .map(([u, v]) => `${left + u * (w - left - 8)},${h - bottom - v * (h - bottom - top)}`).join(" ") });
  svg.replaceChildren(
    el("svg:text", { x: 8, y: 15, class: "tick" }, "loss on all the points: hand-written (solid blue), autograd (dashed orange)"),
    el("svg:line", { x1: left, y1: h - bottom, x2: w - 8, y2: h - bottom, class: "axis" }),
    el("svg:line", { x1: left, y1: top, x2: left, y2: h - bottom, class: "axis" }),
    el("svg:text", { x: left - 4, y: top + 4, class: "tick end" }, frame.text.top),
    el("svg:text", { x: left - 4, y: h - bottom, class: "tick end" }, "0"),
    el("svg:text", { x: w - 8, y: h - 6, class: "tick end" }, `step ${frame.curve.last_step}`),
    line(frame.curve.manual, "manual"), line(frame.curve.autograd, "autograd"));

  $("pg-stepno").textContent = frame.step;
  $("pg-epoch").textContent = frame.epoch;
  const t = frame.text;
  const stats = [
    ["loss", t.loss_manual, t.loss_autograd],
    ["accuracy", t.accuracy_manual, t.accuracy_autograd],
  ];
  fillTable($("pg-stats"), ["", "hand-written", "autograd"], stats);
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
  const grid_row = el("tr", { class: "drift" });
  grid_row.append(el("td", {}, "their boundaries: largest |p hand-written − p autograd|"), el("td", { colspan: 2 }, t.grid_diff));
  $("pg-stats").append(diff, drift, grid_row);
  $("pg-drift-why").textContent = t.why_drift;
  const loss = $("pg-stats").rows[1];
  loss.id = "pg-loss";
  loss.dataset.manual = frame.loss.manual;
  loss.dataset.autograd = frame.loss.autograd;
  loss.dataset.first = frame.loss.first;
  fillTable($("pg-norms"), ["layer", "hand-written", "autograd"], frame.grad_norms.map((r) => r.text));
  $("pg-status").textContent = frame.message;
  $("pg-status").classList.toggle("warn", Boolean(frame.message));
  if (frame.diverged_at_step !== null) stop();
}

async function train() {
  if (!state.pgReady) return false;
  const frame = await call("/api/playground/train", { epochs: 1 });
  if (!frame) return false;
  renderFrame(frame);
  return frame.diverged_at_step === null;
}

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

// -- wiring ------------------------------------------------------------------------------------
$("pg-settings").addEventListener("submit", (event) => { event.preventDefault(); setUp(); });
$("pg-play").addEventListener("click", play);
$("pg-step").addEventListener("click", () => { if (!state.playing) train(); });
