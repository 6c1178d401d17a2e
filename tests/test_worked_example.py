"""Worked examples: the 3-2-1, house and dog image examples recomputed, claims audited, configs checked.

Every expected value is worked out by hand in the test, in plain Python floats (no torch), from the
formulas a learner would write on paper.
"""

import json
import math
import textwrap
from pathlib import Path

import pytest
import torch

from bpdemo.functional import ACTIVATIONS, LOSSES, loss_total
from bpdemo.infra.cli import run_main
from bpdemo.infra.config import load_config
from bpdemo.infra.errors import ConfigError
from bpdemo.worked import (
    WorkedConfig,
    WorkedExample,
    audit_table,
    claimed_number,
    evaluate_formula,
    rounding_tolerance,
    run_worked_example,
)
from demos.worked_example import main

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def run_config(path, overrides=()):
    example = WorkedExample.from_config(load_config(WorkedConfig, path, list(overrides)), str(path))
    return run_worked_example(example)


def close(a: float, b: float, rel: float = 1e-12) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-15)


# -- the 3-2-1 example ---------------------------------------------------------------------------------
def test_the_321_example_is_computed_as_by_hand():
    result = run_config(CONFIGS / "worked_321.toml")
    step = result.run.steps[0]
    x, y, lr = [1.0, 2.0, 3.0], 4.0, 0.1
    # forward: both hidden neurons 0.5·1 + 0.1·2 + 0·3 + 0.2; the output 0.3·h + 0.3·h + 0.1
    h = 0.5 * 1 + 0.1 * 2 + 0 * 3 + 0.2
    out = 0.3 * h + 0.3 * h + 0.1
    loss = 0.5 * (out - y) ** 2
    assert (h, out, loss) == pytest.approx((0.9, 0.64, 5.6448), abs=1e-12)
    assert step.activations[0][0].tolist() == pytest.approx([h, h], abs=1e-15)
    assert float(step.outputs[0, 0]) == pytest.approx(out, abs=1e-15)
    assert step.loss == pytest.approx(loss, abs=1e-14)
    # backward: delta at the output is out - y; each hidden delta is that times its weight 0.3
    d_out = out - y  # -3.36
    d_hidden = d_out * 0.3  # -1.008
    grads = {name: g.flatten().tolist() for name, g in step.grads.items()}
    assert grads["layers.1.weight"] == pytest.approx([d_out * h, d_out * h], abs=1e-14)
    assert grads["layers.1.bias"] == pytest.approx([d_out], abs=1e-14)
    assert grads["layers.0.weight"] == pytest.approx([d_hidden * xi for xi in x] * 2, abs=1e-14)
    assert grads["layers.0.bias"] == pytest.approx([d_hidden, d_hidden], abs=1e-14)
    assert grads["layers.1.weight"][0] == pytest.approx(-3.024, abs=1e-12)
    # update: p - 0.1·grad
    after = {name: p.flatten().tolist() for name, p in step.params_after.items()}
    w1 = [w - lr * d_hidden * xi for w, xi in zip([0.5, 0.1, 0.0], x, strict=True)]
    b1 = 0.2 - lr * d_hidden
    w2 = 0.3 - lr * d_out * h
    b2 = 0.1 - lr * d_out
    assert after["layers.0.weight"] == pytest.approx(w1 * 2, abs=1e-14)
    assert after["layers.0.bias"] == pytest.approx([b1, b1], abs=1e-14)
    assert after["layers.1.weight"] == pytest.approx([w2, w2], abs=1e-14)
    assert after["layers.1.bias"] == pytest.approx([b2], abs=1e-14)
    assert (w1[0], w1[1], w1[2], b1, w2, b2) == pytest.approx(
        (0.6008, 0.3016, 0.3024, 0.3008, 0.6024, 0.436), abs=1e-12
    )
    # the new prediction, after the update
    new_h = sum(w * xi for w, xi in zip(w1, x, strict=True)) + b1
    new_out = 2 * w2 * new_h + b2
    assert float(result.run.final.outputs[0, 0]) == pytest.approx(new_out, abs=1e-13)
    assert result.run.final.loss == pytest.approx(0.5 * (new_out - y) ** 2, abs=1e-13)
    assert new_out == pytest.approx(3.3419776, abs=1e-12)


