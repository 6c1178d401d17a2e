"""The explorer's JSON endpoints without a browser: numbers, validation, limits, sessions, load.

Every refusal is a 4xx answer of one line, `{"error": ...}`, never a traceback; two pages never see
each other's state; a burst of requests is answered at once (done or 429 busy), never queued without
end; and the command line starts, refuses a bad config, and stops on Ctrl-C with one line.
"""

import json
import math
import signal
import socket
import subprocess
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import torch

with warnings.catch_warnings():  # newer Starlette prefers the httpx2 package; httpx works the same
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient

from bpdemo.agreement import TOLERANCES
from bpdemo.explore import SESSION_HEADER, create_app, serving
from bpdemo.explore.schemas import MAX_BODY_BYTES, MAX_STEP, MAX_STEPS_PER_REQUEST
from bpdemo.infra.cli import run_main
from bpdemo.train import torch_threads
from bpdemo.worked import WorkedExample, load_worked_config, run_worked_example
from demos.explore import THREADS, main

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "worked_321.toml"


@pytest.fixture(scope="module")
def app():
    with torch_threads(
        THREADS
    ):  # as `python -m demos.explore` serves: the threads it starts use it
        yield create_app(load_worked_config(CONFIG), str(CONFIG), max_sessions=4)


@pytest.fixture
def client(app):
    return TestClient(app)


def open_session(client) -> dict[str, str]:
    answer = client.post("/api/sessions")
    assert answer.status_code == 200
    return {SESSION_HEADER: answer.json()["session"]}


