"""Pictures that teach: one per phase, edge labels that thin out by themselves when crowded, honest
drawing of inf and NaN; and a quiet command line."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex

from bpdemo.infra.cli import run_main
from bpdemo.infra.errors import ConfigError
from bpdemo.worked import run
from demos.worked_example import main

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"


def network(sizes: list[int], samples: int = 3) -> str:
    """A worked example of the given widths, tanh hidden layers, softmax output, fixed weights."""
    rng = np.random.default_rng(0)
    weights = [
        rng.normal(0, 0.5, (n_out, n_in)).round(3).tolist()
        for n_in, n_out in itertools.pairwise(sizes)
    ]
    inputs = rng.normal(0, 1, (samples, sizes[0])).round(2).tolist()
    activations = ", ".join(['"tanh"'] * (len(sizes) - 2) + ['"identity"'])
    return (
        f'title = "a {"-".join(map(str, sizes))} network"\n'
        f'[network]\nsizes = {sizes}\nactivations = [{activations}]\nloss = "cross_entropy"\n'
        f"[init]\nweights = {weights}\n"
        f"[data]\ninputs = {inputs}\ntargets = {[n % sizes[-1] for n in range(samples)]}\n"
    )


def edge_labels(figure) -> list:
    """The texts with a box drawn on edges (neurons' texts have none; the loss box is yellow)."""
    return [
        text
        for text in figure.axes[0].texts
        if text.get_bbox_patch() is not None
        and text.get_bbox_patch().get_facecolor()[:3] == (1, 1, 1)
    ]


@pytest.mark.parametrize("phase", ["step", "forward", "backward", "update"])
def test_a_4_6_6_3_network_gets_labels_that_never_cover_each_other_or_a_neuron(phase):
    result = run(network([4, 6, 6, 3]))
    figure = result.picture(phase=phase)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    labels = edge_labels(figure)
    boxes = [text.get_bbox_patch().get_window_extent(renderer) for text in labels]
    circles = [patch.get_window_extent(renderer) for patch in figure.axes[0].patches]
    assert 12 <= len(labels) < 78  # thinned out: some, not all of the 78 edges
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b)
    for box, circle in itertools.product(boxes, circles):
        assert not box.overlaps(circle)
    notes = [
        t.get_text()
        for t in figure.axes[0].texts
        if t.get_text().startswith("z and a") or "edges" in t.get_text()
    ]
    assert any(f"numbers on {len(labels)} of 78 edges" in note for note in notes)


def test_a_small_network_gets_a_label_on_every_edge_and_none_when_asked():
    result = run(CONFIGS / "worked_image.toml")
    every = result.picture()
    assert len(edge_labels(every)) == 4 * 3 + 3 * 3
    none = result.picture(edge_labels="none")
    assert edge_labels(none) == []


def test_all_labels_are_written_when_asked_even_when_crowded():
    figure = run(network([4, 6, 6, 3])).picture(edge_labels="all")
    assert len(edge_labels(figure)) == 78


def test_an_8_wide_network_is_drawn_to_a_size_that_fits_a_slide():
    figure = run(network([8, 8, 8, 3])).picture()
    width, height = figure.get_size_inches()
    assert width < 30 and height < 15