# The verdict of every claim of the 3-2-1 example: (name, claimed, its formula's value, backprop's value,
# claim agrees with backprop, claim agrees with its own formula), all worked out by hand.
AUDIT_321 = [
    ("hidden.0", 1.3, 0.5 + 0.2 + 0.2, 0.9, False, False),
    ("hidden.1", 1.3, 0.5 + 0.4, 0.9, False, False),
    ("output.0", 0.9, 0.39 + 0.1, 0.64, False, False),
    ("loss", 6.31, 0.5 * 3.1**2, 5.6448, False, False),  # 4.805
    ("grad.layers.1.weight[0,0]", -2.87, -4.805 * 1.3, -3.36 * 0.9, False, False),
    ("grad.layers.1.bias[0]", -2.5, -4.805, -3.36, False, False),
    ("grad.layers.0.weight[0,0]", -0.87, -4.805 * 0.3, -1.008, False, False),
    ("grad.layers.0.weight[0,1]", -1.75, -4.805 * 0.6, -2.016, False, False),
    ("grad.layers.0.bias[0]", -0.87, -4.805 * 0.3, -1.008, False, False),
    ("param_after.layers.0.weight[0,0]", 0.57, 0.5 + 0.087, 0.6008, False, False),
    ("param_after.layers.0.weight[0,1]", 0.275, 0.1 + 0.175, 0.3016, False, True),
    ("param_after.layers.0.bias[0]", 0.27, 0.2 + 0.087, 0.3008, False, False),
    ("param_after.layers.1.weight[0,0]", 0.387, 0.3 + 0.287, 0.6024, False, False),
    ("param_after.layers.1.bias[0]", 0.35, 0.1 + 0.25, 0.436, False, True),
]


def test_every_claim_of_the_321_example_gets_its_verdict():
    audit = run_config(CONFIGS / "worked_321.toml").audit
    assert len(audit) == len(AUDIT_321) == 14
    for result, (name, claimed, formula, true, agrees, formula_agrees) in zip(
        audit, AUDIT_321, strict=True
    ):
        assert result.claim.quantity.name == name
        assert result.claim.claimed == claimed
        assert result.claim.formula_value == pytest.approx(formula, abs=1e-12), name
        assert result.true_value == pytest.approx(true, abs=1e-12), name
        assert (result.agrees, result.formula_agrees) == (agrees, formula_agrees), name


def test_the_audit_table_states_its_rule_and_shows_each_verdict():
    table = audit_table(run_config(CONFIGS / "worked_321.toml").audit)
    assert "half a unit in the last decimal place" in table
    lines = table.splitlines()
    loss_at = next(i for i, line in enumerate(lines) if line.startswith("loss "))
    assert lines[loss_at].split() == ["loss", "6.31", "0.005", "4.805", "5.6448", "WRONG", "WRONG"]
    assert lines[loss_at + 1].strip() == "source's formula: 1/2 * (4 – 0.9)^2"
    rows = [line for line in lines if line.split()[-1] in ("agrees", "WRONG")]
    assert len(rows) == 14
    assert sum(row.endswith("agrees") for row in rows) == 2  # only 0.275 and 0.35 follow
    assert sum(" WRONG " in row for row in rows) == 14  # no claim agrees with backprop
    assert max(len(line) for line in lines) <= 100  # fits a terminal


