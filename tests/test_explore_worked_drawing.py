"""The explorer's drawing fits its numbers: every edge label stands clear of every neuron, every
neuron's text inside its circle, on the 3-2-1 example and on a run whose numbers grow to 1e+145;
inputs read as name = value; a network without biases draws none; the claims table has the audit's
two verdict columns and its diagnosis. Headless Chromium, as tests/test_explore_browser.py drives it."""

import json
import math
from pathlib import Path

import pytest

from bpdemo.explore import create_app, serving
from bpdemo.infra.cli import run_main
from bpdemo.train import torch_threads
from bpdemo.worked import load_worked_config
from demos.explore import THREADS
from demos.worked_example import main as worked_example_main
from tests.test_explore_browser import (
    CHROMEDRIVER,
    CHROMIUM,
    browser,  # noqa: F401  (a fixture)
    claims_table_as_in_the_trace,
    screenshots,  # noqa: F401  (a fixture)
    show_phase,
    step_shown,
    wait_for,
)

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
PHASES = ["forward", "loss", "backward", "update"]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Chromium and its driver (Debian packages chromium and chromium-driver)",
)

# The 3-2-1 example with a learning rate that makes its numbers explode: by step 3 the
# pre-activations are near 1e+145, and the run diverges after.
DIVERGING = (
    (CONFIGS / "worked_321.toml")
    .read_text(encoding="utf-8")
    .replace("lr = 0.1 ", "lr = 1e35")
    .replace("steps = 1 ", "steps = 6")
)


def serve(path: Path):
    app = create_app(load_worked_config(path), str(path))
    with torch_threads(THREADS), serving(app) as address:
        yield address


@pytest.fixture(scope="module")
def url_321():
    yield from serve(CONFIGS / "worked_321.toml")


@pytest.fixture(scope="module")
def url_textbook():
    yield from serve(CONFIGS / "worked_textbook.toml")


@pytest.fixture(scope="module")
def url_diverging(tmp_path_factory):
    path = tmp_path_factory.mktemp("diverging") / "diverging.toml"
    path.write_text(DIVERGING, encoding="utf-8")
    yield from serve(path)


def open_at(browser, url: str) -> None:  # noqa: F811
    browser.get(url)
    wait_for(browser, lambda: step_shown(browser) == 1, "the page shows no step")


DRAWING = """
const svg = document.getElementById('network');
const box = (n) => { const b = n.getBBox(); return {x: b.x, y: b.y, w: b.width, h: b.height}; };
const circles = [...svg.querySelectorAll('.neuron circle')].map((c) => ({
  id: c.parentNode.id, cx: +c.getAttribute('cx'), cy: +c.getAttribute('cy'), r: +c.getAttribute('r')}));
const labels = [...svg.querySelectorAll('text.wlabel')].map((t) => ({
  id: t.dataset.for, text: t.textContent, visible: t.getAttribute('visibility') !== 'hidden',
  ...box(t)}));
const texts = [...svg.querySelectorAll('.neuron text')].map((t) => ({
  id: t.parentNode.id, text: t.textContent, ...box(t)}));
return {circles, labels, texts};
"""


def hits_circle(rect: dict, circle: dict) -> bool:
    """Whether a rectangle and a circle intersect: the rectangle's nearest point to the centre."""
    near_x = min(max(circle["cx"], rect["x"]), rect["x"] + rect["w"])
    near_y = min(max(circle["cy"], rect["y"]), rect["y"] + rect["h"])
    return math.hypot(near_x - circle["cx"], near_y - circle["cy"]) < circle["r"]


def inside_circle(rect: dict, circle: dict, slack: float = 1.0) -> bool:
    corners = [(rect["x"] + dx, rect["y"] + dy) for dx in (0, rect["w"]) for dy in (0, rect["h"])]
    return all(
        math.hypot(x - circle["cx"], y - circle["cy"]) <= circle["r"] + slack for x, y in corners
    )


def check_drawing(browser) -> dict:  # noqa: F811
    drawing = browser.execute_script(DRAWING)
    circles = {c["id"]: c for c in drawing["circles"]}
    for label in drawing["labels"]:
        if label["visible"]:
            hidden_by = [c["id"] for c in circles.values() if hits_circle(label, c)]
            assert not hidden_by, (label, hidden_by)
    for text in drawing["texts"]:
        if text["text"]:
            assert inside_circle(text, circles[text["id"]]), text
    return drawing


def test_the_321_example_keeps_every_label_clear_of_the_neurons(url_321, browser, screenshots):  # noqa: F811
    open_at(browser, url_321)
    for phase in PHASES:
        show_phase(browser, phase)
        drawing = check_drawing(browser)
        assert all(label["visible"] for label in drawing["labels"]), phase  # all 8 have room
        browser.save_screenshot(str(screenshots / f"explore_worked_drawing_{phase}.png"))
    inputs = [t["text"] for t in drawing["texts"] if t["id"].startswith("el-n0_") and t["text"]]
    assert inputs == ["x[0] = 1", "x[1] = 2", "x[2] = 3"]  # names and values, not indices


def test_numbers_of_any_size_fit_their_circles(url_diverging, browser, screenshots, tmp_path):  # noqa: F811
    from selenium.webdriver.common.keys import Keys

    open_at(browser, url_diverging)
    body = browser.find_element("tag name", "body")
    largest = 0.0
    for step in (2, 3):
        body.send_keys(Keys.SHIFT, Keys.ARROW_RIGHT)
        wait_for(browser, lambda s=step: step_shown(browser) == s, f"no step {step}")
        for phase in PHASES:
            show_phase(browser, phase)
            drawing = check_drawing(browser)
        for node in browser.find_elements("css selector", "#network .neuron"):
            z = node.get_attribute("data-z")
            if z and math.isfinite(float(z)):
                largest = max(largest, abs(float(z)))
    browser.save_screenshot(str(screenshots / "explore_worked_drawing_large.png"))
    assert largest > 1e100  # the numbers drawn were that large
    assert any("e" in t["text"] for t in drawing["texts"])


def test_a_network_without_biases_and_the_claims_with_both_verdicts_and_why(
    url_textbook,
    browser,  # noqa: F811
    screenshots,  # noqa: F811
    tmp_path,
):
    out = tmp_path / "textbook"
    argv = ["--config", str(CONFIGS / "worked_textbook.toml"), "--out", str(out), "--quiet"]
    assert run_main(worked_example_main, argv) == 0
    claims = json.loads((out / "trace.json").read_text())["claims"]
    open_at(browser, url_textbook)
    assert browser.find_elements("css selector", "#network .bias") == []
    check_drawing(browser)
    label = browser.find_element("css selector", 'text[data-for="w1_0_0"]').text
    assert label == "w35 = 0.3"
    header = [cell.text for cell in browser.find_elements("css selector", "#claims th")]
    assert "claim vs backprop" in header and "claim vs formula" in header and "why" in header
    claims_table_as_in_the_trace(browser, claims)
    assert sum(bool(c["diagnosis"]) for c in claims) >= 8
    browser.save_screenshot(str(screenshots / "explore_worked_textbook.png"))
