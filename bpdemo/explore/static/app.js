// The explorer's page: what both parts share (requests, the session, small helpers, the tabs); the
// parts are worked.js and playground.js. It computes nothing: every number comes from the server.
// One request at a time: the page never sends a request before the last one was answered. A step
// or phase key pressed while one is out is ignored (a held key cannot pile requests up); an edit or
// a set-up waits for it.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const TIMEOUT_MS = 20000;
const $ = (id) => document.getElementById(id);

const state = {
  session: null, header: "X-Session", busy: false, pending: null, limits: {},
  view: null, phase: "forward", selected: null, shape: "",   // the worked example
  pgReady: false, playing: false,                            // the playground
};

// -- talking to the server ----------------------------------------------------------------------
function showMessage(text) { const m = $("message"); m.textContent = text; m.hidden = !text; }

async function call(path, body) {
  if (state.busy) return null;
  state.busy = true;
  $("busy").hidden = false;
  state.pending = send(path, body);
  try {
    return await state.pending;
  } finally {
    state.busy = false;
    $("busy").hidden = true;
  }
}

// Wait for the request that is out, if any: for actions that must not be lost (set up, edit).
async function settle() {
  while (state.busy) await state.pending;
}

async function send(path, body) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
  try {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", [state.header]: state.session || "" },
      body: JSON.stringify(body || {}),
      signal: controller.signal,
    });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      showMessage((data && data.error) || `the server answered ${response.status}`);
      return null;
    }
    showMessage("");
    return data;
  } catch (e) {
    showMessage(e.name === "AbortError" ? "the server took too long to answer"
                                        : "the server does not answer: is it still running?");
    return null;
  } finally {
    clearTimeout(timer);
  }
}

// What a user typed, as a number when it is one; otherwise as typed, for the server to refuse.
function typed(text) {
  const number = Number(text);
  return text.trim() !== "" && Number.isFinite(number) ? number : text;
}

function el(tag, attrs, text) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4))
                                      : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function fillTable(table, header, rows) {
  table.replaceChildren();
  const head = el("tr");
  header.forEach((h) => head.append(el("th", {}, h)));
  table.append(head);
  for (const cells of rows) {
    const tr = el("tr");
    cells.forEach((c) => tr.append(c instanceof Node ? c : el("td", {}, c)));
    table.append(tr);
  }
}

// -- start --------------------------------------------------------------------------------------
// The tab and its page shown, the others hidden; nothing set up or stopped.
function showTab(page) {
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.page === page));
  for (const name of ["worked", "playground", "images"]) $(`page-${name}`).hidden = page !== name;
}

function showPage(page) {
  showTab(page);
  if (page !== "playground") stop();
  if (page === "playground" && !state.pgReady) setUp();
  if (page === "images") openImages();
}

function fillSelect(select, names, chosen) {
  select.replaceChildren(...names.map((name) => el("option", { value: name }, name)));
  select.value = chosen;
}

async function start() {
  const opened = await call("/api/sessions");
  if (!opened) return;
  state.session = opened.session;
  state.header = opened.header;
  state.limits = opened.limits;
  fillSelect($("pg-activation"), opened.activations, opened.playground_defaults.activation);
  fillSelect($("pg-optimizer"), opened.optimizers, opened.playground_defaults.optimizer);
  fillPlaygroundForm(opened);
  await goTo(1, "forward");
  await restoreFromAddress();
}

// -- wiring ------------------------------------------------------------------------------------
document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => showPage(t.dataset.page)));
document.addEventListener("DOMContentLoaded", start);