# -- the house example -----------------------------------------------------------------------------
def test_the_house_predicts_400000_and_its_step_explodes_on_raw_inputs_only():
    result = run_config(CONFIGS / "worked_house.toml")
    raw, standardised = result.run, result.standardised
    lr, x, y = 1e-10, [3.0, 2000.0], 450000.0
    w1, w2, b2 = [[0.5, 0.001], [0.25, 0.002]], [40000.0, 40000.0], 70000.0
    h = [max(0.0, w[0] * x[0] + w[1] * x[1]) for w in w1]  # relu: 3.5, 4.75
    assert float(raw.steps[0].outputs[0, 0]) == 400000.0  # exactly the document's prediction
    assert [r.true_value for r in result.audit] == [400000.0, 50000.0]
    assert all(r.agrees for r in result.audit)
    # backward: the output delta is -50,000; each hidden delta -50,000 · 40,000 (relu' = 1)
    d_out = 400000.0 - y
    d_hidden = [d_out * w for w in w2]
    grad_w1 = [[d * xi for xi in x] for d in d_hidden]
    assert raw.steps[0].grads["layers.0.weight"].tolist() == grad_w1
    assert grad_w1[0][1] == -4e12  # the sqft weights: 2000 times the hidden delta
    # the update and the new prediction, by hand
    new_w1 = [
        [w - lr * g for w, g in zip(ws, gs, strict=True)]
        for ws, gs in zip(w1, grad_w1, strict=True)
    ]
    new_b1 = [0.0 - lr * d for d in d_hidden]
    new_w2 = [w - lr * d_out * hj for w, hj in zip(w2, h, strict=True)]
    new_b2 = b2 - lr * d_out
    new_h = [
        max(0.0, ws[0] * x[0] + ws[1] * x[1] + b) for ws, b in zip(new_w1, new_b1, strict=True)
    ]
    new_price = sum(w * hj for w, hj in zip(new_w2, new_h, strict=True)) + new_b2
    assert close(float(raw.final.outputs[0, 0]), new_price)
    assert new_price > 6e10  # about $64 billion: the step exploded

    # Standardised inputs: the same function, so the same first prediction ...
    mean, std = [2.85, 1500.0], [0.83, 505.0]
    s = [(xi - m) / sd for xi, m, sd in zip(x, mean, std, strict=True)]
    assert standardised.example.inputs[0].tolist() == pytest.approx(s, rel=1e-15)
    assert float(standardised.steps[0].outputs[0, 0]) == pytest.approx(400000.0, rel=1e-14)
    # ... but gradients of size about 2e9 · s, and an ordinary step
    sw1 = [[w[i] * std[i] for i in range(2)] for w in w1]
    sb1 = [sum(w[i] * mean[i] for i in range(2)) for w in w1]
    new_sw1 = [
        [w - lr * d * si for w, si in zip(ws, s, strict=True)]
        for ws, d in zip(sw1, d_hidden, strict=True)
    ]
    new_sb1 = [b - lr * d for b, d in zip(sb1, d_hidden, strict=True)]
    new_sh = [
        max(0.0, ws[0] * s[0] + ws[1] * s[1] + b) for ws, b in zip(new_sw1, new_sb1, strict=True)
    ]
    new_standardised = sum(w * hj for w, hj in zip(new_w2, new_sh, strict=True)) + new_b2
    assert close(float(standardised.final.outputs[0, 0]), new_standardised, rel=1e-11)
    assert 420000 < new_standardised < 450000  # most of the way to the actual price, no overshoot
    assert "raw inputs" in result.text() and "standardised inputs" in result.text()


