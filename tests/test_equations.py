"""One set of equations: the printed walk-through and the explorer write every number of a step alike.

Both render `bpdemo.equations`; these tests read what each actually shows (the printed lines, the
explorer's JSON items) and compare them with each other and with numbers worked out here.
"""

import dataclasses
from pathlib import Path

import pytest

from bpdemo.equations import (
    EDGE_MARKS,
    FALLS,
    NEGATIVE,
    POSITIVE,
    RISES,
    ZERO,
    edge_mark,
    update_rule,
    update_rule_name,
)
from bpdemo.explore.chain import StepView
from bpdemo.functional import ACTIVATIONS, LOSSES
from bpdemo.optim import OptimizerSpec
from bpdemo.worked import Walkthrough, run

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
WORKED = sorted(path.name for path in CONFIGS.glob("worked_*.toml"))
# Lines of the explorer that say where a number comes from rather than make it
EXPLORER_ONLY = ("for sample ", "target y[", "x[", "the loss is computed")


def explorer_lines(values, run_, sample: int) -> set[str]:
    """Every line the explorer shows for `sample` at this step, over every element and phase."""
    phases = StepView(run_, values, sample).phases()
    return {
        line
        for items in phases.values()
        for item in items.values()
        for line in item["lines"]
        if not line.startswith(EXPLORER_ONLY) and "before the update of step" not in line
    }


def printed_lines(walkthrough: Walkthrough, values, samples: int) -> dict[int | None, set[str]]:
    """The walk-through's equation lines of one step, by the sample they name (None: any)."""
    by_sample: dict[int | None, set[str]] = {}
    lines = walkthrough.forward(values) + walkthrough.loss(values) + walkthrough.backward(values)
    lines += walkthrough.update(values)
    for raw in lines:
        line = raw.strip()
        heading = not raw.startswith("  ") and not line.startswith("loss (")
        if heading or line.startswith(("layers.", "(samples", "∂L/∂W = Σ")) or "input x =" in line:
            continue
        sample = next((n for n in range(samples) if line.startswith(f"sample {n}: ")), None)
        line = line.removeprefix(f"sample {sample}: ") if sample is not None else line
        by_sample.setdefault(sample, set()).add(line)
    return by_sample


@pytest.mark.parametrize("name", WORKED)
def test_the_walk_through_and_the_explorer_write_every_element_alike(name):
    result = run(CONFIGS / name)
    for run_ in result.runs():
        walkthrough = Walkthrough(run_)
        samples = walkthrough.samples
        for values in run_.steps:
            printed = printed_lines(walkthrough, values, samples)
            shown = set()
            for sample in range(samples):
                lines = explorer_lines(values, run_, sample)
                # every line the explorer shows for a sample is printed, for it or for all samples
                assert lines <= printed.get(None, set()) | printed.get(sample, set()), (
                    name,
                    values.step,
                    sorted(lines - printed.get(None, set()) - printed.get(sample, set())),
                )
                shown |= lines
            # and every printed equation of the step is shown by the explorer
            every_printed = set().union(*printed.values())
            assert every_printed <= shown, (name, values.step, sorted(every_printed - shown))


def test_the_321_example_is_written_in_one_notation_with_its_hand_worked_numbers():
    result = run(CONFIGS / "worked_321.toml")
    step = result.run.steps[0]
    view = StepView(result.run, step, 0).phases()
    # z0[0] = 0.5·1 + 0.1·2 + 0·3 + 0.2 = 0.9; the output's gradient 0.64 − 4; δ below it 0.3·δ1
    assert view["forward"]["n1_0"]["lines"] == [
        "z0[0] = Σ_i W0[0,i]·x[i] + b0[0] = 0.5·1 + 0.1·2 + 0·3 + 0.2 = 0.9;  a = z = 0.9"
    ]
    assert view["backward"]["n2_0"]["lines"] == [
        "∂L/∂a1[0] = ŷ − y = 0.64 − 4 = -3.36",
        "δ1[0] = ∂L/∂a1[0]·f'(z1[0]) = (-3.36)·1 = -3.36   (BP1)",
    ]
    assert view["backward"]["n1_1"]["lines"] == [
        "∂L/∂a0[1] = Σ_k δ1[k]·W1[k,1] = (-3.36)·0.3 = -1.008",
        "δ0[1] = ∂L/∂a0[1]·f'(z0[1]) = (-1.008)·1 = -1.008   (BP2)",
    ]
    assert view["backward"]["w0_1_2"]["lines"][0] == (
        "∂L/∂W0[1,2] = δ0[1]·x[2] = (-1.008)·3 = -3.024   (BP4)"
    )
    assert view["backward"]["b1_0"]["lines"][0] == "∂L/∂b1[0] = δ1[0] = -3.36   (BP3)"
    assert view["update"]["w1_0_0"]["lines"] == ["W1[0,0] ← 0.3 − 0.1·(-3.024) = 0.6024"]
    assert view["loss"]["loss"]["lines"][-1] == "L = ½·((0.64 − 4)²) = 5.6448"


