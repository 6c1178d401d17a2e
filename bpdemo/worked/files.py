"""What a worked example writes beside its config.toml: trace.json, metrics.json, steps.csv, pictures.

trace.json holds every number of every kept step of each run, the claims and their verdicts;
metrics.json the run's status, the agreement of the two models, the final losses and the count of
claims by verdict; steps.csv one row per kept step; walkthrough.txt the printed walk-through and
walkthrough.md the same with LaTeX maths and the pictures (`bpdemo.worked.handout`), walkthrough.tex
the same as a LaTeX article (`bpdemo.worked.handout_tex`). The pictures of one run share one canvas
size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib

from bpdemo.infra import interruption
from bpdemo.infra.errors import DivergenceError
from bpdemo.infra.outputs import RunDir
from bpdemo.worked.handout import handout_blocks, render_markdown
from bpdemo.worked.handout_tex import render_tex
from bpdemo.worked.picture import network_figure, picture_name, quiet_numerics
from bpdemo.worked.result import WorkedResult
from bpdemo.worked.schema import WorkedConfig

if TYPE_CHECKING:
    from matplotlib.transforms import Bbox

# Text stays text, for slides and publishers: an SVG's as <text> elements, which Inkscape and
# PowerPoint edit; a PDF's in embedded TrueType (Type 42) fonts, which publishers take (not Type 3).
SLIDE_TEXT = {"svg.fonttype": "none", "pdf.fonttype": 42, "ps.fonttype": 42}


def write_outputs(
    run_dir: RunDir, config: WorkedConfig, result: WorkedResult, *, text: str | None = None
) -> None:
    """trace.json, metrics.json, steps.csv, the network pictures, one per phase of `config`'s
    [picture], and the handout (config.toml is the command's: `bpdemo.infra.command.Run.write_config`).

    `text`: the walk-through, `result.text()`, when the caller has made it already (the command
    prints it first), so that it is not made twice; else it is made here.
    """
    run_dir.write_json("trace.json", result.trace())
    run_dir.write_json("metrics.json", result.metrics())
    run_dir.write_csv(
        "steps.csv",
        (
            {
                "variant": r.example.variant,
                "step": s.step,
                "loss": s.loss,
                "max_manual_autograd_diff": s.max_manual_autograd_diff,
                "max_manual_autograd_abs_diff": s.max_manual_autograd_abs_diff,
            }
            for r in result.runs()
            for s in r.steps
        ),
    )
    pictures: dict[str, str] = {}
    for run, standardised in zip(result.runs(), (False, True), strict=False):
        phases = list(dict.fromkeys(config.picture.phases)) if run.steps else []
        with quiet_numerics():
            figures = {phase: network_figure(run, phase=phase) for phase in phases}
            # One canvas for every phase, so that the pictures do not jump between slides.
            canvas = same_canvas(list(figures.values()))
            for phase, figure in figures.items():
                with matplotlib.rc_context(SLIDE_TEXT):
                    path = run_dir.save_figure(figure, picture_name(phase, standardised), canvas)
                if not standardised:
                    pictures[phase] = path.name
    run_dir.write_text("walkthrough.txt", (result.text() if text is None else text) + "\n")
    blocks = handout_blocks(result, pictures)  # one handout, written as Markdown and as LaTeX
    run_dir.write_text("walkthrough.md", render_markdown(blocks))
    run_dir.write_text("walkthrough.tex", render_tex(blocks))


def same_canvas(figures: list) -> Bbox | None:
    """The box, in inches, that holds everything each of `figures` draws (they share one size)."""
    from matplotlib.transforms import Bbox

    if not figures:
        return None
    boxes = [figure.get_tightbbox() for figure in figures]
    return Bbox.union(boxes).padded(0.1)  # savefig's own pad around a tight box


def raise_on_failure(result: WorkedResult, run_dir: RunDir) -> None:
    """After everything is written: divergence -> DivergenceError (exit 1); Ctrl-C or SIGTERM ->
    the interruption, which the command line ends with exit 130 / 143."""
    for run in result.runs():
        if run.diverged_at_step is not None:
            which = f"{run.example.variant}: " if result.standardised is not None else ""
            raise DivergenceError(
                f"{which}the loss became inf or NaN at step {run.diverged_at_step}; "
                f"try a smaller learning rate (now {run.example.optimizer.lr:g}) or fewer steps; "
                f"the steps so far are in {run_dir.path / 'trace.json'}",
                run.diverged_at_step,
            )
    if result.run.interrupted:  # exit 130/143, and metrics.json marked as interrupted
        raise interruption.stopped(f"after step {result.run.steps_run}")