# -- the dog image example -------------------------------------------------------------------------
def test_the_image_gives_cat_07_and_one_step_raises_dog():
    result = run_config(CONFIGS / "worked_image.toml")
    step = result.run.steps[0]
    assert step.probabilities[0].tolist() == pytest.approx([0.2, 0.7, 0.1], abs=1e-15)
    assert step.loss == pytest.approx(math.log(5), abs=1e-14)  # -ln 0.2
    # the gradient at the logits is p - onehot(dog)
    assert step.deltas[1][0].tolist() == pytest.approx([0.2 - 1, 0.7, 0.1], abs=1e-15)
    assert result.audit[0].agrees and result.audit[0].true_value == pytest.approx(0.7, abs=1e-15)

    # one update with lr 0.2, then the new p(dog), all by hand
    lr, x = 0.2, [1.0, 0.25, 0.75, 0.5]
    w1 = [[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0], [0.5, 0.5, 0.5, 0.5]]
    w2 = [[1.0, 0.0, 0.5], [0.0, 1.0, 1.0], [-1.0, 0.5, 0.0]]
    b2 = [math.log(2) - 1.375, math.log(7) - 1.5, 0.625]
    h = [0.75, 0.25, 1.25]
    g_logits = [-0.8, 0.7, 0.1]
    d_hidden = [sum(g_logits[k] * w2[k][j] for k in range(3)) for j in range(3)]  # relu' = 1
    assert d_hidden == pytest.approx([-0.9, 0.75, 0.3], abs=1e-15)
    new_w1 = [[w1[j][i] - lr * d_hidden[j] * x[i] for i in range(4)] for j in range(3)]
    new_b1 = [-lr * d for d in d_hidden]
    new_w2 = [[w2[k][j] - lr * g_logits[k] * h[j] for j in range(3)] for k in range(3)]
    new_b2 = [b2[k] - lr * g_logits[k] for k in range(3)]
    new_h = [max(0.0, sum(new_w1[j][i] * x[i] for i in range(4)) + new_b1[j]) for j in range(3)]
    logits = [sum(new_w2[k][j] * new_h[j] for j in range(3)) + new_b2[k] for k in range(3)]
    p_dog = math.exp(logits[0]) / sum(math.exp(z) for z in logits)
    assert float(result.run.final.probabilities[0, 0]) == pytest.approx(p_dog, abs=1e-14)
    assert p_dog > 0.5 and int(result.run.final.probabilities[0].argmax()) == 0  # dog now leads


# -- both models agree, every step ---------------------------------------------------------------
@pytest.mark.parametrize("name", ["worked_321", "worked_house", "worked_image"])
def test_hand_written_and_autograd_agree_within_1e_12_at_every_step(name):
    result = run_config(CONFIGS / f"{name}.toml", ["train.steps=3"])
    for run in result.runs():
        assert run.steps_run == 3 and [s.step for s in run.steps] == [1, 2, 3]
        for step in run.steps:
            assert step.max_manual_autograd_diff <= 1e-12, (name, step.step)
        assert run.final_diff <= 1e-12


# -- any textbook example: sigmoid layers, half squared error, biases held fixed --------------------
TEXTBOOK = """
title = "A 2-2-2 sigmoid network, one step, biases held fixed"
[network]
sizes = [2, 2, 2]
activations = ["sigmoid", "sigmoid"]
loss = "half_sse"
[init]
weights = [[[0.15, 0.20], [0.25, 0.30]], [[0.40, 0.45], [0.50, 0.55]]]
biases = [[0.35, 0.35], [0.60, 0.60]]
[train]
lr = 0.5
train_biases = false
[data]
inputs = [[0.05, 0.10]]
targets = [[0.01, 0.99]]
"""
# The example's published numbers (Mazur, "A Step by Step Backpropagation Example", 2015).
PUBLISHED = [
    ("hidden.0", "0.593269992"),
    ("output.0", "0.75136507"),
    ("output.1", "0.772928465"),
    ("loss", "0.298371109"),
    ("param_after.layers.1.weight[0,0]", "0.35891648"),
    ("param_after.layers.1.weight[1,1]", "0.561370121"),
    ("param_after.layers.0.weight[0,0]", "0.149780716"),
    ("param_after.layers.0.weight[1,1]", "0.29950229"),
    ("param_after.layers.0.bias[0]", "0.35"),
]


