"""The playground's and the image tab's endpoints without a browser, against references computed here.

A clicked point's step is checked against autograd on the exported weights; the exported script is
run and its predictions compared with the page's; the problems of each kind learn their default
data; the gradient-health verdict is `bpdemo.health`'s on the network's gradients at the start; the
image tab's ∂L/∂pixel is checked against finite differences of the loss.
"""

import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

with warnings.catch_warnings():  # newer Starlette prefers the httpx2 package; httpx works the same
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient

from bpdemo.explore import SESSION_HEADER, create_app
from bpdemo.explore.problems import FEATURES
from bpdemo.explore.schemas import MAX_CSV_CHARS, MAX_STEPS_PER_REQUEST
from bpdemo.health import Thresholds, judge
from bpdemo.train import torch_threads
from bpdemo.worked import load_worked_config
from demos.explore import THREADS

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "worked_321.toml"
TORCH_ACTIVATIONS = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "identity": lambda z: z}


@pytest.fixture(scope="module")
def client():
    with torch_threads(THREADS):
        yield TestClient(create_app(load_worked_config(CONFIG), str(CONFIG)))


@pytest.fixture
def session(client) -> dict[str, str]:
    return {SESSION_HEADER: client.post("/api/sessions").json()["session"]}


def post(client, session, path: str, body: dict | None = None) -> dict:
    answer = client.post(path, json=body or {}, headers=session)
    assert answer.status_code == 200, answer.text
    return answer.json()


def train(client, session, epochs: int, per_request: int = 5) -> dict:
    frame = {}
    for _ in range(epochs // per_request):
        frame = post(client, session, "/api/playground/train", {"epochs": per_request})
    return frame


def autograd_forward(parameters: dict, activations: list[str], x: torch.Tensor) -> list:
    """Each layer's (z, a) for inputs x (N, in), by torch from the exported weights."""
    layers, a = [], x
    names = sorted(
        {name.rsplit(".", 1)[0] for name in parameters}, key=lambda n: int(n.split(".")[1])
    )
    for name, activation in zip(names, activations, strict=True):
        weight = torch.tensor(parameters[f"{name}.weight"], dtype=torch.float64, requires_grad=True)
        bias = torch.tensor(parameters[f"{name}.bias"], dtype=torch.float64, requires_grad=True)
        z = a @ weight.T + bias
        a = TORCH_ACTIVATIONS[activation](z)
        layers.append((weight, bias, z, a))
    return layers


# -- problems of every kind learn their default data ------------------------------------------------
@pytest.mark.parametrize(
    ("dataset", "score", "goal"), [("blobs", "accuracy", 0.9), ("bumps", "R²", 0.9)]
)
def test_a_three_class_and_a_regression_problem_learn_their_default_data(
    client, session, dataset, score, goal
):
    setup = post(client, session, "/api/playground/setup", {"dataset": dataset})
    assert setup["score"] == score
    frame = train(client, session, 150)
    y = torch.tensor([p["label"] for p in setup["points"] if p["test"]])
    assert len(y) == setup["test_points"] == 60  # 0.3 of 200 held out
    for split in ("train", "test"):
        assert frame["scores"][split]["manual"] >= goal
        assert frame["scores"][split]["autograd"] == pytest.approx(
            frame["scores"][split]["manual"], abs=1e-9
        )
    assert frame["within_tolerance"]


def test_the_scores_are_the_share_right_and_r2_of_the_exported_networks_predictions(
    client, session
):
    for dataset in ("blobs", "plane"):
        setup = post(client, session, "/api/playground/setup", {"dataset": dataset})
        frame = train(client, session, 10)
        exported = post(client, session, "/api/playground/export")
        test = [k for k, p in enumerate(setup["points"]) if p["test"]]
        predictions = np.asarray(exported["predictions"])[test]
        truth = np.asarray([setup["points"][k]["label"] for k in test])
        if dataset == "blobs":  # three classes, a probability each
            assert setup["classes"] == 3 and predictions.shape == (60, 3)
            expected = float((predictions.argmax(axis=1) == truth).mean())
        else:
            residual = ((predictions[:, 0] - truth) ** 2).sum()
            expected = 1 - residual / ((truth - truth.mean()) ** 2).sum()
        assert frame["scores"]["test"]["manual"] == pytest.approx(expected, abs=1e-12)


# -- a point's backpropagation --------------------------------------------------------------------------
def test_a_clicked_points_step_is_autograds_on_the_current_weights(client, session):
    setup = post(client, session, "/api/playground/setup", {"dataset": "moons"})
    train(client, session, 5)
    exported = post(client, session, "/api/playground/export")
    index = 7
    view = post(client, session, "/api/playground/point", {"index": index})
    assert view["title"].startswith(f"point {index} ")
    x = torch.tensor([exported_inputs(setup, index)], dtype=torch.float64)
    layers = autograd_forward(exported["parameters"], exported["activations"], x)
    output = layers[-1][3]
    target = torch.tensor([[float(setup["points"][index]["label"])]], dtype=torch.float64)
    loss = torch.nn.functional.binary_cross_entropy(output, target)
    loss.backward()
    layers = [[t.detach() if k > 1 else t for k, t in enumerate(layer)] for layer in layers]
    forward, backward = view["phases"]["forward"], view["phases"]["backward"]
    for layer, (weight, _, z, a) in enumerate(layers):
        for j in range(z.shape[1]):
            item = forward[f"n{layer + 1}_{j}"]
            assert item["values"]["z"] == pytest.approx(float(z[0, j]), abs=1e-12)
            assert item["values"]["a"] == pytest.approx(float(a[0, j]), abs=1e-12)
            for i in range(weight.shape[1]):
                grad = backward[f"w{layer}_{j}_{i}"]["values"]["grad"]
                assert grad == pytest.approx(float(weight.grad[j, i]), abs=1e-12)
    assert view["phases"]["loss"]["loss"]["values"]["loss"] == pytest.approx(
        float(loss.detach()), abs=1e-12
    )
    lr = setup["settings"]["lr"]
    update = view["phases"]["update"]["w0_0_0"]["values"]
    assert update["after"] == pytest.approx(
        float(layers[0][0].detach()[0, 0] - lr * layers[0][0].grad[0, 0]), abs=1e-12
    )
    # the worked tab now steps this point: the same panel, the same endpoints
    step = post(client, session, "/api/worked/step", {"step": 1})
    assert step["title"] == view["title"]


def exported_inputs(setup: dict, index: int) -> list[float]:
    point = np.asarray([[setup["points"][index]["x"], setup["points"][index]["y"]]])
    return [float(FEATURES[f["name"]].compute(point)[0]) for f in setup["features"]]


def test_a_point_of_a_network_larger_than_the_worked_tab_draws_is_refused_in_one_line(
    client, session
):
    post(client, session, "/api/playground/setup", {"hidden": [16]})
    answer = client.post("/api/playground/point", json={"index": 0}, headers=session)
    assert answer.status_code == 422
    assert "the explorer draws up to" in answer.json()["error"]


# -- export -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        {"dataset": "spiral", "features": ["x1", "x2", "x1^2", "x2^2", "x1x2", "sin_x1", "sin_x2"]},
        {"dataset": "blobs", "classes": 4, "dropout": 0.2, "weight_decay": 0.001},
        {"dataset": "bumps", "activation": "relu"},
    ],
)
def test_the_exported_pytorch_script_prints_the_pages_predictions(client, session, body, tmp_path):
    post(client, session, "/api/playground/setup", body)
    train(client, session, 5)
    exported = post(client, session, "/api/playground/export")
    script = tmp_path / "network.py"
    script.write_text(exported["script"])
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    printed = np.asarray([[float(v) for v in line.split(",")] for line in run.stdout.split()])
    page = np.asarray(exported["predictions"])
    assert printed.shape == page.shape == (200, body.get("classes", 1))
    assert np.abs(printed - page).max() <= 1e-12


