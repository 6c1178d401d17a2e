"""The playground and the image tab in a real browser (headless Chromium, driven by Selenium).

One test per thing a learner does: watch the neurons' pictures change, click a point and read its
backpropagation, train three classes and a regression, read the test loss, paste points, reload a
link, make the gradients vanish, draw a digit. Every number read off the page is compared with one
computed here: autograd on the page's exported weights, `bpdemo.health`'s rules, a hand count.
The fixtures (one server, one browser for the module) are the explorer's browser tests'.
"""

# ruff: noqa: F811 (the fixtures are the explorer's browser tests', imported under their own names)
import json

import numpy as np
import pytest
import torch

from bpdemo.health import Thresholds, judge
from tests.test_explore_browser import (  # noqa: F401 (the fixtures, and the skip without Chromium)
    browser,
    pytestmark,
    screenshots,
    show_phase,
    url,
    values,
    wait_for,
)

TORCH_ACTIVATIONS = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "identity": lambda z: z}
RUN = """
const done = arguments[arguments.length - 1];
(async () => %s)().then((value) => done(value === undefined ? null : value), (e) => done(String(e)));
"""


def run(browser, body: str, *args):
    """Await `body` (an expression using `args[0]`, ...) in the page; returns its value."""
    browser.set_script_timeout(180)
    return browser.execute_async_script(RUN % body.replace("args[", "arguments["), *args)


def idle(browser) -> None:
    wait_for(browser, lambda: not browser.find_element("id", "busy").is_displayed(), "never idle")


def open_playground(browser, url, **settings) -> dict:
    """A fresh page on the playground, set up with `settings` typed into its form; its set-up."""
    browser.get("about:blank")
    browser.get(url)
    wait_for(browser, lambda: browser.execute_script("return state.session !== null"), "no session")
    browser.find_element("id", "tab-playground").click()
    wait_for(browser, lambda: browser.find_element("id", "pg-stepno").text == "0", "no set-up")
    idle(browser)
    if settings:
        set_form(browser, settings)
        browser.find_element("id", "pg-setup").click()
        wait_for(
            browser, lambda: browser.execute_script("return state.pg.settings") is not None, ""
        )
        idle(browser)
    return browser.execute_script("return state.pg")


def set_form(browser, settings: dict) -> None:
    browser.execute_script("setForm(arguments[0])", settings)


def train(browser, epochs: int) -> None:
    assert run(browser, "trainEpochs(args[0])", epochs) is True
    idle(browser)


def exported(browser) -> dict:
    return run(browser, 'call("/api/playground/export")')


def layers_of(export: dict, x: torch.Tensor) -> list[tuple]:
    """(weight, z, a) of each layer for inputs x, by torch on the exported weights, weights
    requiring their gradient."""
    layers, a = [], x
    for k, activation in enumerate(export["activations"]):
        name = sorted({n.rsplit(".", 1)[0] for n in export["parameters"]})[k]
        weight = torch.tensor(export["parameters"][f"{name}.weight"], dtype=torch.float64)
        weight.requires_grad_(True)
        bias = torch.tensor(export["parameters"][f"{name}.bias"], dtype=torch.float64)
        z = a @ weight.T + bias
        a = TORCH_ACTIVATIONS[activation](z)
        layers.append((weight, z, a))
    return layers


def picture(browser, element: str) -> str:
    return browser.execute_script(f"return document.getElementById('{element}').toDataURL()")


# -- 1. the network, drawn live ---------------------------------------------------------------------
def test_every_hidden_neuron_has_a_picture_that_changes_as_training_runs(url, browser, screenshots):
    setup = open_playground(browser, url)
    hidden = setup["network"]["sizes"][1:-1]
    names = [
        f"pg-n{depth}_{unit}" for depth, width in enumerate(hidden, 1) for unit in range(width)
    ]
    assert len(names) == sum(hidden) == 16
    before = {name: picture(browser, name) for name in names}
    train(browser, 20)
    changed = [name for name in names if picture(browser, name) != before[name]]
    assert changed == names
    edges = browser.find_elements("css selector", "#pg-network .pg-edge")
    assert len(edges) == 2 * 8 + 8 * 8 + 8  # one per weight, sized by it
    widths = {float(edge.get_attribute("stroke-width")) for edge in edges}
    assert len(widths) > 10
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).move_to_element(browser.find_element("id", "pg-n2_5")).perform()
    wait_for(browser, browser.find_element("id", "pg-neuron-big").is_displayed, "no hover")
    assert "hidden layer 2, neuron 5 (24×24" in browser.find_element("id", "pg-neuron-title").text
    browser.find_element("id", "pg-n1_3").click()  # its picture at full size
    wait_for(browser, browser.find_element("id", "pg-neuron-big").is_displayed, "no full size")
    title = browser.find_element("id", "pg-neuron-title")
    wait_for(browser, lambda: "hidden layer 1, neuron 3: " in title.text, "no full size")
    assert title.text.endswith("(100×100)")
    browser.save_screenshot(str(screenshots / "explore_playground.png"))


