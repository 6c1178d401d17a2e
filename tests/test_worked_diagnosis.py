"""The audit says why a claim disagrees: each slip a source makes, tried on the true numbers, is named
when it reproduces the claimed value, and never for a claim that agrees."""

import json
import math
from pathlib import Path

from conftest import D3, D4, D5, LOSS, TEXTBOOK, Y3, Y5

from bpdemo.worked import run
from bpdemo.worked.diagnosis import SLIPS
from demos.worked_example import main

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

W35_AFTER = 0.3 - D5 * Y3
W13_AFTER = 0.1 - D3 * 0.35
# The slip of a source that updates the output layer first and backpropagates through the new w35.
D3_WITH_NEW_W35 = D5 * W35_AFTER * Y3 * (1 - Y3)


def audited(*claims: tuple[str, str]) -> list:
    blocks = "".join(f'[[claims]]\nname = "{n}"\nvalue = "{v}"\n' for n, v in claims)
    return run(TEXTBOOK + blocks).audit


def diagnosis_of(name: str, written: str) -> list[str]:
    (result,) = audited((name, written))
    assert result.agrees is False
    return result.diagnosis


def right(name: str, value: float, digits: int = 6) -> list[str]:
    (result,) = audited((name, f"{value:.{digits}g}"))
    assert result.agrees
    return result.diagnosis


def test_the_hidden_delta_computed_with_the_updated_weights_above():
    assert diagnosis_of("delta.layers.0[0]", f"{D3_WITH_NEW_W35:.6g}") == [SLIPS["updated_weights"]]
    # and what follows from it: the gradient of w13 and its update
    grad = D3_WITH_NEW_W35 * 0.35
    assert SLIPS["updated_weights"] in diagnosis_of("grad.layers.0.weight[0,0]", f"{grad:.6g}")
    after = f"{0.1 - grad:.6g}"
    assert SLIPS["updated_weights"] in diagnosis_of("param_after.layers.0.weight[0,0]", after)
    assert right("delta.layers.0[0]", D3) == []


def test_the_opposite_sign_convention():
    assert diagnosis_of("delta.layers.1[0]", f"{-D5:.4g}") == [SLIPS["opposite_sign"]]
    assert diagnosis_of("error.0", f"{Y5 - 0.5:.4g}") == [SLIPS["opposite_sign"]]
    assert right("delta.layers.1[0]", D5) == []


def test_a_number_without_a_sign_convention_is_said_to_have_the_opposite_sign_and_no_more():
    assert diagnosis_of("output.0", f"{-Y5:.4g}") == [SLIPS["negated"]]


def test_truncated_instead_of_rounded():
    truncated = math.floor(Y3 * 10_000) / 10_000  # 0.6802 for 0.680267
    assert f"{truncated:.4f}" == "0.6802" and f"{Y3:.4f}" == "0.6803"
    assert diagnosis_of("hidden.0", "0.6802") == [SLIPS["truncated"]]
    assert right("hidden.0", Y3, 4) == []


def test_a_factor_two_or_a_half():
    assert diagnosis_of("loss", f"{2 * LOSS:.4g}") == [SLIPS["twice"]]  # sse for half_sse
    assert diagnosis_of("grad.layers.1.weight[0,0]", f"{D5 * Y3 / 2:.4g}") == [SLIPS["half"]]
    assert right("loss", LOSS) == []


def test_a_mean_instead_of_a_sum_and_the_reverse():
    # z = 2·x without bias, three samples, targets 1: the errors are 1, 3 and 5.
    three = """
    [network]
    sizes = [1, 1]
    activations = ["identity"]
    loss = "{loss}"
    bias = false
    [init]
    weights = [[[2.0]]]
    [data]
    inputs = [[1], [2], [3]]
    targets = [[1], [1], [1]]
    [[claims]]
    name = "{name}"
    value = "{value}"
    """
    half_sse = 0.5 * (1 + 9 + 25)  # a sum over the samples: 17.5
    mse = (1 + 9 + 25) / 3  # a mean: 11.67
    grad = 1 * 1 + 3 * 2 + 5 * 3  # ∂(half_sse)/∂w = Σ (2x − 1)·x = 22
    cases = [
        ("half_sse", "loss", f"{half_sse / 3:.4g}", "mean"),
        ("half_sse", "grad.layers.0.weight[0,0]", f"{grad / 3:.4g}", "mean"),
        ("mse", "loss", f"{mse * 3:.4g}", "sum"),
    ]
    for loss, name, value, slip in cases:
        (result,) = run(three.format(loss=loss, name=name, value=value)).audit
        assert result.diagnosis == [SLIPS[slip]], (loss, name, value)
    # a slip is named only against the loss's own reduction: sse already sums, mse already averages
    sse = 1 + 9 + 25
    for loss, value in [("sse", sse * 3), ("mse", mse / 3)]:
        (result,) = run(three.format(loss=loss, name="loss", value=f"{value:.4g}")).audit
        assert result.agrees is False and result.diagnosis == [], (loss, result.diagnosis)
    (agreeing,) = run(three.format(loss="half_sse", name="loss", value="17.5")).audit
    assert agreeing.agrees and agreeing.diagnosis == []