# -- gradient health ---------------------------------------------------------------------------------
def test_a_deep_sigmoid_network_is_judged_vanishing_by_the_health_rules(client, session):
    body = {"dataset": "xor", "hidden": [8, 8, 8, 8], "activation": "sigmoid"}
    setup = post(client, session, "/api/playground/setup", body)
    frame = train(client, session, 5)
    health = frame["health"]
    # the reference: each layer's ‖dL/dW‖ at the start, by autograd on the training points
    parameters = post(client, session, "/api/playground/setup", body)  # the same start again
    assert parameters["frame"]["health"]["norms_at_start"] == health["norms_at_start"]
    exported = post(client, session, "/api/playground/export")
    train_rows = [k for k, p in enumerate(setup["points"]) if not p["test"]]
    points = setup["points"]
    x = torch.tensor([[points[k]["x"], points[k]["y"]] for k in train_rows], dtype=torch.float64)
    y = torch.tensor([[float(points[k]["label"])] for k in train_rows], dtype=torch.float64)
    layers = autograd_forward(exported["parameters"], exported["activations"], x)
    torch.nn.functional.binary_cross_entropy(layers[-1][3], y).backward()
    norms = [float(weight.grad.norm()) for weight, *_ in layers]
    assert health["norms_at_start"] == pytest.approx(norms, rel=1e-10)
    assert (health["verdict"], health["rule"]) == judge(norms, False, "sigmoid", Thresholds())
    assert health["verdict"] == "vanishing"
    assert len(health["layers"]) == 5 and len(health["layers"][0]) == len(health["steps"]) == 70


def test_the_layers_with_weights_have_one_name_each_with_dropout_between_them(client, session):
    """Dropout layers sit between the layers with weights in the model; the page counts only the
    layers it draws, as a clicked point's worked example names them."""
    setup = post(client, session, "/api/playground/setup", {"hidden": [8, 8], "dropout": 0.2})
    names = ["layers.0", "layers.1", "layers.2"]
    assert setup["network"]["layers"] == names
    frame = train(client, session, 5)
    assert [row["text"][0] for row in frame["grad_norms"]] == names
    neurons = setup["network"]["neurons"]
    assert [len(depth) for depth in neurons] == setup["network"]["sizes"]
    assert (neurons[0][1], neurons[2][5], neurons[3][0]) == (
        f"input {FEATURES['x2'].label}",
        "hidden layer 2, neuron 5",
        "output 0",
    )


