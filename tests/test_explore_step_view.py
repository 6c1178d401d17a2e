"""The explorer's step view of a worked example, without a browser: autograd's numbers from the same
parameters, the marks on the edges and their legend, and claims that stay about the file's values."""

import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():  # newer Starlette prefers the httpx2 package; httpx works the same
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient

from bpdemo.equations import EDGE_MARKS
from bpdemo.explore import SESSION_HEADER, create_app
from bpdemo.worked import load_worked_config

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "worked_321.toml"


@pytest.fixture(scope="module")
def client():
    return TestClient(create_app(load_worked_config(CONFIG), str(CONFIG), max_sessions=4))


def open_session(client) -> dict[str, str]:
    return {SESSION_HEADER: client.post("/api/sessions").json()["session"]}


def test_after_an_edit_the_claims_keep_the_verdicts_of_the_files_values(client):
    session = open_session(client)
    before = client.post("/api/worked/step", json={}, headers=session).json()
    assert before["claims_note"] == "" and before["edited"] is False
    # W1[0,0] = 0.6 makes the output 0.6·0.9 + 0.3·0.9 + 0.1 = 0.91, near the source's 0.9
    edit = {"what": "weight", "layer": 1, "row": 0, "column": 0, "value": 0.6}
    after = client.post("/api/worked/edit", json=edit, headers=session).json()
    assert after["trace"]["outputs"][0][0] == pytest.approx(0.91, abs=1e-12)
    assert after["edited"] is True
    assert "about the example as its file states it" in after["claims_note"]
    assert after["claims"] == before["claims"]  # output.0 = 0.9 stays WRONG: its 0.64 is the file's
    output = next(c for c in after["claims"] if c["name"] == "output.0")
    assert output["agrees"] is False and output["true_value"] == pytest.approx(0.64, abs=1e-12)
    reset = client.post("/api/worked/reset", headers=session).json()
    assert reset["claims_note"] == "" and reset["claims"] == before["claims"]


def test_autograds_numbers_are_its_step_from_the_hand_written_parameters(client):
    session = open_session(client)
    view = client.post("/api/worked/step", json={"step": 3}, headers=session).json()
    update = view["phases"]["update"]["w1_0_0"]["compare"][0]
    before = view["trace"]["params_before"]["layers.1.weight"][0][0]
    grad = view["trace"]["grads"]["layers.1.weight"][0][0]
    assert update["autograd"] == pytest.approx(before - 0.1 * grad, rel=1e-15)
    # the weights autograd starts from are the hand-written ones: nothing to compare
    assert view["phases"]["forward"]["w1_0_0"]["compare"] == []
    assert "from the same parameters" in view["agreement"]["text"]


def test_every_weight_of_the_321_example_is_marked_as_rising_in_the_backward_and_update(client):
    view = client.post("/api/worked/step", json={}, headers=open_session(client)).json()
    weights = [element for element in view["phases"]["update"] if element.startswith("w")]
    assert len(weights) == 8
    for phase in ("backward", "update"):
        assert {view["phases"][phase][w]["mark"] for w in weights} == {"rises"}
    # forward: 0.5, 0.1 and 0.3 are positive, the weights from x[2] are 0
    forward = {w: view["phases"]["forward"][w]["mark"] for w in weights}
    assert forward == {w: ("zero" if w.endswith("_2") else "positive") for w in weights}
    assert view["legend"] == {
        phase: [{"mark": mark, "text": text} for mark, text in EDGE_MARKS[phase]]
        for phase in ("forward", "loss", "backward", "update")
    }
