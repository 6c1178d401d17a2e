"""Every word and formula about a loss comes from the loss in use: a registered loss is never called
cross-entropy, and every formula the one-image walk-through prints gives the value printed beside it."""

import contextlib
import io
import math
import re
import sys
import textwrap

import numpy as np
import pytest
import torch

from bpdemo import MLPSpec, register_loss
from bpdemo.functional import LOSSES
from bpdemo.image_step import Snapshot, choose_and_step
from bpdemo.plots.images import FIGURES
from bpdemo.report.images import describe_step
from bpdemo.worked.formula import FormulaError, evaluate_formula
from demos.images import main

# What only cross-entropy may be called, in words and in formulas
CROSS_ENTROPY_WORDS = ("cross-entropy", "cross entropy", "−ln p", "-ln p", "onehot")

FOCAL_MODULE = textwrap.dedent(
    """
    import torch
    from bpdemo import register_loss

    GAMMA = 2.0


    def focal(logits, labels):  # mean over the batch of -(1 - p_y)^2 ln p_y, p = softmax(logits)
        log_p = torch.log_softmax(logits, dim=1).gather(1, labels.view(-1, 1)).squeeze(1)
        return (-((1 - log_p.exp()) ** GAMMA) * log_p).mean()


    def focal_gradient(logits, labels):  # dL/dp_y times dp_y/dz_k = p_y (onehot_k - p_k)
        p = torch.softmax(logits, dim=1)
        log_p_y = torch.log_softmax(logits, dim=1).gather(1, labels.view(-1, 1))
        p_y = log_p_y.exp()
        outer = GAMMA * (1 - p_y) ** (GAMMA - 1) * p_y * log_p_y - (1 - p_y) ** GAMMA
        true = torch.zeros_like(logits).scatter_(1, labels.view(-1, 1), 1.0)
        return outer * (true - p) / len(labels)


    register_loss(
        "focal", focal, focal_gradient, focal, targets="classes",
        description="focal loss on softmax",
        term_text="(1 − {p})^2·ln({p})", total_text="−({terms})/{rows}",
    )
    """
)
SMALL = ["--epochs", "2", "--set", "data.per_class=16", "--set", "model.hidden=[12]"]


@pytest.fixture(scope="module")
def focal_run(tmp_path_factory):
    """(output folder, what was printed) of a small image run with a registered focal loss."""
    folder = tmp_path_factory.mktemp("focal")
    (folder / "focal_loss.py").write_text(FOCAL_MODULE)
    saved = dict(LOSSES)
    printed = io.StringIO()
    argv = ["--import", str(folder / "focal_loss.py"), "--set", 'model.loss="focal"', *SMALL]
    try:
        with contextlib.redirect_stdout(printed):
            assert main([*argv, "--format", "svg", "--out", str(folder / "run")]) == 0
    finally:
        LOSSES.clear()
        LOSSES.update(saved)
        sys.modules.pop("focal_loss", None)
    return folder / "run", printed.getvalue()


def named_cross_entropy(text: str) -> list[str]:
    return [word for word in CROSS_ENTROPY_WORDS if word in text.lower()]


def test_a_run_with_a_registered_loss_prints_its_name_and_never_cross_entropy(focal_run):
    _, printed = focal_run
    assert named_cross_entropy(printed) == []
    assert "loss focal (focal loss on softmax) on the 10 logits" in printed


def test_no_figure_of_a_run_with_a_registered_loss_names_cross_entropy(focal_run):
    out, _ = focal_run
    figures = sorted(out.glob("*.svg"))
    assert len(figures) == len(FIGURES)
    for figure in figures:  # matplotlib keeps each text of an SVG in a comment beside its glyphs
        texts = " ".join(re.findall(r"<!-- (.*?) -->", figure.read_text()))
        assert named_cross_entropy(texts) == [], figure.name
    loss_axis = " ".join(re.findall(r"<!-- (.*?) -->", (out / "loss_accuracy.svg").read_text()))
    assert "loss focal (focal loss on softmax) (log scale)" in loss_axis


# -- every formula of the one-image walk-through gives the value printed beside it ---------------------
def printed_vector(line: str) -> dict[str, float]:
    """`0 −1.282  1 +3.850` after the last colon: {"0": -1.282, "1": 3.85}."""
    values = line.rsplit(":  ", 1)[1].replace("−", "-")
    return {name: float(value) for name, value in re.findall(r"(\S+) ([+-]?\d+\.\d+)", values)}