# -- 2. click a point, see its backpropagation ------------------------------------------------------
def test_a_clicked_points_step_through_shows_autograds_numbers_on_the_current_weights(
    url, browser, screenshots
):
    setup = open_playground(browser, url, dataset="moons")
    train(browser, 10)
    export = exported(browser)
    index = 11
    browser.find_element("css selector", f'#pg-points circle[data-index="{index}"]').click()
    wait_for(browser, lambda: browser.find_element("id", "page-worked").is_displayed(), "no step")
    idle(browser)
    assert browser.find_element("id", "w-title").text.startswith(f"point {index} ")
    point = setup["points"][index]
    x = torch.tensor([[point["x"], point["y"]]], dtype=torch.float64)
    layers = layers_of(export, x)
    target = torch.tensor([[float(point["label"])]], dtype=torch.float64)
    loss = torch.nn.functional.binary_cross_entropy(layers[-1][2], target)
    loss.backward()
    for layer, (_, z, a) in enumerate(layers):
        z, a = z.detach(), a.detach()
        for unit in range(z.shape[1]):
            shown = values(browser, f"n{layer + 1}_{unit}")
            assert shown["z"] == pytest.approx(float(z[0, unit]), abs=1e-12)
            assert shown["a"] == pytest.approx(float(a[0, unit]), abs=1e-12)
    show_phase(browser, "backward")
    for layer, (weight, _, _) in enumerate(layers):
        for j, i in ((0, 0), (weight.shape[0] - 1, weight.shape[1] - 1)):
            grad = values(browser, f"w{layer}_{j}_{i}")["grad"]
            assert grad == pytest.approx(float(weight.grad[j, i]), abs=1e-12)
    browser.find_element("id", f"el-w{len(layers) - 1}_0_0").click()  # autograd's number beside
    rows = browser.find_elements("css selector", "#d-compare tr")
    assert [c.text for c in rows[0].find_elements("tag name", "th")][1:] == [
        "hand-written",
        "autograd",
        "difference",
    ]
    size = browser.get_window_size()
    browser.set_window_size(1800, 1000)  # the panel of numbers beside the network
    browser.save_screenshot(str(screenshots / "explore_playground_point.png"))
    browser.set_window_size(size["width"], size["height"])


# -- 3. problems: three classes, a regression, the test loss -----------------------------------------
@pytest.mark.parametrize(("dataset", "goal"), [("blobs", 0.9), ("bumps", 0.9)])
def test_a_three_class_and_a_regression_problem_train_well_on_their_default_data(
    url, browser, screenshots, dataset, goal
):
    setup = open_playground(browser, url, dataset=dataset)
    assert setup["kind"] == {"blobs": "classes", "bumps": "regression"}[dataset]
    train(browser, 150)
    for row in ("pg-score", "pg-test-score"):
        element = browser.find_element("id", row)
        assert float(element.get_attribute("data-manual")) >= goal
        assert float(element.get_attribute("data-autograd")) >= goal
    # the score is the page's own predictions', counted here
    export = exported(browser)
    test = [k for k, p in enumerate(setup["points"]) if p["test"]]
    predictions = np.asarray(export["predictions"])[test]
    truth = np.asarray([setup["points"][k]["label"] for k in test])
    if dataset == "blobs":
        assert setup["classes"] == 3
        colours = {
            c.get_attribute("fill")
            for c in browser.find_elements("css selector", "#pg-points circle")
        }
        assert len(colours) == 3  # a colour per class
        expected = float((predictions.argmax(axis=1) == truth).mean())
    else:
        residual = ((predictions[:, 0] - truth) ** 2).sum()
        expected = 1 - residual / ((truth - truth.mean()) ** 2).sum()
    shown = float(browser.find_element("id", "pg-test-score").get_attribute("data-manual"))
    assert shown == pytest.approx(expected, abs=1e-12)
    browser.save_screenshot(str(screenshots / f"explore_playground_{dataset}.png"))