def test_the_demo_writes_one_picture_per_phase_at_the_picture_step(tmp_path):
    out = tmp_path / "run"
    argv = ["--config", str(CONFIGS / "worked_house.toml"), "--steps", "3", "--picture-step", "2"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    for variant in ("", "_standardised"):
        for phase in ("", "_forward", "_backward", "_update"):
            png = out / f"network{variant}{phase}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert json.loads((out / "metrics.json").read_text())["status"]["steps_run"] == 3


def test_picture_phases_choose_which_pictures_are_written(tmp_path):
    out = tmp_path / "run"
    argv = ["--config", str(CONFIGS / "worked_321.toml"), "--set", 'picture.phases=["backward"]']
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["network_backward.png"]


def test_a_picture_step_beyond_the_run_is_refused_naming_the_steps_there_are(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--config", str(CONFIGS / "worked_321.toml"), "--picture-step", "5", "--out", str(out)]
    assert run_main(main, argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.endswith(
        "[picture] step 5 is beyond the run, which has step 1 (train.steps = 1)"
        ": choose a step it has, or run more steps"
    )
    assert len(error.splitlines()) == 1 and not out.exists()
    with pytest.raises(ConfigError, match=r"which has steps 1 to 2 \(train.steps = 2\)"):
        run(CONFIGS / "worked_321.toml", ["train.steps=2", "picture.step=9"])


def test_a_run_that_diverges_before_the_picture_step_draws_its_last_step():
    result = run(CONFIGS / "worked_321.toml", ["train.steps=9", "train.lr=1e200", "picture.step=9"])
    assert result.run.diverged_at_step is not None and result.run.diverged_at_step < 9
    title = result.picture().axes[0].get_title()
    assert title.endswith(f"step {result.run.diverged_at_step}")


def edge_colours(figure) -> list[str]:
    """The colour of every edge of a network picture, as #rrggbb."""
    collections = figure.axes[0].collections
    return [to_hex(colour) for lines in collections for colour in lines.get_colors()]


def legend(figure) -> dict[str, str]:
    """The picture's legend: the meaning of each colour, {text: #rrggbb}."""
    handles = figure.axes[0].get_legend().get_lines()
    return {line.get_label(): to_hex(line.get_color()) for line in handles}


def test_in_the_update_picture_every_weight_of_the_321_example_is_coloured_as_rising():
    result = run(CONFIGS / "worked_321.toml")
    step = result.run.steps[0]
    for name in ("layers.0.weight", "layers.1.weight"):  # every weight rose: the gradients are < 0
        assert (step.params_after[name] > step.params_before[name]).all()
    figure = result.picture(phase="update")
    meanings = legend(figure)
    raised, lowered = meanings["the update raised w"], meanings["the update lowered w"]
    assert raised != lowered
    assert edge_colours(figure) == [raised] * 8  # 3·2 + 2·1 edges


def test_in_the_backward_picture_blue_and_red_mean_what_they_mean_in_the_update():
    # the house example on raw inputs: some gradients positive, some negative
    result = run(CONFIGS / "worked_house.toml")
    step = result.run.steps[0]
    backward, update = result.picture(phase="backward"), result.picture(phase="update")
    rises = legend(update)["the update raised w"]
    falls = legend(update)["the update lowered w"]
    assert legend(backward)["∂L/∂w < 0: gradient descent raises w"] == rises
    assert legend(backward)["∂L/∂w > 0: gradient descent lowers w"] == falls
    grads = [
        g for name in ("layers.0.weight", "layers.1.weight") for g in step.grads[name].flatten()
    ]
    changes = [
        a - b
        for name in ("layers.0.weight", "layers.1.weight")
        for a, b in zip(
            step.params_after[name].flatten(), step.params_before[name].flatten(), strict=True
        )
    ]
    assert edge_colours(backward) == [rises if g < 0 else falls for g in grads]
    assert edge_colours(update) == [rises if c > 0 else falls for c in changes]


# -- inf and NaN, warnings, --quiet --------------------------------------------------------------------
def test_a_diverging_run_draws_its_inf_and_nan_and_still_says_it_diverged(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--config", str(CONFIGS / "worked_321.toml"), "--steps", "5", "--picture-step", "2"]
    argv += ["--set", "train.lr=1e200", "--out", str(out), "--quiet"]
    assert run_main(main, argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: the loss became inf or NaN at step 2")
    assert len(captured.err.strip().splitlines()) == 1  # no numpy or matplotlib warning
    assert (out / "network_update.png").stat().st_size > 0
    figure = run(CONFIGS / "worked_321.toml", ["train.steps=5", "train.lr=1e200"]).picture(
        step=2, phase="update"
    )
    assert any("inf" in text.get_text() for text in figure.axes[0].texts)


def test_quiet_prints_nothing_on_success(tmp_path, capsys):
    argv = ["--config", str(CONFIGS / "worked_xor.toml"), "--out", str(tmp_path / "run"), "--quiet"]
    assert run_main(main, argv) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert (tmp_path / "run" / "trace.json").exists()