def test_a_textbook_sigmoid_example_is_reproduced(tmp_path):
    claims = "".join(f'[[claims]]\nname = "{n}"\nvalue = "{v}"\n' for n, v in PUBLISHED)
    path = tmp_path / "textbook.toml"
    path.write_text(TEXTBOOK + claims)
    result = run_config(path)

    def sigmoid(z: float) -> float:
        return 1 / (1 + math.exp(-z))

    x, t, lr = [0.05, 0.10], [0.01, 0.99], 0.5
    w1, w2 = [[0.15, 0.20], [0.25, 0.30]], [[0.40, 0.45], [0.50, 0.55]]
    h = [sigmoid(w[0] * x[0] + w[1] * x[1] + 0.35) for w in w1]
    o = [sigmoid(w[0] * h[0] + w[1] * h[1] + 0.60) for w in w2]
    loss = sum(0.5 * (ok - tk) ** 2 for ok, tk in zip(o, t, strict=True))
    d_out = [(ok - tk) * ok * (1 - ok) for ok, tk in zip(o, t, strict=True)]  # BP1
    d_hid = [sum(d_out[k] * w2[k][j] for k in range(2)) * h[j] * (1 - h[j]) for j in range(2)]
    step = result.run.steps[0]
    assert step.activations[0][0].tolist() == pytest.approx(h, abs=1e-15)
    assert step.outputs[0].tolist() == pytest.approx(o, abs=1e-15)
    assert step.loss == pytest.approx(loss, abs=1e-15)
    after_w2 = [[w2[k][j] - lr * d_out[k] * h[j] for j in range(2)] for k in range(2)]
    after_w1 = [[w1[j][i] - lr * d_hid[j] * x[i] for i in range(2)] for j in range(2)]
    assert step.params_after["layers.1.weight"].flatten().tolist() == pytest.approx(
        [w for row in after_w2 for w in row], abs=1e-15
    )
    assert step.params_after["layers.0.weight"].flatten().tolist() == pytest.approx(
        [w for row in after_w1 for w in row], abs=1e-15
    )
    assert step.params_after["layers.0.bias"].tolist() == [0.35, 0.35]  # held fixed
    assert step.params_after["layers.1.bias"].tolist() == [0.6, 0.6]
    assert step.max_manual_autograd_diff <= 1e-12
    assert [r.agrees for r in result.audit] == [True] * len(PUBLISHED)


def test_dl_da_is_the_loss_gradient_at_the_output_and_delta_times_w_below(tmp_path):
    path = tmp_path / "textbook.toml"
    path.write_text(TEXTBOOK)
    step = run_config(path).run.steps[0]
    o, t = step.outputs[0].tolist(), [0.01, 0.99]
    assert step.grad_activations[1][0].tolist() == pytest.approx(
        [o[0] - t[0], o[1] - t[1]], abs=1e-15
    )  # half_sse: dL/da = ŷ - y
    w2, d_out = [[0.40, 0.45], [0.50, 0.55]], step.deltas[1][0].tolist()
    below = [sum(d_out[k] * w2[k][j] for k in range(2)) for j in range(2)]  # BP2's left factor
    assert step.grad_activations[0][0].tolist() == pytest.approx(below, abs=1e-15)


ONE_LAYER = """
[network]
sizes = [2, 2]
activations = ["{activation}"]
loss = "{loss}"
[init]
weights = [[[0.5, -0.25], [0.75, 0.5]]]
[data]
inputs = [[1.0, 2.0]]
targets = {targets}
"""


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_is_written_out_from_its_registry_texts(tmp_path, activation):
    path = tmp_path / "one.toml"
    path.write_text(ONE_LAYER.format(activation=activation, loss="half_sse", targets="[[1, 0]]"))
    text = run_config(path).text()
    assert "z0[1] = Σ_i W0[1,i]·x[i] + b0[1] = 0.75·1 + 0.5·2 + 0 = 1.75;  a = " in text
    assert ("[f'(z) = " in text) == (activation != "identity")  # a constant 1 says nothing more


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_every_loss_is_written_out_from_its_registry_texts(tmp_path, loss):
    targets = "[1]" if LOSSES[loss].classification else "[[1, 0]]"
    path = tmp_path / "one.toml"
    path.write_text(ONE_LAYER.format(activation="sigmoid", loss=loss, targets=targets))
    step_text = run_config(path).text()
    loss_line = next(line for line in step_text.splitlines() if line.startswith("  L = "))
    gradient_line = next(line for line in step_text.splitlines() if "∂L/∂a0[1] = " in line)
    assert ")/1 " not in loss_line and len(loss_line.split(" = ")) == 3, loss_line
    assert len(gradient_line.split(" = ")) >= 3, gradient_line