def test_the_test_loss_is_drawn_beside_the_training_loss(url, browser):
    setup = open_playground(browser, url)
    assert setup["test_points"] == 60
    for _ in range(5):  # five frames of an epoch
        train(browser, 1)
    test_loss = browser.find_element("id", "pg-test-loss")
    assert 0 < float(test_loss.get_attribute("data-manual")) < 10
    for line in ("manual", "autograd", "test-manual", "test-autograd"):
        points = browser.find_element("css selector", f"#pg-curve .{line}").get_attribute("points")
        assert len(points.split()) == 6  # the start and 5 frames' epochs
    rings = browser.find_elements("css selector", "#pg-points circle.test")
    assert len(rings) == 60


# -- 4. your own points -------------------------------------------------------------------------------
def test_pasted_points_train_and_a_bad_csv_gets_its_one_line(url, browser, screenshots):
    open_playground(browser, url)
    rng = np.random.default_rng(2)
    points = rng.uniform(-1, 1, size=(80, 2))
    text = "\n".join(
        ["x1,x2,label"] + [f"{a:.4f},{b:.4f},{int(a * a + b * b < 0.5)}" for a, b in points]
    )
    browser.find_element("css selector", "#pg-csv-box summary").click()
    browser.execute_script("document.getElementById('pg-csv').value = arguments[0]", text)
    browser.find_element("id", "pg-csv-use").click()
    wait_for(
        browser,
        lambda: "56 training points, 24 test" in browser.find_element("id", "pg-problem").text,
        "",
    )
    set_form(browser, {"features": ["x1", "x2", "x1^2", "x2^2"]})
    browser.find_element("id", "pg-setup").click()
    idle(browser)
    assert browser.execute_script("return state.pg.network.sizes") == [4, 8, 8, 1]
    train(browser, 40)
    assert float(browser.find_element("id", "pg-score").get_attribute("data-manual")) >= 0.9
    browser.save_screenshot(str(screenshots / "explore_playground_csv.png"))

    bad = text.replace("\n", "\n0.5,oops,1\n", 1)
    browser.execute_script("document.getElementById('pg-csv').value = arguments[0]", bad)
    browser.find_element("id", "pg-csv-use").click()
    message = browser.find_element("id", "message")
    wait_for(browser, message.is_displayed, "no message")
    assert message.text == "CSV line 2: '0.5,oops,1' is not three numbers x1,x2,label"


# -- 5. a link reproduces a run --------------------------------------------------------------------------
def test_a_reloaded_link_gives_the_same_weights(url, browser):
    open_playground(browser, url, dataset="circles", seed=7, hidden=[6, 4], noise=0.05)
    browser.execute_script("document.getElementById('pg-speed').value = 3")
    browser.find_element("id", "pg-step").click()
    wait_for(browser, lambda: browser.find_element("id", "pg-epoch").text == "3", "no training")
    idle(browser)
    first = exported(browser)
    link = browser.current_url
    assert "seed=7" in link and "epoch=3" in link
    browser.get("about:blank")
    browser.get(link)
    wait_for(browser, lambda: browser.find_element("id", "pg-epoch").text == "3", "not reproduced")
    idle(browser)
    again = exported(browser)
    assert again["step"] == first["step"] > 0
    assert again["parameters"] == first["parameters"]  # bitwise: the same numbers
    assert again["predictions"] == first["predictions"]


