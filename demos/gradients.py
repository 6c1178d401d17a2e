"""Vanishing and exploding gradients: every layer's gradient, in deep networks, and what cures them.

Gradients may become very small (vanish) or very large (explode) on their way back through a deep
network; this demo shows it happen. For every setting of a grid (activation x initialisation x depth)
it measures every layer's gradient norm at initialisation with both models, trains both for a short
run on scikit-learn's bundled digits, reruns a run that exploded with gradient clipping, and prints
which settings vanish or explode and why. Writes config.toml, metrics.json, settings.csv, steps.csv,
layer_norms.csv and three figures (`bpdemo.health`, `bpdemo.report.health`, `bpdemo.plots.gradients`).
"""

from __future__ import annotations

import sys
from typing import Annotated

from pydantic import Field

from bpdemo.datasets.digits import small_digits
from bpdemo.health import STUDY_INITS, StudyOptions, Thresholds, grid, network_spec, study
from bpdemo.infra import config as schema
from bpdemo.infra.cli import common_parser, load_demo_config, run_main
from bpdemo.infra.command import run_command
from bpdemo.infra.config import same_as
from bpdemo.infra.errors import ConfigError
from bpdemo.infra.limits import MAX_DEPTH
from bpdemo.optim import OptimizerSpec
from bpdemo.plots.gradients import figures
from bpdemo.report import health as report
from bpdemo.spec import ActivationName, check_size
from bpdemo.train import torch_threads

DEMO = "gradients"
N_CLASSES, PIXELS = 10, 64  # the digits' classes, and pixels per image
InitChoice = Annotated[str, schema.one_of(STUDY_INITS)]  # the registry's random inits, and "large"
Depth = Annotated[int, Field(ge=2, le=MAX_DEPTH)]
# `StudyOptions` holds the study's defaults and checks; the tables below show its keys by table.
STUDY = StudyOptions()


class DataSection(schema.Section):
    """[data]: how many of the 1,797 bundled digit images to use (one alone standardises to 0)."""

    rows: Annotated[int, Field(ge=2)] = 512


class GridSection(schema.Section):
    """[grid]: every activation x init x depth is one setting."""

    activations: list[ActivationName] = Field(
        default_factory=lambda: ["sigmoid", "tanh", "relu"], min_length=1
    )
    inits: list[InitChoice] = Field(
        default_factory=lambda: ["normal", "xavier", "he", "large"], min_length=1
    )
    depths: list[Depth] = Field(default_factory=lambda: [2, 5, 10, 20], min_length=1)
    normal_std: same_as(StudyOptions, "normal_std")
    large_std: same_as(StudyOptions, "large_std")


class GradientModelSection(schema.Section):
    """[model]: the hidden width and the number type (the rest is the grid's)."""

    width: same_as(StudyOptions, "width")
    dtype: same_as(StudyOptions, "dtype")
    device: same_as(StudyOptions, "device")


class ClippingSection(schema.Section):
    """[clipping]: the rerun of a diverged setting with its gradients clipped by global norm."""

    max_grad_norm: schema.PositiveFloat = STUDY.clip_norm
    rerun: bool = True  # False: no reruns (StudyOptions.clip_norm None)


class ReportSection(schema.Section):
    """[report]: the depth the heat map and the summary lines look at; whether to draw figures."""

    focus_depth: Depth = 10
    figures: bool = True


class GradientsConfig(schema.Section):
    seed: same_as(StudyOptions, "seed")
    data: DataSection = DataSection()
    grid: GridSection = GridSection()
    model: GradientModelSection = GradientModelSection()
    optimizer: OptimizerSpec = STUDY.optimizer
    train: schema.TrainSection = schema.TrainSection(
        epochs=STUDY.epochs, batch_size=STUDY.batch_size, threads=1
    )
    clipping: ClippingSection = ClippingSection()
    verdict: Thresholds = STUDY.thresholds
    report: ReportSection = ReportSection()

    def study_options(self) -> StudyOptions:
        """The study these tables describe (`bpdemo.health.StudyOptions`)."""
        return StudyOptions(
            width=self.model.width,
            normal_std=self.grid.normal_std,
            large_std=self.grid.large_std,
            dtype=self.model.dtype,
            device=self.model.device,
            optimizer=self.optimizer,
            epochs=self.train.epochs,
            batch_size=self.train.batch_size,
            clip_norm=self.clipping.max_grad_norm if self.clipping.rerun else None,
            seed=self.seed,
            thresholds=self.verdict,
        )