def refused(answer, status: int) -> str:
    """The one-line message of a refusal with `status`."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"}
    assert "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


# -- the numbers --------------------------------------------------------------------------------
def test_a_step_shows_the_trace_of_the_worked_example_and_autograds_own_numbers(client):
    session = open_session(client)
    view = client.post("/api/worked/step", json={"step": 1}, headers=session).json()
    result = run_worked_example(WorkedExample.from_config(load_worked_config(CONFIG), str(CONFIG)))
    trace = result.trace()
    assert view["trace"] == trace["steps"][0]
    assert [
        {k: v for k, v in c.items() if k not in ("target", "text")} for c in view["claims"]
    ] == (trace["claims"])
    # every number has autograd's beside it, within the tolerance of float64
    for phase in view["phases"].values():
        for item in phase.values():
            for row in item["compare"]:
                scale = max(1.0, abs(row["hand_written"]))
                assert row["difference"] <= TOLERANCES[torch.float64] * scale
    assert view["phases"]["backward"]["w0_0_0"]["paths"]["shown"][0]["product"] == pytest.approx(
        trace["steps"][0]["grads"]["layers.0.weight"][0][0], rel=1e-12
    )


def test_a_claim_points_at_the_element_and_phase_that_show_its_quantity(client):
    view = client.post("/api/worked/step", json={}, headers=open_session(client)).json()
    targets = {c["name"]: c["target"] for c in view["claims"]}
    assert targets["hidden.0"] == {"element": "n1_0", "phase": "forward"}
    assert targets["loss"] == {"element": "loss", "phase": "loss"}
    assert targets["grad.layers.0.weight[0,1]"] == {"element": "w0_0_1", "phase": "backward"}
    assert targets["param_after.layers.1.bias[0]"] == {"element": "b1_0", "phase": "update"}


def test_stepping_forward_and_back_gives_the_same_numbers(client):
    session = open_session(client)
    third = client.post("/api/worked/step", json={"step": 3}, headers=session).json()
    client.post("/api/worked/step", json={"step": 20}, headers=session)
    again = client.post("/api/worked/step", json={"step": 3}, headers=session).json()
    assert third["trace"] == again["trace"]
    assert third["trace"]["params_before"] != third["trace"]["params_after"]


def test_an_edit_recomputes_everything_downstream(client):
    session = open_session(client)
    edit = {"what": "target", "row": 0, "column": 0, "value": 0.64}
    view = client.post("/api/worked/edit", json=edit, headers=session).json()
    assert view["step"] == 1
    assert view["trace"]["loss"] == pytest.approx(0.0, abs=1e-28)  # the output was 0.64 already
    assert all(g == pytest.approx(0.0, abs=1e-14) for g in view["trace"]["grads"]["layers.1.bias"])
    view = client.post("/api/worked/reset", headers=session).json()
    assert view["trace"]["loss"] == pytest.approx(5.6448)


def test_a_diverging_learning_rate_is_said(client):
    session = open_session(client)
    client.post("/api/worked/edit", json={"what": "lr", "value": 50.0}, headers=session)
    view = client.post("/api/worked/step", json={"step": 60}, headers=session).json()
    assert view["diverged_at_step"] == view["step"] < 60
    assert "inf or NaN" in view["message"]
    assert view["trace"]["loss"] in ("inf", "NaN")  # JSON has no inf: said as text


def test_the_playground_trains_both_models_on_the_same_batches(client):
    session = open_session(client)
    body = {"dataset": "xor", "test_share": 0}  # every point trained on: 20 batches of 10
    setup = client.post("/api/playground/setup", json=body, headers=session).json()
    assert len(setup["points"]) == 200
    assert all(0 <= p["u"] <= 1 and 0 <= p["v"] <= 1 for p in setup["points"])
    frame = client.post("/api/playground/train", json={"epochs": 5}, headers=session).json()
    assert frame["step"] == 5 * 20
    assert frame["loss"]["manual"] < frame["loss"]["first"]
    assert frame["loss"]["manual"] == pytest.approx(
        frame["loss"]["autograd"], rel=TOLERANCES[torch.float64]
    )
    assert frame["max_grad_diff"] <= frame["tolerance"] == TOLERANCES[torch.float64]
    assert len(frame["grid"]["p255"]) == 100 * 100
    assert len(frame["grad_norms"]) == 3


def train_steps(client, session, steps: int) -> dict:
    """Train the playground for `steps` steps (20 a epoch here) in as few requests as allowed."""
    frame = {}
    while steps:
        epochs = min(steps // 20, MAX_STEPS_PER_REQUEST // 20)
        frame = client.post("/api/playground/train", json={"epochs": epochs}, headers=session)
        assert frame.status_code == 200, frame.text
        steps -= epochs * 20
    return frame.json()


# 5,000 steps of each, as the page trains them: tanh's runs first part at step 1271 (the two Adams
# round one update differently) and drift beyond 1e-10 from step 3948 (`python -m docs.drift_figure`
# draws it); relu's two runs stay bitwise identical throughout. The check holds at every step of both.
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_the_playground_checks_gradients_at_the_same_weights_however_far_the_runs_drift(
    client, activation
):
    session = open_session(client)
    body = {"dataset": "spiral", "activation": activation, "optimizer": "adam", "lr": 0.03}
    body["test_share"] = 0  # every point trained on: 20 batches of 10 an epoch
    client.post("/api/playground/setup", json=body, headers=session)
    frame = train_steps(client, session, 5000)
    assert frame["step"] == frame["steps_compared"] == 5000
    assert frame["within_tolerance"] and frame["outside_from_step"] is None
    assert frame["max_grad_diff"] <= frame["tolerance"] == TOLERANCES[torch.float64]
    assert frame["text"]["verdict"] == "within"
    drift, said = frame["drift"], frame["text"]["drift"]
    if activation == "relu":
        assert drift["parted_at_step"] is None and frame["text"]["why_drift"] == ""
        assert said == "bitwise identical at every step of 5000"
    else:  # reported with the step it began, and why, in words that judge nothing
        assert drift["parted_at_step"] is not None and drift["past_tolerance_at_step"] is not None
        assert f"(first apart at step {drift['parted_at_step']})" in said
        assert "drift apart" in frame["text"]["why_drift"]
        assert not any(word in said for word in ("OUTSIDE", "within", "disagree"))


def test_a_subtly_wrong_backward_fails_the_playgrounds_check_at_step_1(app, client):
    from tests.test_agreement import subtly_wrong_backward

    session = open_session(client)
    client.post("/api/playground/setup", json={"dataset": "spiral"}, headers=session)
    pair = app.state.store.sessions[session[SESSION_HEADER]].playground.pair
    layer = pair.manual.layers[1]  # the second tanh layer
    layer.backward = subtly_wrong_backward(layer)
    frame = client.post("/api/playground/train", json={"epochs": 1}, headers=session).json()
    assert not frame["within_tolerance"] and frame["outside_from_step"] == 1
    assert frame["text"]["verdict"] == "OUTSIDE" and frame["text"]["outside_from"] == "from step 1"


@pytest.mark.parametrize("dataset", ["moons", "circles", "spiral"])
def test_every_data_set_sets_up(client, dataset):
    body = {"dataset": dataset, "points": 50, "hidden": [4], "grid": 20, "dtype": "float32"}
    answer = client.post("/api/playground/setup", json=body, headers=open_session(client))
    assert answer.status_code == 200
    assert {p["label"] for p in answer.json()["points"]} == {0, 1}


def test_a_learning_rate_too_large_for_the_playground_is_said(client):
    session = open_session(client)
    body = {"optimizer": "sgd", "lr": 100.0, "activation": "identity", "hidden": [16, 16]}
    client.post("/api/playground/setup", json=body, headers=session)
    frame = client.post("/api/playground/train", json={"epochs": 5}, headers=session).json()
    assert frame["loss"]["manual"] > frame["loss"]["first"]
    assert "learning rate (now 100) is too large" in frame["message"]


def test_a_diverged_playground_says_so_and_refuses_to_go_on(app, client):
    session = open_session(client)
    client.post("/api/playground/setup", json={}, headers=session)
    pair = app.state.store.sessions[session[SESSION_HEADER]].playground.pair
    with torch.no_grad():  # weights gone to NaN, as after an overflow
        pair.manual.flat_parameters.fill_(float("nan"))
        for parameter in pair.autograd.parameters():
            parameter.fill_(float("nan"))
    frame = client.post("/api/playground/train", json={}, headers=session).json()
    assert frame["diverged_at_step"] == 1
    assert "diverged at step 1" in frame["message"]
    assert frame["loss"]["manual"] == "NaN"  # JSON has no NaN: said as text
    answer = client.post("/api/playground/train", json={}, headers=session)
    assert "smaller learning rate" in refused(answer, 409)


# -- validation and limits -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/api/worked/step", {"step": 0}, "step: Input should be greater than or equal to 1"),
        ("/api/worked/step", {"step": MAX_STEP + 1}, f"less than or equal to {MAX_STEP}"),
        ("/api/worked/step", {"step": "2"}, "step: Input should be a valid integer"),
        ("/api/worked/step", {"steps": 2}, "steps: unknown field"),
        ("/api/worked/edit", {"what": "weight", "value": 1e300}, "value: Input should be less"),
        (
            "/api/worked/edit",
            {"what": "weight", "layer": 1, "column": 2, "value": 1},
            "layers.1 input 2",
        ),
        ("/api/worked/edit", {"what": "mood", "value": 1}, "what: Input should be"),
        ("/api/worked/edit", {"what": "lr", "value": 0}, "learning rate"),
        (
            "/api/playground/setup",
            {"points": 5000},
            "points: Input should be less than or equal to 1000",
        ),
        ("/api/playground/setup", {"hidden": [8] * 5}, "hidden: List should have at most 4 items"),
        (
            "/api/playground/setup",
            {"hidden": [17]},
            "hidden[0]: Input should be less than or equal",
        ),
        (
            "/api/playground/setup",
            {"grid": 1000},
            "grid: Input should be less than or equal to 150",
        ),
        ("/api/playground/setup", {"activation": "swish"}, "activation: Input should be"),
        (
            "/api/playground/setup",
            {"lr": "fast"},
            "lr: Input should be a valid number (got 'fast')",
        ),
        (
            "/api/playground/train",
            {"epochs": 51},
            "epochs: Input should be less than or equal to 50",
        ),
    ],
)
def test_a_bad_request_is_refused_with_one_line(client, path, body, message):
    assert message in refused(client.post(path, json=body, headers=open_session(client)), 422)


def test_inf_and_nan_are_refused(client):
    session = {**open_session(client), "content-type": "application/json"}
    for number in ("NaN", "Infinity", "-Infinity"):
        body = f'{{"what": "weight", "value": {number}}}'
        answer = client.post("/api/worked/edit", content=body, headers=session)
        assert "value: Input should be a finite number" in refused(answer, 422)


def test_malformed_oversized_and_unknown_requests_are_refused(client):
    session = open_session(client)
    headers = {**session, "content-type": "application/json"}
    assert refused(client.post("/api/worked/step", content=b"{oops", headers=headers), 422) == (
        "the request body is not valid JSON"
    )
    huge = json.dumps({"step": 1, "pad": "x" * (MAX_BODY_BYTES + 1)})
    assert "larger than" in refused(
        client.post("/api/worked/step", content=huge, headers=headers), 413
    )
    assert refused(client.get("/api/nothing"), 404) == "Not Found"
    assert "reload" in refused(client.post("/api/worked/step", json={}), 422)
    answer = client.post("/api/worked/step", json={}, headers={SESSION_HEADER: "made-up"})
    assert "reload the page" in refused(answer, 404)
    answer = client.post("/api/playground/train", json={}, headers=session)
    assert refused(answer, 409) == "set up the playground first"
    body = {"points": 1000, "batch_size": 1000 // MAX_STEPS_PER_REQUEST}  # an epoch a request
    client.post("/api/playground/setup", json=body, headers=session)
    answer = client.post("/api/playground/train", json={"epochs": 3}, headers=session)
    assert f"at most {MAX_STEPS_PER_REQUEST}" in refused(answer, 422)


# -- sessions and load ---------------------------------------------------------------------------
def test_two_pages_do_not_disturb_each_other(client):
    first, second = open_session(client), open_session(client)
    client.post("/api/worked/edit", json={"what": "lr", "value": 0.01}, headers=first)
    client.post("/api/playground/setup", json={"points": 40}, headers=first)
    assert client.post("/api/worked/step", json={}, headers=second).json()["lr"] == 0.1
    assert client.post("/api/worked/step", json={}, headers=first).json()["lr"] == 0.01
    answer = client.post("/api/playground/train", json={}, headers=second)
    assert refused(answer, 409) == "set up the playground first"


def test_sessions_are_bounded_and_the_least_recently_used_goes_first(app, client):
    oldest = open_session(client)
    for _ in range(app.state.store.max_sessions):
        open_session(client)
    assert len(app.state.store) == app.state.store.max_sessions
    answer = client.post("/api/worked/step", json={}, headers=oldest)
    assert "session has ended" in refused(answer, 404)


def test_a_session_runs_one_request_at_a_time(app, client):
    session = open_session(client)
    held = app.state.store.sessions[session[SESSION_HEADER]]
    with held.lock:  # as if a request of this page were still running
        answer = client.post("/api/worked/step", json={}, headers=session)
        assert "busy" in refused(answer, 429)
    assert client.post("/api/worked/step", json={}, headers=session).status_code == 200


def test_a_burst_of_requests_is_answered_at_once_and_the_server_goes_on(app):
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        session = {SESSION_HEADER: http.post("/api/sessions").json()["session"]}
        http.post("/api/playground/setup", json={}, headers=session)
        playground = app.state.store.sessions[session[SESSION_HEADER]].playground
        trained, running, most_at_once = [], [], []

        def count_trainings(request, train=playground.train):
            running.append(1)
            most_at_once.append(len(running))
            try:
                return train(request)
            finally:
                running.pop()
                trained.append(1)

        playground.train = count_trainings

        def train(_):
            return http.post("/api/playground/train", json={}, headers=session).status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(train, range(200)))
        assert set(statuses) <= {200, 429} and statuses.count(200) >= 1
        # a busy answer did no work and none waited to do it later: one training at a time
        assert len(trained) == statuses.count(200) and max(most_at_once) == 1
        # as the page does it: each request after the last answer, to the last step, every one done
        for step in range(1, MAX_STEP + 1):
            answer = http.post("/api/worked/step", json={"step": step}, headers=session)
            assert answer.status_code == 200
        assert answer.json()["step"] == MAX_STEP


# -- the command line ----------------------------------------------------------------------------
def test_a_bad_config_is_refused_before_the_server_starts(tmp_path, capsys):
    assert run_main(main, ["--config", str(tmp_path / "missing.toml"), "--no-browser"]) == 2
    assert "not found" in capsys.readouterr().err
    big = tmp_path / "big.toml"
    rows = 17  # one more sample than the explorer shows
    big.write_text(
        "[network]\nsizes = [2, 1]\nactivations = ['identity']\n[init]\nweights = [[[0.0, 0.0]]]\n"
        f"[data]\ninputs = {[[1.0, 2.0]] * rows}\ntargets = {[[1.0]] * rows}\n"
    )
    assert run_main(main, ["--config", str(big), "--no-browser"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "the explorer draws up to" in error
    assert run_main(main, ["--port", "70000", "--no-browser"]) == 2
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert run_main(main, ["--port", port, "--no-browser"]) == 2
    assert "choose another port" in capsys.readouterr().err


def test_ctrl_c_stops_the_server_with_one_line():
    process = subprocess.Popen(
        [sys.executable, "-m", "demos.explore", "--no-browser"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    timer = threading.Timer(60, process.kill)  # never hang the test run
    timer.start()
    try:
        first = process.stdout.readline()
        url = first.split()[2]
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url, timeout=10).status_code == 200
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        timer.cancel()
        if process.poll() is None:  # never leave a server behind, whatever failed
            process.kill()
            process.wait()
    assert process.returncode == 130
    assert out.strip() == "explorer stopped"
    assert err == ""


def test_the_limits_are_sent_to_the_page(client):
    limits = client.post("/api/sessions").json()["limits"]
    assert limits["max_step"] == MAX_STEP and limits["max_points"] == 1000
    assert all(isinstance(v, int | float) and math.isfinite(v) for v in limits.values())