# -- 6. gradient health ------------------------------------------------------------------------------
def test_the_gradient_chart_and_a_vanishing_verdict_on_a_deep_sigmoid_network(
    url, browser, screenshots
):
    setup = open_playground(browser, url, dataset="xor", hidden=[8, 8, 8, 8], activation="sigmoid")
    start = exported(browser)  # the weights the verdict is taken at
    train(browser, 5)
    lines = browser.find_elements("css selector", "#pg-health polyline.layer")
    assert len(lines) == 5
    assert all(len(line.get_attribute("points").split()) == 5 * 14 for line in lines)
    # the reference: each layer's ‖dL/dW‖ at the start, autograd on the training points
    rows = [p for p in setup["points"] if not p["test"]]
    x = torch.tensor([[p["x"], p["y"]] for p in rows], dtype=torch.float64)
    y = torch.tensor([[float(p["label"])] for p in rows], dtype=torch.float64)
    layers = layers_of(start, x)
    torch.nn.functional.binary_cross_entropy(layers[-1][2], y).backward()
    norms = [float(weight.grad.norm()) for weight, _, _ in layers]
    verdict, rule = judge(norms, False, "sigmoid", Thresholds())
    assert (verdict, rule) == ("vanishing", "small_slope")
    shown = browser.find_element("id", "pg-health-verdict")
    assert shown.get_attribute("data-verdict") == verdict
    assert (
        f"vanishing: at initialisation the first layer's gradient is {norms[0] / norms[-1]:.1e}"
        in (shown.text)
    )
    browser.execute_script("window.scrollTo(0, 250)")  # the chart in view
    browser.save_screenshot(str(screenshots / "explore_playground_health.png"))


def test_each_layer_with_weights_has_one_name_on_the_tab_with_dropout(url, browser):
    setup = open_playground(browser, url, hidden=[8, 8], dropout=0.2)
    names = setup["network"]["layers"]
    assert names == ["layers.0", "layers.1", "layers.2"]  # the dropout layers between not counted
    train(browser, 2)
    for layer, name in enumerate(names):  # an edge of each layer, as the point's worked example
        edge = browser.find_element("id", f"pg-w{layer}_0_0")
        title = edge.find_element("css selector", "title").get_attribute("textContent")
        assert title.startswith(f"{name} weight[0, 0] = ")
    chart = browser.find_elements("css selector", "#pg-health text.tick.end[fill]")
    assert [label.text for label in chart] == names
    rows = browser.find_elements("css selector", "#pg-norms tr")[1:]
    assert [row.find_element("css selector", "td").text for row in rows] == names


# -- 7. the image tab ----------------------------------------------------------------------------------
def test_the_image_tab_classifies_a_drawn_stroke_and_shows_both_saliency_maps(
    url, browser, screenshots
):
    from selenium.webdriver.common.action_chains import ActionChains

    from bpdemo.explore.images import digits_network

    browser.get("about:blank")
    browser.get(url)
    wait_for(browser, lambda: browser.execute_script("return state.session !== null"), "no session")
    browser.find_element("id", "tab-images").click()
    status = browser.find_element("id", "im-status")
    wait_for(browser, lambda: status.text.startswith("a 64-32-10"), "not trained")
    assert len(browser.find_elements("css selector", "#im-weights canvas")) == 32
    canvas = browser.find_element("id", "im-draw")
    # a vertical stroke down the middle: a 1
    ActionChains(browser).move_to_element_with_offset(
        canvas, 0, -100
    ).click_and_hold().move_by_offset(0, 60).move_by_offset(0, 60).move_by_offset(
        0, 60
    ).release().perform()
    table = browser.find_element("id", "im-probabilities")
    wait_for(browser, lambda: table.get_attribute("data-predicted") is not None, "not classified")
    idle(browser)
    pixels = browser.execute_script("return images.pixels")
    assert sum(pixels) > 0
    label = int(browser.find_element("id", "im-label").get_attribute("value"))
    # the reference: autograd's ∂L/∂pixel, computed here on the same trained network
    network = digits_network()
    x = torch.tensor(((np.asarray(pixels) - network.mean) / network.std)[None, :])
    x.requires_grad_(True)
    output = network.pair.autograd(x)
    torch.nn.functional.cross_entropy(output, torch.tensor([label])).backward()
    reference = (x.grad[0] / torch.tensor(network.std)).numpy()
    for model in ("manual", "autograd"):
        shown = np.asarray(
            json.loads(
                browser.find_element("id", f"im-saliency-{model}").get_attribute("data-values")
            )
        )
        assert shown.shape == (64,)
        assert np.abs(shown - reference).max() <= 1e-10 * np.abs(reference).max()
    predicted = int(table.get_attribute("data-predicted"))
    assert predicted == int(output.argmax())
    assert float(browser.find_element("id", "im-saliency-diff").get_attribute("data-diff")) < 1e-10
    browser.save_screenshot(str(screenshots / "explore_images.png"))