EPILOG = """\
examples:
  python -m demos.gradients                                        the whole grid (~30 s of CPU)
  python -m demos.gradients --set grid.depths=[2,10,30] --set report.focus_depth=30
  python -m demos.gradients --set grid.activations='["sigmoid","relu"]' --set grid.inits='["he"]'
  python -m demos.gradients --set clipping.max_grad_norm=5 --set grid.large_std=0.5
"""


def check(config: GradientsConfig) -> None:
    """What the schema cannot say: no repeated entries, a focus depth that is in the grid, and
    networks of a size that fits."""
    for key in ("activations", "inits", "depths"):
        values = getattr(config.grid, key)
        if len(set(values)) != len(values):
            raise ConfigError(f"[grid] {key}: {values} repeats an entry; give each once")
    if config.report.focus_depth not in config.grid.depths:
        raise ConfigError(
            f"[report] focus_depth: {config.report.focus_depth} is not one of grid.depths "
            f"{config.grid.depths}; choose one of them"
        )
    check_size([PIXELS, *[config.model.width] * (max(config.grid.depths) - 1), N_CLASSES])


def parse_args(argv: list[str] | None):
    description = "Show vanishing and exploding gradients layer by layer, and what cures them."
    return common_parser(DEMO, description, epilog=EPILOG).parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = load_demo_config(GradientsConfig, args)
    check(config)
    options = config.study_options()
    settings = grid(config.grid.activations, config.grid.inits, config.grid.depths)
    spec = network_spec(settings[0], PIXELS, N_CLASSES, options)  # its dtype and device, checked
    with torch_threads(config.train.threads), run_command(DEMO, args, config) as run:
        digits = small_digits(config.data.rows, config.seed)
        x, y = digits.tensors(spec.dtype, spec.device)
        run.write_config()
        run.say(report.describe_study(settings, options, digits, config.clipping.max_grad_norm))
        head = {  # how metrics.json begins; an interrupted run keeps the settings it finished
            "seed": config.seed,
            "dtype": config.model.dtype,
            "data": {"description": digits.description, "rows": config.data.rows},
            "optimizer": config.optimizer.model_dump(),
            "thresholds": config.verdict.model_dump(),
        }
        results, entries = [], []
        run.phase("study")
        with report.progress(args.quiet, len(settings)) as advance:
            for setting in settings:
                results.append(study(setting, x, y, N_CLASSES, options))
                advance(results[-1])
                entries.append(report.metrics_entry(results[-1], options))
                run.folder.progress = {**head, "settings": entries}
        seconds = sum(result.seconds for result in results)

        run.say(f"\n{report.TABLE_TITLE}\n{report.verdict_table(results, options)}")
        if clipped := report.clipping_lines(results):
            run.say("\n" + "\n".join([report.CLIPPING_TITLE, *clipped]))
        highlights = report.highlights(results, config.report.focus_depth, config.verdict.ratio)
        run.say("\n" + "\n".join([*highlights, *report.agreement_lines(results)]))

        run.phase("writing")
        verdicts = {"verdicts": report.verdicts(results), "highlights": highlights}
        metrics = {**head, **verdicts, "settings": entries, "seconds": seconds}
        run.folder.write_json("metrics.json", metrics)
        run.folder.write_csv("settings.csv", report.summary_rows(results, options))
        run.folder.write_csv("steps.csv", report.step_rows(results))
        run.folder.write_csv("layer_norms.csv", report.layer_norm_rows(results))
        if config.report.figures:
            run.folder.save_figures(figures(results, config.report.focus_depth))
        run.finish(f"{len(settings)} settings in {seconds:.1f} s; ")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
