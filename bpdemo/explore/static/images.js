// The explorer's image tab: a digit drawn with the mouse (or a test image) on an 8 x 8 grid, both
// models' probabilities, ∂L/∂pixel by the hand-written backward and by autograd, and the first
// layer's weights as pictures. The server trains the network the first time the tab opens.
"use strict";

const images = { ready: false, pixels: new Array(64).fill(0), tests: [], drawing: false, pending: false };

async function openImages() {
  if (images.ready) return;
  await settle();
  const answer = await call("/api/images/setup");
  if (!answer) return;
  images.ready = true;
  images.tests = answer.test_images;
  $("im-status").textContent = answer.text;
  $("im-status").classList.toggle("warn", !answer.within_tolerance);
  $("im-test").replaceChildren(el("option", { value: "" }, "–"),
    ...answer.test_images.map((t, k) => el("option", { value: k }, `${k}: a ${t.label}`)));
  $("im-label").replaceChildren(...Array.from({ length: 10 }, (_, k) => el("option", { value: k }, k)));
  const weights = $("im-weights");
  weights.replaceChildren(...answer.first_layer.map((shades, unit) => {
    const canvas = el("canvas", { width: 8, height: 8, class: "im-weight", title: `hidden neuron ${unit}` });
    paint(canvas, shades, 8);
    return canvas;
  }));
  drawPixels();
}

function drawPixels() {
  const canvas = $("im-draw"), context = canvas.getContext("2d"), cell = canvas.width / 8;
  images.pixels.forEach((value, k) => {
    const ink = Math.round(255 - value / 16 * 255);
    context.fillStyle = `rgb(${ink},${ink},${ink})`;
    context.fillRect((k % 8) * cell, Math.floor(k / 8) * cell, cell, cell);
  });
  canvas.dataset.ink = images.pixels.reduce((a, b) => a + b, 0);
}

// A stroke inks the cell under the pen fully and its four neighbours by half, as a pen would.
function ink(event) {
  const canvas = $("im-draw"), box = canvas.getBoundingClientRect();
  const column = Math.floor((event.clientX - box.left) / box.width * 8);
  const row = Math.floor((event.clientY - box.top) / box.height * 8);
  const add = (r, c, amount) => {
    if (r < 0 || r > 7 || c < 0 || c > 7) return;
    images.pixels[r * 8 + c] = Math.min(16, images.pixels[r * 8 + c] + amount);
  };
  add(row, column, 16);
  for (const [dr, dc] of [[0, 1], [1, 0], [0, -1], [-1, 0]]) add(row + dr, column + dc, 6);
  drawPixels();
}

async function classify() {
  if (!images.ready) return;
  if (state.busy) { images.pending = true; return; }
  const answer = await call("/api/images/classify", { pixels: images.pixels, label: Number($("im-label").value) });
  if (!answer) return;
  const p = answer.probabilities;
  fillTable($("im-probabilities"), ["digit", "hand-written", "autograd", "difference"],
    p.manual.map((value, k) => [String(k), value.toFixed(4), p.autograd[k].toFixed(4),
      Math.abs(value - p.autograd[k]).toExponential(1)]));
  const rows = $("im-probabilities").rows;
  rows[answer.predicted.manual + 1].classList.add("predicted");
  $("im-probabilities").dataset.predicted = answer.predicted.manual;
  $("im-probabilities").dataset.predictedAutograd = answer.predicted.autograd;
  for (const model of ["manual", "autograd"]) {
    paintEnlarged($(`im-saliency-${model}`), answer.saliency[`${model}_255`], 8);
    $(`im-saliency-${model}`).dataset.values = JSON.stringify(answer.saliency[model]);
  }
  $("im-saliency-diff").textContent = `label ${answer.label}: blue where more ink would raise the loss, ` +
    `orange where it would lower it (both on one scale, ±${answer.text.scale}, the ${answer.text.quantile} ` +
    `point of the hand-written |∂L/∂pixel|: full colour beyond); largest ` +
    `|hand-written − autograd| ${answer.text.saliency_diff}; probabilities differ by at most ${answer.text.probability_diff}`;
  $("im-saliency-diff").dataset.diff = answer.saliency.max_abs_diff;
  if (images.pending) { images.pending = false; classify(); }
}

$("im-draw").addEventListener("mousedown", (event) => { images.drawing = true; $("im-test").value = ""; ink(event); });
$("im-draw").addEventListener("mousemove", (event) => { if (images.drawing) ink(event); });
document.addEventListener("mouseup", () => { if (images.drawing) { images.drawing = false; classify(); } });
$("im-clear").addEventListener("click", () => { images.pixels.fill(0); drawPixels(); classify(); });
$("im-test").addEventListener("change", () => {
  const chosen = images.tests[Number($("im-test").value)];
  if (!chosen || $("im-test").value === "") return;
  images.pixels = chosen.pixels.slice();
  $("im-label").value = chosen.label;
  drawPixels();
  classify();
});
$("im-label").addEventListener("change", classify);
