"""A published textbook example with rounded intermediates, audited as its author intends; and the
four-sample XOR example printed sample by sample.

The textbook is Negnevitsky's "Artificial Intelligence: A Guide to Intelligent Systems" (2nd ed.,
section 6.4): a 2-2-1 sigmoid network learns XOR, thresholds θ3 = 0.8, θ4 = -0.1, θ5 = 0.3 (a bias is
minus a threshold), learning rate 0.1, first example (1, 1) with desired output 0. The book writes
every figure to four decimal places and carries the rounded figures into the next line.
"""

import math
from pathlib import Path

import pytest

from bpdemo.worked import run
from demos.worked_example import main

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

TEXTBOOK = """
title = "XOR, one example, one step"
source = "a textbook's XOR network, worked to four decimal places"
[network]
sizes = [2, 2, 1]
activations = ["sigmoid", "sigmoid"]
loss = "half_sse"
[init]
weights = [[[0.5, 0.4], [0.9, 1.0]], [[-1.2, 1.1]]]
biases = [[-0.8, 0.1], [-0.3]]
[train]
lr = 0.1
[data]
inputs = [[1, 1]]
targets = [[0]]
"""

# (name, value as the book prints it, extra keys); the book's delta is ours with the opposite sign
# (it is written for the error e = y_d - y), and a bias is minus the book's threshold.
CLAIMS = [
    ("hidden.0", "0.5250", 'digits = 4\nformula = "sigmoid(1*0.5 + 1*0.4 - 1*0.8)"'),
    ("hidden.1", "0.8808", 'digits = 4\nformula = "1/(1 + exp(-(1*0.9 + 1*1.0 + 0.1)))"'),
    # from the rounded hidden outputs: 0.03888 where the exact value is 0.038902
    ("output_pre.0", "0.03888", 'tolerance = 0.0001\nformula = "-0.5250*1.2 + 0.8808*1.1 - 0.3"'),
    ("output.0", "0.5097", "digits = 4"),
    ("error.0", "-0.5097", ""),
    ("delta.layers.1[0]", "0.1274", 'formula = "0.5097 * (1 - 0.5097) * 0.5097"'),
    ("delta.layers.0[0]", "-0.0381", 'formula = "0.5250 * (1 - 0.5250) * 0.1274 * -1.2"'),
    ("param_after.layers.1.weight[0,0]", "-1.2067", 'formula = "-1.2 - 0.1 * 0.5250 * 0.1274"'),
    ("param_after.layers.1.weight[0,1]", "1.0888", ""),
    ("param_after.layers.1.bias[0]", "-0.3127", ""),
    ("param_after.layers.0.weight[0,0]", "0.5038", ""),
    ("param_after.layers.0.weight[0,1]", "0.4038", ""),
    ("param_after.layers.0.weight[1,0]", "0.8985", ""),
    ("param_after.layers.0.bias[0]", "-0.7962", ""),
    ("param_after.layers.0.bias[1]", "0.0958", ""),  # deliberately wrong: the book has 0.0985
]


def textbook(claims=CLAIMS) -> str:
    blocks = [f'[[claims]]\nname = "{n}"\nvalue = "{v}"\n{extra}\n' for n, v, extra in claims]
    return TEXTBOOK + "".join(blocks)


def test_the_textbook_example_audits_as_its_author_intends():
    result = run(textbook())
    verdicts = {r.claim.quantity.name: r.agrees for r in result.audit}
    wrong = [name for name, agrees in verdicts.items() if not agrees]
    assert wrong == ["param_after.layers.0.bias[1]"]  # only the deliberate slip
    formulas = [r for r in result.audit if r.claim.formula is not None]
    assert len(formulas) == 6 and all(r.formula_agrees for r in formulas)
    # exact values, by hand: sigmoid(0.1), sigmoid(2), and the output from them
    y3, y4 = 1 / (1 + math.exp(-0.1)), 1 / (1 + math.exp(-2.0))
    y5 = 1 / (1 + math.exp(-(-1.2 * y3 + 1.1 * y4 - 0.3)))
    values = {r.claim.quantity.name: r.true_value for r in result.audit}
    assert (values["hidden.0"], values["hidden.1"], values["output.0"]) == pytest.approx(
        (y3, y4, y5), abs=1e-15
    )
    assert values["param_after.layers.0.bias[1]"] == pytest.approx(0.09852881792, abs=1e-10)


def test_a_figure_off_by_its_rounded_intermediates_needs_its_tolerance():
    rounded = [c for c in CLAIMS if c[0] == "output_pre.0"]
    with_tolerance = run(textbook(rounded)).audit[0]
    without = run(textbook([(name, value, "") for name, value, _ in rounded])).audit[0]
    assert with_tolerance.agrees and not without.agrees
    assert abs(with_tolerance.true_value - 0.03888) > 5e-6  # beyond half a unit of 0.03888


def test_digits_are_stricter_or_looser_than_the_written_decimals():
    result = run(textbook([("output.0", "0.51", "digits = 2"), ("output.0", "0.5098", "")]))
    assert [r.agrees for r in result.audit] == [True, False]  # 0.509724: 0.5098 is 7.6e-5 off


# -- the four-sample XOR example -------------------------------------------------------------------
def test_the_xor_example_prints_all_four_samples_and_their_final_outputs(tmp_path, capsys):
    argv = ["--config", str(CONFIGS / "worked_xor.toml"), "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    for n, pair in enumerate(
        ["x1 = 0, x2 = 0", "x1 = 0, x2 = 1", "x1 = 1, x2 = 0", "x1 = 1, x2 = 1"]
    ):
        assert f"sample {n}: input x = [{pair}]" in printed
    final = next(line for line in printed.splitlines() if line.startswith("after the last update"))
    assert final.count("[") == 4  # one output per sample, (1, 1) included
    assert "likewise" not in printed and "more samples" not in printed
    assert "WRONG" not in printed  # the textbook's forward figures, sample (1, 1), all agree


def test_samples_beyond_report_max_samples_are_said_to_be_left_out(tmp_path, capsys):
    argv = ["--config", str(CONFIGS / "worked_xor.toml"), "--set", "report.max_samples=2"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    assert "samples 0 to 1 of 4 are written out (report.max_samples = 2)" in printed
    assert "sample 2: input" not in printed
    assert "… (2 more samples)" in printed  # the sums still name what they leave out
