"""Vanishing and exploding gradients: every layer's gradient, in deep networks, and what cures them.

    python -m demos.gradients
    python -m demos.gradients --set grid.depths=[2,10,30] --set grid.activations='["sigmoid"]'

Seed documents 001 and 003 name the problem ("gradients may become very small (vanish) or very large
(explode)"); this demo shows it happen. For every setting of a grid (activation x initialisation x
depth) it measures the gradient norm of every layer at initialisation with the hand-written and the
autograd model, trains both for a short run on scikit-learn's bundled digits, reruns a setting whose
run exploded (loss inf/NaN) with gradient clipping, and prints a table that says which settings
vanish or explode and why. Writes config.toml, metrics.json, settings.csv, steps.csv, layer_norms.csv and three
figures. Library: `bpdemo.health`; figures: `bpdemo.plots.gradients`; data: `bpdemo.datasets.digits`.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Annotated, Literal

import torch
from pydantic import Field

from bpdemo.cli import common_parser, load_demo_config, printer, run_main
from bpdemo.config import (
    ActivationName,
    DtypeName,
    OptimizerSection,
    PositiveFloat,
    PositiveInt,
    Section,
    TrainSection,
    dump_config,
)
from bpdemo.datasets.digits import small_digits
from bpdemo.errors import ConfigError
from bpdemo.health import (
    VERDICTS,
    SettingResult,
    StudyOptions,
    Thresholds,
    clipping_lines,
    grid,
    highlights,
    network_spec,
    study,
    summary_rows,
    torch_threads,
    verdict_table,
)
from bpdemo.outputs import RunDir
from bpdemo.plots.gradients import loss_curves, norm_heatmaps, norms_by_layer

DEMO = "gradients"
N_CLASSES = 10
InitChoice = Literal["normal", "xavier", "he", "uniform", "large"]
Depth = Annotated[int, Field(ge=2)]


class DataSection(Section):
    """[data]: how many of the 1,797 bundled digit images to use."""

    rows: PositiveInt = 512


class GridSection(Section):
    """[grid]: every activation x init x depth is one setting."""

    activations: Annotated[list[ActivationName], Field(min_length=1)] = Field(
        default_factory=lambda: ["sigmoid", "tanh", "relu"]
    )
    inits: Annotated[list[InitChoice], Field(min_length=1)] = Field(
        default_factory=lambda: ["normal", "xavier", "he", "large"]
    )
    depths: Annotated[list[Depth], Field(min_length=1)] = Field(
        default_factory=lambda: [2, 5, 10, 20]
    )
    normal_std: PositiveFloat = 0.01
    large_std: PositiveFloat = 1.0


class GradientModelSection(Section):
    """[model]: the hidden width and the number type (the rest is the grid's)."""

    width: PositiveInt = 32
    dtype: DtypeName = "float64"
    device: str = "cpu"


class ClippingSection(Section):
    """[clipping]: the rerun of a diverged setting with its gradients clipped by global norm."""

    max_grad_norm: PositiveFloat = 1.0
    rerun: bool = True


class VerdictSection(Section):
    """[verdict]: where vanishing and exploding begin (see bpdemo.health)."""

    ratio: Annotated[float, Field(gt=1, allow_inf_nan=False)] = 10.0
    tiny_gradient: PositiveFloat = 0.01
    huge_gradient: PositiveFloat = 100.0
    blowup: Annotated[float, Field(gt=1, allow_inf_nan=False)] = 1e6


class ReportSection(Section):
    """[report]: the depth the heat map and the summary lines look at; whether to draw figures."""

    focus_depth: Depth = 10
    figures: bool = True


class GradientsConfig(Section):
    seed: int = 0
    data: DataSection = DataSection()
    grid: GridSection = GridSection()
    model: GradientModelSection = GradientModelSection()
    optimizer: OptimizerSection = OptimizerSection(name="sgd", lr=0.1)
    train: TrainSection = TrainSection(epochs=4, batch_size=64, threads=1)
    clipping: ClippingSection = ClippingSection()
    verdict: VerdictSection = VerdictSection()
    report: ReportSection = ReportSection()


EPILOG = """\
examples:
  python -m demos.gradients                                        the whole grid (~30 s of CPU)
  python -m demos.gradients --set grid.depths=[2,10,30] --set report.focus_depth=30
  python -m demos.gradients --set grid.activations='["sigmoid","relu"]' --set grid.inits='["he"]'
  python -m demos.gradients --set clipping.max_grad_norm=5 --set grid.large_std=0.5
"""


def parse_args(argv: list[str] | None):
    parser = common_parser(
        DEMO,
        "Show vanishing and exploding gradients layer by layer, and what cures them.",
        epilog=EPILOG,
    )
    return parser.parse_args(argv)


def check(config: GradientsConfig) -> None:
    """What the schema cannot say: no repeated entries, and a focus depth that is in the grid."""
    for key in ("activations", "inits", "depths"):
        values = getattr(config.grid, key)
        if len(set(values)) != len(values):
            raise ConfigError(f"[grid] {key}: {values} repeats an entry; give each once")
    if config.report.focus_depth not in config.grid.depths:
        raise ConfigError(
            f"[report] focus_depth: {config.report.focus_depth} is not one of grid.depths "
            f"{config.grid.depths}; choose one of them"
        )


def study_options(config: GradientsConfig) -> StudyOptions:
    return StudyOptions(
        width=config.model.width,
        normal_std=config.grid.normal_std,
        large_std=config.grid.large_std,
        dtype=config.model.dtype,
        device=config.model.device,
        optimizer=config.optimizer.spec(),
        epochs=config.train.epochs,
        batch_size=config.train.batch_size,
        clip_norm=config.clipping.max_grad_norm if config.clipping.rerun else None,
        seed=config.seed,
        thresholds=Thresholds(**config.verdict.model_dump()),
    )


def describe_run(config: GradientsConfig, data_description: str, count: int) -> str:
    opt, train = config.optimizer, config.train
    steps = train.epochs * math.ceil(config.data.rows / train.batch_size)
    return (
        f"data: {data_description}\n"
        f"{count} settings: activations {', '.join(config.grid.activations)} x inits "
        f"{', '.join(config.grid.inits)} x depths {', '.join(map(str, config.grid.depths))}; "
        f"hidden width {config.model.width}, cross-entropy loss, {config.model.dtype}\n"
        f"each trained for {steps} steps ({train.epochs} epochs of batches of {train.batch_size}), "
        f"{opt.name} lr {opt.lr:g}; a run that explodes (loss inf/NaN, or above "
        f"{config.verdict.blowup:g}x its start) is rerun with its gradients clipped to global norm "
        f"{config.clipping.max_grad_norm:g}"
        + ("" if config.clipping.rerun else " (reruns switched off)")
    )


def progress(quiet: bool, total: int):
    """A tqdm bar on a terminal; about ten plain lines in a log or a pipe; nothing when quiet."""
    from tqdm.auto import tqdm

    terminal = sys.stderr.isatty()
    bar = tqdm(total=total, desc="settings", disable=quiet or not terminal, unit="setting")
    every = max(1, total // 10)

    def advance(done: int, result: SettingResult) -> None:
        bar.update(1)
        bar.set_postfix_str(f"{result.setting.label}: {result.verdict}", refresh=False)
        if not quiet and not terminal and (done % every == 0 or done == total):
            print(f"setting {done}/{total}: {result.setting.label}: {result.verdict}", flush=True)

    return bar, advance


def agreement_lines(results: list[SettingResult], tolerance: float, eps: float) -> list[str]:
    worst = max(results, key=lambda r: r.initial.norm_rel_diff)
    lines = [
        f"hand-written vs autograd, layer gradient norms at initialisation: largest relative "
        f"difference {worst.initial.norm_rel_diff:.1e} over {len(results)} settings "
        f"({worst.setting.label}; tolerance {tolerance:g})"
    ]
    drifted = [r for r in results if r.run.drift_step is not None]
    if drifted:
        names = "; ".join(f"{r.setting.label} from step {r.run.drift_step}" for r in drifted)
        lines.append(
            f"during training the two models drift apart in {len(drifted)} setting(s): {names}. "
            "They agree at initialisation; but where each layer multiplies a perturbation by "
            "about 1 or more (the regime where gradients explode, or its edge), the rounding "
            f"difference between their weights (about {eps:.0e}) is amplified too, step after "
            "step, until the runs part ways (per step: max_rel_grad_diff in steps.csv)"
        )
    else:
        lines.append(
            f"during training: within tolerance at every step of every run (largest "
            f"{max(r.run.max_rel_grad_diff for r in results):.1e})"
        )
    return lines


def write_outputs(
    run: RunDir, config: GradientsConfig, options, results, data_description, lines, seconds
) -> list[str]:
    metrics = {
        "seed": config.seed,
        "dtype": config.model.dtype,
        "data": {"description": data_description, "rows": config.data.rows},
        "optimizer": config.optimizer.model_dump(),
        "thresholds": config.verdict.model_dump(),
        "verdicts": {
            verdict: [r.setting.label for r in results if r.verdict == verdict]
            for verdict in VERDICTS
        },
        "highlights": lines,
        "settings": [result.as_dict(options) for result in results],
        "seconds": seconds,
    }
    run.write_json("metrics.json", metrics)
    run.write_csv("settings.csv", summary_rows(results))
    run.write_csv("steps.csv", step_rows(results))
    run.write_csv("layer_norms.csv", layer_norm_rows(results))

    written = ["config.toml", "metrics.json", "settings.csv", "steps.csv", "layer_norms.csv"]
    if not config.report.figures:
        return written
    focus = config.report.focus_depth
    figures = {
        "grad_norms_by_layer.png": norms_by_layer(
            results,
            "Gradient norm of every layer at initialisation (log scale), one line per setting",
        ),
        "loss_curves.png": loss_curves(
            results, "Training loss per step (log scale): stalls and divergences"
        ),
        "grad_norm_heatmap.png": norm_heatmaps(
            results,
            focus,
            f"Gradient norm of every layer over training, depth {focus} (hand-written model; "
            "white ≈ 1, blue smaller, red larger)",
        ),
    }
    for name, figure in figures.items():
        run.save_figure(figure, name)
    return written + list(figures)


def _runs(result: SettingResult):
    yield "plain", result.run
    if result.clipped is not None:
        yield "clipped", result.clipped


def step_rows(results: list[SettingResult]):
    for result in results:
        for kind, training in _runs(result):
            for record in training.history.steps:
                yield {"setting": result.setting.label, "run": kind, **record.row()}


def layer_norm_rows(results: list[SettingResult]):
    for result in results:
        for kind, training in _runs(result):
            manual, autograd = training.layer_norms("manual"), training.layer_norms("autograd")
            for step, norms_m, norms_a in zip(training.steps, manual, autograd, strict=True):
                for layer, (m, a) in enumerate(zip(norms_m, norms_a, strict=True), start=1):
                    yield {
                        "setting": result.setting.label,
                        "run": kind,
                        "step": step,
                        "layer": layer,
                        "norm_manual": m,
                        "norm_autograd": a,
                    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Everything a user can get wrong is checked before the output folder is made.
    config = load_demo_config(GradientsConfig, args)
    check(config)
    digits = small_digits(config.data.rows, config.seed)
    options = study_options(config)
    settings = grid(config.grid.activations, config.grid.inits, config.grid.depths)
    spec = network_spec(settings[0], digits.x.shape[1], N_CLASSES, options)  # dtype, device
    run = RunDir.prepare(args.out, DEMO, args.force)
    run.write_text("config.toml", dump_config(config))
    quiet = args.quiet

    say = printer(quiet)

    say(describe_run(config, digits.description, len(settings)))
    start = time.perf_counter()
    results: list[SettingResult] = []
    with torch_threads(config.train.threads):
        x, y = digits.tensors(spec.dtype, spec.device)
        bar, advance = progress(quiet, len(settings))
        try:
            for setting in settings:
                results.append(study(setting, x, y, N_CLASSES, options))
                advance(len(results), results[-1])
        finally:
            bar.close()
    seconds = time.perf_counter() - start

    tolerance = results[0].run.tolerance
    say()
    say(
        "gradient norm ‖dL/dW‖ of the first and the last layer at initialisation, the short run, "
        "and the verdict:"
    )
    say(verdict_table(results))
    clipped = clipping_lines(results)
    if clipped:
        say()
        say("reruns of the settings that exploded, with the gradient's global norm clipped:")
        for line in clipped:
            say(line)
    lines = highlights(results, config.report.focus_depth, config.verdict.ratio)
    say()
    for line in [*lines, *agreement_lines(results, tolerance, torch.finfo(spec.dtype).eps)]:
        say(line)
    written = write_outputs(run, config, options, results, digits.description, lines, seconds)
    say(f"\n{len(settings)} settings in {seconds:.1f} s; wrote {', '.join(written)} to {run.path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