def test_a_transposed_weight_index():
    grad_w14 = D4 * 0.35  # ∂E/∂W0[1,0]
    assert diagnosis_of("grad.layers.0.weight[0,1]", f"{grad_w14:.4g}") == [SLIPS["transposed"]]
    assert right("grad.layers.0.weight[0,1]", D3 * 0.9) == []


def test_the_update_with_the_wrong_sign():
    uphill = 0.3 + D5 * Y3
    assert diagnosis_of("param_after.layers.1.weight[0,0]", f"{uphill:.4g}") == [
        SLIPS["wrong_sign_update"]
    ]
    assert right("param_after.layers.1.weight[0,0]", W35_AFTER) == []


def test_one_digit_changed_dropped_or_swapped():
    assert f"{W13_AFTER:.7f}" == "0.0990709"
    name = "param_after.layers.0.weight[0,0]"
    assert diagnosis_of(name, "0.0990719") == [SLIPS["digit_changed"]]
    assert diagnosis_of(name, "0.0990079") == [SLIPS["digit_swapped"]]
    assert diagnosis_of(name, "0.099709") == [SLIPS["digit_dropped"]]
    assert right(name, W13_AFTER) == []
    # a last digit one off is a rounding matter, not a typing slip; a short value has no typos
    assert diagnosis_of(name, "0.0990708") == []
    assert diagnosis_of("hidden.0", "0.9") == []


def test_the_textbook_example_has_every_wrong_claim_diagnosed(tmp_path):
    out = tmp_path / "run"
    config = str(CONFIGS / "worked_textbook.toml")
    assert main(["--config", config, "--out", str(out), "--quiet"]) == 0
    trace = json.loads((out / "trace.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    claims = trace["claims"]
    wrong = [c for c in claims if c["agrees"] is False]
    assert len(wrong) >= 8 and all(len(c["diagnosis"]) == 1 for c in wrong)
    assert all(c["diagnosis"] == [] for c in claims if c["agrees"])
    found = {c["diagnosis"][0] for c in wrong}
    assert len(found) >= 8  # a different slip for most of them
    counts = metrics["claims"]
    assert counts["diagnosed"] == len(wrong) and counts["undiagnosed"] == 0


def test_the_printed_audit_names_the_slip_under_its_claim(capsys, tmp_path):
    argv = ["--config", str(CONFIGS / "worked_textbook.toml"), "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("param_after.w45"))
    assert lines[row + 1].strip() == f"why: {SLIPS['wrong_sign_update']}"
    agreeing = next(i for i, line in enumerate(lines) if line.startswith("output.y5"))
    assert "why:" not in lines[agreeing + 1] and "why:" not in lines[agreeing + 2]


def test_a_claim_far_from_a_huge_value_is_diagnosed_without_failing():
    # the 3-2-1 example with a learning rate of 1e35: its updated weights are near 1e34
    text = (
        (CONFIGS / "worked_321.toml").read_text(encoding="utf-8").replace("lr = 0.1 ", "lr = 1e35")
    )
    result = run(text)
    assert result.metrics()["claims"]["wrong"] == len(result.audit)
    assert all(isinstance(claim.diagnosis, list) for claim in result.audit)


def test_a_claim_on_a_number_that_is_not_finite_is_wrong_without_a_slip():
    # the 3-2-1 example with a learning rate of 1e300: step 2's output and loss are inf, and a
    # number that is not finite has no digits to be truncated, changed, dropped or swapped
    text = (
        (CONFIGS / "worked_321.toml").read_text(encoding="utf-8").replace("lr = 0.1 ", "lr = 1e300")
    )
    text += "".join(
        f'[[claims]]\nname = "{name}"\nstep = 2\nvalue = "0.6412"\n'
        for name in ("output.0", "loss")
    )
    result = run(text, ["train.steps=3"])
    assert result.run.diverged_at_step == 2
    for claim in result.audit[-2:]:
        assert math.isinf(claim.true_value)
        assert claim.agrees is False and claim.diagnosis == []