@pytest.mark.parametrize(
    ("template", "terms", "rows", "text"),
    [
        ("−({terms})/{rows}", ["ln(0.2)"], 1, "−ln(0.2)"),
        ("−({terms})/{rows}", ["ln(0.2)", "ln(0.5)"], 2, "−(ln(0.2) + ln(0.5))/2"),
        ("½·({terms})", ["(0.64 − 4)²"], 1, "½·((0.64 − 4)²)"),
    ],
)
def test_a_loss_is_written_without_dividing_by_one(template, terms, rows, text):
    assert loss_total(template, terms, {"rows": rows, "numel": rows}) == text


# -- claims: the formula evaluator and the rounding ----------------------------------------------
@pytest.mark.parametrize(
    ("formula", "value"),
    [
        ("(1 * 0.5) + (2 * 0.1) + 0.2", 0.9),
        ("1/2 * (4 – 0.9)^2", 4.805),  # en dash and caret, as the document writes them
        ("1/2 * (4 − 0.9)**2", 4.805),  # unicode minus, Python power
        ("-2^2", -4.0),  # the power binds tighter than the sign, as on paper
        ("0.3 – 0.1 * (-2.87)", 0.587),
        ("2 × 3 · 4 ÷ 8", 3.0),
        ("--1 + +2", 3.0),
    ],
)
def test_a_formula_is_evaluated_as_arithmetic(formula, value):
    assert evaluate_formula(formula) == pytest.approx(value, abs=1e-12)


@pytest.mark.parametrize(
    "formula",
    ["__import__('os')", "abs(-1)", "x + 1", "1 +", "450,000 - 400,000", "1/0", "10^10^10"],
)
def test_anything_but_arithmetic_is_refused(formula):
    with pytest.raises(ValueError):
        evaluate_formula(formula)


@pytest.mark.parametrize(
    ("written", "tolerance"),
    [(0.27, 0.005), (6.31, 0.005), (-2.5, 0.05), (400000, 0.5), (1.5e-5, 5e-7), ("0.270", 5e-4),
     ("1.25e9", 5e6), ("–0.87", 0.005)],
)  # fmt: skip
def test_a_claim_is_judged_to_half_a_unit_of_its_last_written_decimal(written, tolerance):
    _, decimal = claimed_number(written)
    assert rounding_tolerance(decimal) == pytest.approx(tolerance, rel=1e-12)