def walkthrough_lines(printed: str) -> dict[str, str]:
    """The lines of the one-image walk-through, by what they start with."""
    block = printed[printed.index("one image through") :].splitlines()
    starts = {
        "z": "  1 forward:  z, the logits:",
        "p": "              p = softmax(z):",
        "loss": "  2 error:",
        "gradient": "  3 backward:",
    }
    return {key: next(line for line in block if line.startswith(s)) for key, s in starts.items()}


def evaluated_equalities(line: str) -> list[tuple[float, float]]:
    """Each `formula = ... = value` of a line: (what each formula of numbers gives, the value)."""
    parts = line.split(":", 1)[1].split(" = ")
    value = float(parts[-1].replace("−", "-"))
    pairs = []
    for part in parts[:-1]:
        with contextlib.suppress(FormulaError):
            pairs.append((evaluate_formula(part), value))
    return pairs


def check_walkthrough_arithmetic(printed: str, true_class: str) -> int:
    """Check every formula the walk-through prints against its printed numbers; how many there were."""
    lines = walkthrough_lines(printed)
    z, p = printed_vector(lines["z"]), printed_vector(lines["p"])
    logits = np.array(list(z.values()))
    softmax = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    # each printed to 3 decimals: a softmax of rounded logits is within about 1e-3 of p
    np.testing.assert_allclose(softmax, list(p.values()), atol=2e-3)
    checked = 1
    for formula, value in evaluated_equalities(lines["loss"]):
        assert formula == pytest.approx(value, rel=1e-5)  # 6 significant digits printed
        checked += 1
    if "dL/dz = p − onehot(" in lines["gradient"]:
        gradient = printed_vector(lines["gradient"])
        for name, probability in p.items():
            expected = probability - (name == true_class)
            assert gradient[name] == pytest.approx(expected, abs=1.5e-3), name
        checked += 1
    return checked


def test_every_formula_of_the_walkthrough_gives_its_printed_value_with_a_registered_loss(focal_run):
    _, printed = focal_run
    true_class = re.search(r'true class "(\S+)"', printed).group(1)
    lines = walkthrough_lines(printed)
    assert lines["loss"].startswith(f'  2 error:    loss = −(1 − p("{true_class}"))^2·ln(p("')
    assert check_walkthrough_arithmetic(printed, true_class) == 2  # softmax and the loss
    assert "dL/dz, by the gradient rule of focal:" in lines["gradient"]


def one_image_step(loss: str):
    """A real step of a small classifier on one image, with `loss`."""
    spec = MLPSpec([5, 4, 3], ["relu", "identity"], loss=loss, seed=3, dtype="float64")
    state = spec.initial_parameters()
    x = torch.tensor([[0.5, -1.0, 2.0, 0.25, -0.75]], dtype=torch.float64)
    weights = Snapshot(state, np.full((1, 3), 1 / 3))
    return choose_and_step(
        spec, x, np.array([2]), weights, weights, probability=0.7, lr=0.5, test_image=0
    )


CLASSES = ["cat", "dog", "car"]


def test_every_formula_of_the_walkthrough_gives_its_printed_value_with_cross_entropy():
    printed = describe_step(one_image_step("cross_entropy"), CLASSES)
    lines = walkthrough_lines(printed)
    assert lines["loss"].startswith('  2 error:    loss = −ln(p("car")) = −ln(0.')
    assert 'dL/dz = p − onehot("car"):' in lines["gradient"]
    assert check_walkthrough_arithmetic(printed, "car") == 3  # softmax, the loss, the gradient


def test_the_loss_printed_with_cross_entropy_is_minus_ln_of_the_true_class_probability():
    walk = one_image_step("cross_entropy")
    line = walkthrough_lines(describe_step(walk, CLASSES))["loss"]
    assert float(line.rsplit(" = ", 1)[1]) == pytest.approx(
        -math.log(walk.probabilities[2]), rel=1e-5
    )


def test_a_loss_without_texts_is_named_and_written_out_with_no_formula(registries):
    register_loss(
        "nll_softmax",
        torch.nn.functional.cross_entropy,
        lambda z, y: LOSSES["cross_entropy"].gradient(z, y),
        torch.nn.functional.cross_entropy,
        targets="classes",
    )
    walk = one_image_step("nll_softmax")
    printed = describe_step(walk, CLASSES)
    assert named_cross_entropy(printed) == []
    lines = walkthrough_lines(printed)
    assert lines["loss"] == f"  2 error:    loss nll_softmax of this image = {walk.loss:.6g}"
    assert "dL/dz, by the gradient rule of nll_softmax:" in lines["gradient"]
