"""Figures for slides: every demo writes svg or pdf on request, and the figures say what they clip."""

import numpy as np
import pytest
from PIL import Image

from bpdemo.agreement import StepRecord
from bpdemo.infra.cli import run_main
from bpdemo.plots.houses import error_distribution
from bpdemo.plots.training import gradient_difference
from bpdemo.train import History
from demos.gradients import main as gradients_main
from demos.house_prices import main as houses_main
from demos.worked_example import main as worked_main

SMALL_HOUSES = ["--set", "data.houses=200", "--epochs", "2"]
SMALL_GRID = [
    "--set",
    "grid.depths=[2, 3]",
    "--set",
    "report.focus_depth=3",
    "--set",
    "data.rows=64",
]
DEMOS = {
    "house_prices": (houses_main, SMALL_HOUSES, 4),
    "gradients": (gradients_main, SMALL_GRID, 3),
    "worked_example": (worked_main, [], 4),
}


@pytest.mark.parametrize("name", list(DEMOS))
@pytest.mark.parametrize("form", ["svg", "pdf"])
def test_every_demo_writes_its_figures_in_the_format_asked_for(tmp_path, name, form):
    main, argv, count = DEMOS[name]
    out = tmp_path / "run"
    assert run_main(main, [*argv, "--format", form, "--out", str(out), "--quiet"]) == 0
    figures = sorted(p for p in out.iterdir() if p.suffix in (".png", ".svg", ".pdf"))
    assert len(figures) == count and {p.suffix for p in figures} == {f".{form}"}
    start = {"svg": b"<?xml", "pdf": b"%PDF"}[form]
    assert all(p.read_bytes().startswith(start) for p in figures)


def test_the_same_run_writes_the_same_vector_files(tmp_path):
    """No date is recorded in an svg, so a rerun changes nothing."""
    runs = [tmp_path / "first", tmp_path / "second"]
    for out in runs:
        assert run_main(worked_main, ["--format", "svg", "--out", str(out), "--quiet"]) == 0
    for figure in runs[0].glob("*.svg"):
        assert figure.read_bytes() == (runs[1] / figure.name).read_bytes()


def test_dpi_sets_the_size_of_png_figures(tmp_path):
    sizes = {}
    for dpi in (60, 180):
        out = tmp_path / str(dpi)
        assert run_main(worked_main, ["--dpi", str(dpi), "--out", str(out), "--quiet"]) == 0
        with Image.open(out / "network.png") as picture:
            sizes[dpi] = picture.size
    assert sizes[180][0] == pytest.approx(3 * sizes[60][0], rel=0.05)


@pytest.mark.parametrize(("flag", "value"), [("--format", "gif"), ("--dpi", "5")])
def test_a_format_or_dpi_outside_the_choices_is_a_usage_error(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as stop:
        run_main(worked_main, [flag, value, "--out", str(tmp_path / "run")])
    assert stop.value.code == 2
    assert flag in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def legend_texts(figure) -> list[str]:
    return [text.get_text() for text in figure.axes[0].get_legend().get_texts()]


def test_the_error_histogram_says_how_many_errors_it_piled_into_its_end_bins():
    rng = np.random.default_rng(0)
    errors = np.concatenate([rng.normal(0, 30_000, 400), [900_000, -700_000, 800_000]])
    low, high = np.percentile(errors, [0.5, 99.5])  # the bins cover the central 99%
    below, above = int((errors < low).sum()), int((errors > high).sum())
    assert below >= 1 and above >= 2  # the far errors among them
    figure = error_distribution({"hand-written": errors}, "errors", {"hand-written": 20_000})
    assert legend_texts(figure) == [
        f"hand-written (MAE $20k); {below} below, {above} above the range, in the end bins"
    ]
    assert "the end bins also hold every error below" in figure.axes[0].get_xlabel()


def test_differences_that_are_exactly_0_draw_both_lines_apart():
    history = History()
    history.steps = [
        StepRecord(i, 1.0, 1.0, {"w": 0.0}, {"w": 0.0}, {"w": 0.0}, {"w": 1.0}, {"w": 1.0})
        for i in range(1, 11)
    ]
    figure = gradient_difference(history, 1e-10, "float64")
    relative, absolute = figure.axes[0].get_lines()[:2]
    assert set(relative.get_ydata()) != set(absolute.get_ydata())  # two heights, both visible
    assert all("10 of 10 steps exactly 0" in text for text in legend_texts(figure)[:2])