# -- the command line ------------------------------------------------------------------------------
def test_the_demo_prints_the_walk_through_and_writes_the_trace(tmp_path, capsys):
    out = tmp_path / "run"
    status = main(["--config", str(CONFIGS / "worked_321.toml"), "--steps", "2", "--out", str(out)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "z0[0] = Σ_i W0[0,i]·x[i] + b0[0] = 0.5·1 + 0.1·2 + 0·3 + 0.2 = 0.9" in printed
    assert "L = ½·((0.64 − 4)²) = 5.6448" in printed
    assert "∂L/∂W1[0,0] = δ1[0]·a0[0] = (-3.36)·0.9 = -3.024   (BP4)" in printed
    assert "b1[0] ← 0.1 − 0.1·(-3.36) = 0.436" in printed
    assert "claims of the source, audited:" in printed and "claim vs" in printed
    trace = json.loads((out / "trace.json").read_text())
    assert [s["step"] for s in trace["steps"]] == [1, 2]
    first, second = trace["steps"]
    assert first["loss"] == pytest.approx(5.6448, abs=1e-12)  # before the first update
    assert first["hidden"][0][0] == pytest.approx([0.9, 0.9], abs=1e-15)
    assert first["outputs"][0] == pytest.approx([0.64], abs=1e-15)
    assert first["grads"]["layers.1.weight"] == [[-3.024, -3.024]]
    assert first["params_after"]["layers.1.bias"] == pytest.approx([0.436], abs=1e-15)
    assert second["loss"] == pytest.approx(0.5 * (3.3419776 - 4) ** 2, abs=1e-12)
    final_output = trace["final"]["outputs"][0][0]  # after the second update
    assert final_output != second["outputs"][0][0]
    assert trace["final"]["loss"] == pytest.approx(0.5 * (final_output - 4) ** 2, abs=1e-12)
    assert max(s["max_manual_autograd_diff"] for s in trace["steps"]) <= 1e-12
    assert len(trace["claims"]) == 14
    assert trace["claims"][3]["formula_value"] == pytest.approx(4.805, abs=1e-12)
    for name in ("config.toml", "metrics.json", "steps.csv", "network.png", "walkthrough.tex"):
        assert (out / name).stat().st_size > 0
    assert (out / "network.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_long_run_thins_its_trace_but_keeps_the_first_and_last_step(tmp_path):
    out = tmp_path / "run"
    argv = ["--config", str(CONFIGS / "worked_321.toml"), "--epochs", "50"]
    argv += ["--set", "train.lr=0.01", "--set", "train.max_trace_steps=7", "--out", str(out)]
    assert run_main(main, argv) == 0
    steps = [s["step"] for s in json.loads((out / "trace.json").read_text())["steps"]]
    assert steps[0] == 1 and steps[-1] == 50 and len(steps) <= 9
    assert steps == sorted(steps)


def test_a_diverging_run_writes_what_it_has_and_exits_1(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--config", str(CONFIGS / "worked_321.toml"), "--steps", "100", "--out", str(out)]
    assert run_main(main, [*argv, "--set", "train.lr=0.5"]) == 1  # overshoots, growing each step
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: the loss became inf or NaN at step")
    assert len(error.splitlines()) == 1
    trace = json.loads((out / "trace.json").read_text())
    assert trace["status"]["diverged_at_step"] == trace["steps"][-1]["step"] > 1
    assert trace["steps"][0]["step"] == 1


BAD_CONFIGS = [
    (
        "[init]\nweights = [[[0.5, 0.1], [0.5, 0.1]], [[0.3, 0.3]]]\n",
        "weights[0] has shape (2, 2), but layer 0 maps 3 inputs to 2 outputs",
    ),
    ("[network]\nsizes = [3, 2, 2, 1]\n", "activations: 2 given for 3 layers"),
    (
        "[network]\nsizes = [3, 4, 1]\n",
        "weights[0] has shape (2, 3), but layer 0 maps 3 inputs to 4 outputs",
    ),
    ('[[claims]]\nname = "hiden.0"\nvalue = 1.3\n', "(hiden.0): unknown quantity; valid names"),
    (
        '[[claims]]\nname = "grad.layers.1.weight[0,2]"\nvalue = 1\n',
        "index [0,2] is outside layers.1.weight, of shape (1, 2)",
    ),
    (
        '[[claims]]\nname = "loss"\nvalue = 6.31\nformula = "1/2 (4 - 0.9)^2"\n',
        "formula '1/2 (4 - 0.9)^2' multiplies without a sign in '2(4 - 0.9)'",
    ),
    ('[[claims]]\nname = "loss"\nvalue = 6.31\nformula = "1/2 * (4 - 0.9"\n', "does not parse"),
    ("[data]\ntargets = [[4, 5]]\n", "targets[0] has 2 values, but the network has 1 outputs"),
]


@pytest.mark.parametrize(("patch", "message"), BAD_CONFIGS)
def test_a_bad_config_is_one_error_line_and_exit_2_and_writes_nothing(
    tmp_path, capsys, patch, message
):
    path = tmp_path / "bad.toml"
    path.write_text(_patched_321(patch))
    out = tmp_path / "run"
    assert run_main(main, ["--config", str(path), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and message in error, error
    assert str(path) in error
    assert not out.exists()


def _patched_321(patch: str) -> str:
    """The 3-2-1 config with some keys replaced (claims appended): a small config to break."""
    base = {
        "network": 'sizes = [3, 2, 1]\nactivations = ["identity", "identity"]\nloss = "half_sse"\n',
        "init": "weights = [[[0.5, 0.1, 0.0], [0.5, 0.1, 0.0]], [[0.3, 0.3]]]\n"
        "biases = [[0.2, 0.2], [0.1]]\n",
        "data": "inputs = [[1, 2, 3]]\ntargets = [[4]]\n",
    }
    claims = ""
    for block in textwrap.dedent(patch).split("\n["):
        block = block if block.startswith("[") else "[" + block
        header, _, body = block.partition("\n")
        if header == "[[claims]]":
            claims += block + "\n"
            continue
        section = header.strip("[]")
        keys = {line.split("=")[0].strip() for line in body.splitlines() if "=" in line}
        kept = [
            line for line in base[section].splitlines() if line.split("=")[0].strip() not in keys
        ]
        base[section] = "\n".join(kept) + "\n" + body
    return "".join(f"[{name}]\n{text}\n" for name, text in base.items()) + claims


def test_the_flags_steps_and_epochs_must_agree(tmp_path, capsys):
    argv = ["--config", str(CONFIGS / "worked_321.toml"), "--steps", "2", "--epochs", "3"]
    assert run_main(main, [*argv, "--out", str(tmp_path / "run")]) == 2
    assert "--steps 2 and --epochs 3 disagree" in capsys.readouterr().err


def test_float32_runs_and_agrees_to_its_own_rounding():
    result = run_config(CONFIGS / "worked_image.toml", ['network.dtype="float32"'])
    assert result.run.steps[0].outputs.dtype == torch.float32
    assert result.run.max_manual_autograd_diff <= 1e-5


def test_a_claim_beyond_the_run_is_not_reached_rather_than_judged(tmp_path):
    path = tmp_path / "late.toml"
    path.write_text(_patched_321('[[claims]]\nname = "loss"\nstep = 3\nvalue = 0.1\n'))
    result = run_config(path)
    assert result.audit[0].true_value is None and result.audit[0].agrees is None
    assert "not reached" in audit_table(result.audit)


def test_a_config_mistake_is_a_config_error_naming_the_file():
    config = load_config(WorkedConfig, CONFIGS / "worked_321.toml", ["picture.sample=1"])
    with pytest.raises(ConfigError, match=r"worked_321.toml: \[picture\] sample 1 does not exist"):
        WorkedExample.from_config(config, str(CONFIGS / "worked_321.toml"))


@pytest.mark.parametrize("name", ["worked_321", "worked_image"])
def test_two_runs_write_the_same_trace_and_metrics(tmp_path, capsys, name):
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        assert main(["--config", str(CONFIGS / f"{name}.toml"), "--out", str(out), "--quiet"]) == 0
    for file in ("trace.json", "metrics.json", "steps.csv"):
        assert (first / file).read_text() == (second / file).read_text(), file


def test_the_common_flags_reach_the_worked_examples_sections(tmp_path):
    out = tmp_path / "run"
    argv = ["--config", str(CONFIGS / "worked_321.toml"), "--epochs", "2", "--threads", "1"]
    assert main([*argv, "--dtype", "float32", "--out", str(out), "--quiet"]) == 0
    resolved = load_config(WorkedConfig, out / "config.toml")
    assert (resolved.train.steps, resolved.train.threads) == (2, 1)
    assert resolved.network.dtype == "float32"