# -- your own points ----------------------------------------------------------------------------------
def test_pasted_points_train_and_a_bad_line_is_named(client, session):
    rng = np.random.default_rng(1)
    points = rng.uniform(-1, 1, size=(60, 2))
    lines = ["x1,x2,label"] + [f"{a},{b},{int(a > b)}" for a, b in points]
    setup = post(
        client, session, "/api/playground/setup", {"dataset": "csv", "csv": "\n".join(lines)}
    )
    assert setup["kind"] == "two classes" and len(setup["points"]) == 60
    frame = train(client, session, 30)
    assert frame["scores"]["train"]["manual"] >= 0.9
    bad = "\n".join([*lines[:5], "0.1;0.2;1", *lines[5:]])
    answer = client.post(
        "/api/playground/setup", json={"dataset": "csv", "csv": bad}, headers=session
    )
    assert answer.status_code == 422
    assert answer.json() == {"error": "CSV line 6: '0.1;0.2;1' is not three numbers x1,x2,label"}
    too_long = client.post(
        "/api/playground/setup",
        json={"dataset": "csv", "csv": "0,0,1\n" * (MAX_CSV_CHARS // 6 + 1)},
        headers=session,
    )
    message = too_long.json()["error"]
    assert too_long.status_code == 422 and "\n" not in message and len(message) < 200
    assert f"at most {MAX_CSV_CHARS} characters" in message


def test_pasted_values_are_a_regression(client, session):
    lines = [f"{k / 10},{-k / 20},{k * 0.37 - 1}" for k in range(20)]
    setup = post(
        client, session, "/api/playground/setup", {"dataset": "csv", "csv": "\n".join(lines)}
    )
    assert setup["kind"] == "regression" and setup["network"]["loss"] == "mse"


def test_pasted_points_are_held_to_one_epoch_a_request_by_their_own_count(client, session):
    """The limit on steps an epoch counts the pasted rows, not the `points` of the made-up problems."""
    rng = np.random.default_rng(2)

    def pasted(rows: int) -> dict:
        points = rng.uniform(-1, 1, size=(rows, 2))
        csv = "\n".join(f"{a},{b},{int(a > b)}" for a, b in points)
        return {"dataset": "csv", "csv": csv, "test_share": 0, "batch_size": 1}

    # 50 rows in batches of 1 are 50 steps an epoch: within the limit, whatever `points` says
    setup = post(client, session, "/api/playground/setup", pasted(50))
    assert setup["train_points"] == 50 and setup["steps_per_epoch"] == 50
    answer = client.post("/api/playground/setup", json=pasted(150), headers=session)
    assert answer.status_code == 422
    assert answer.json()["error"] == (
        "batch_size: with 150 training points, batches of 1 make 150 steps an epoch, and one "
        f"request runs at most {MAX_STEPS_PER_REQUEST}: use batches of at least 2"
    )


# -- the image tab ------------------------------------------------------------------------------------
def test_the_image_tab_saliency_is_the_gradient_of_the_loss_by_finite_differences(client, session):
    setup = post(client, session, "/api/images/setup")
    assert setup["accuracy"]["manual"] >= 0.9 and len(setup["first_layer"]) == 32
    pixels = setup["test_images"][0]["pixels"]
    label = 3
    answer = post(client, session, "/api/images/classify", {"pixels": pixels, "label": label})
    assert sum(answer["probabilities"]["manual"]) == pytest.approx(1.0, abs=1e-12)
    manual, autograd = (np.asarray(answer["saliency"][m]) for m in ("manual", "autograd"))
    assert np.abs(manual - autograd).max() == pytest.approx(answer["saliency"]["max_abs_diff"])
    assert np.abs(manual - autograd).max() <= 1e-10 * np.abs(manual).max()

    def loss(values: list[float]) -> float:
        p = post(client, session, "/api/images/classify", {"pixels": values, "label": label})
        return -math.log(p["probabilities"]["autograd"][label])

    h = 1e-4
    inked = [k for k in range(64) if 1 <= pixels[k] <= 15]  # room for a step either way
    assert len(inked) >= 4
    for k in inked[:4]:
        up, down = list(pixels), list(pixels)
        up[k], down[k] = pixels[k] + h, pixels[k] - h
        assert (loss(up) - loss(down)) / (2 * h) == pytest.approx(manual[k], rel=1e-5, abs=1e-8)


def test_a_neuron_with_one_value_over_the_plane_is_drawn_all_in_the_middle_shade():
    from bpdemo.explore.playground import Playground
    from bpdemo.explore.schemas import PlaygroundSettings

    playground = Playground(PlaygroundSettings())
    first = playground.pair.manual.layers[playground.linear[0]]
    first.weight.zero_()  # every neuron of the first layer gives its bias, wherever the point
    pictures = playground.neuron_pictures()
    assert {shade for picture in pictures[1] for shade in picture} == {128}
    assert len({shade for picture in pictures[0] for shade in picture}) > 2  # x1 and x2