def test_a_sum_over_samples_writes_each_samples_term_and_their_total():
    result = run(CONFIGS / "worked_xor.toml")
    step = result.run.steps[0]
    line = StepView(result.run, step, 2).phases()["backward"]["w1_0_1"]["lines"][0]
    deltas, hidden = step.deltas[1][:, 0].tolist(), step.activations[0][:, 1].tolist()
    assert line.startswith("∂L/∂W1[0,1] = Σ_samples δ1[0]·a0[1] = ")
    terms = line.split(" = ")[2].split(" + ")
    assert len(terms) == 4  # the four XOR samples
    factors = [(float(t.split("·")[0].strip("()")), float(t.split("·")[1])) for t in terms]
    assert factors == [
        (pytest.approx(d, rel=1e-5), pytest.approx(h, rel=1e-5))
        for d, h in zip(deltas, hidden, strict=True)
    ]
    total = float(line.split(" = ")[3].split()[0])
    assert total == pytest.approx(sum(d * h for d, h in zip(deltas, hidden, strict=True)), rel=1e-5)


def test_a_rule_without_texts_is_named_without_a_formula(monkeypatch):
    bare = dataclasses.replace(ACTIVATIONS["sigmoid"], value_text=None, derivative_text=None)
    monkeypatch.setitem(ACTIVATIONS, "sigmoid", bare)
    monkeypatch.setitem(
        LOSSES, "half_sse", dataclasses.replace(LOSSES["half_sse"], gradient_text=None)
    )
    config = {
        "network": {"sizes": [1, 1], "activations": ["sigmoid"]},
        "init": {"weights": [[[0.0]]]},
        "data": {"inputs": [[1.0]], "targets": [[1.0]]},
    }
    text = run(config).text()
    assert "a = sigmoid(0) = 0.5" in text  # σ(0) = 1/2, named, no formula beside it
    assert "∂L/∂a0[0] = -0.5" in text  # ŷ − y = 0.5 − 1, the number alone
    assert "[f'(z) =" not in text


@pytest.mark.parametrize(
    ("optimizer", "name"),
    [
        (OptimizerSpec(name="sgd", lr=0.1), "plain gradient descent"),
        (OptimizerSpec(name="sgd", lr=0.1, momentum=0.9), "sgd with momentum 0.9"),
        (
            OptimizerSpec(name="sgd", lr=0.1, momentum=0.9, nesterov=True),
            "sgd with Nesterov momentum 0.9",
        ),
        (OptimizerSpec(name="sgd", lr=0.1, weight_decay=0.01), "sgd, weight decay 0.01"),
        (OptimizerSpec(name="sgd", lr=0.1, max_grad_norm=1.0), "sgd, gradients clipped to norm 1"),
        (OptimizerSpec(name="adam", lr=0.1), "adam"),
    ],
)
def test_only_sgd_with_nothing_added_is_called_plain_gradient_descent(optimizer, name):
    assert update_rule_name(optimizer) == name
    assert ("p ← p − lr·∂L/∂p" in update_rule(optimizer)) == (name == "plain gradient descent")


def test_a_momentum_run_writes_each_update_as_the_optimizers_step():
    result = run(CONFIGS / "worked_321.toml", ["train.momentum=0.9", "train.steps=2"])
    text = result.text()
    assert "sgd with momentum 0.9, lr 0.1" in text
    assert "plain gradient descent" not in text and " − 0.1·(" not in text
    # step 2: the velocity holds step 1's gradient, so the change is not lr·∂L/∂p
    second = result.run.steps[1]
    before = float(second.params_before["layers.1.bias"][0])
    after = float(second.params_after["layers.1.bias"][0])
    grad = float(second.grads["layers.1.bias"][0])
    assert after != pytest.approx(before - 0.1 * grad)
    assert f"b1[0] ← {after:.6g} (sgd with momentum 0.9, from {before:.6g}" in text


@pytest.mark.parametrize(
    ("phase", "weight", "grad", "change", "mark"),
    [
        ("forward", 0.5, 1.0, 0.0, POSITIVE),
        ("loss", -0.5, 1.0, 0.0, NEGATIVE),
        ("forward", 0.0, 1.0, 0.0, ZERO),
        ("backward", -0.5, -2.0, 0.0, RISES),  # descent moves against the gradient: up
        ("step", 0.5, 2.0, 0.0, FALLS),
        ("update", -0.5, 2.0, 0.3, RISES),  # the update's own change, whatever the gradient
        ("update", 0.5, -2.0, -0.3, FALLS),
        ("update", 0.5, 0.0, 0.0, ZERO),
        ("backward", 0.5, float("nan"), 0.0, None),
    ],
)
def test_an_edge_is_marked_by_the_way_its_weight_moves(phase, weight, grad, change, mark):
    assert edge_mark(phase, weight, grad, change) == mark
    assert mark is None or mark in dict(EDGE_MARKS[phase])
