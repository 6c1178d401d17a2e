"""What is said about gradient health: the verdicts in words, the printed table and lines, the files.

`bpdemo.health` measures and judges (numbers and the rule that fired); this module turns its
`SettingResult`s into sentences (why each setting got its verdict, how each run ended, the reruns with
clipping, a summary at one depth, how closely the two models agreed) and into the rows of
metrics.json, settings.csv, steps.csv and layer_norms.csv.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from bpdemo.agreement import why_runs_drift
from bpdemo.datasets.digits import Digits
from bpdemo.functional import ACTIVATIONS, LOSSES
from bpdemo.health import (
    LARGE,
    LOSS,
    VERDICTS,
    BackwardFactors,
    Setting,
    SettingResult,
    StudyOptions,
    TrainingRun,
    drawn_init,
)
from bpdemo.spec import INITS, resolve_dtype


# -- one setting in words -------------------------------------------------------------------------------
def reason(result: SettingResult, options: StudyOptions) -> str:
    """Why the setting got its verdict: the rule that fired, with the numbers it read."""
    setting, verdict, run = result.setting, result.verdict, result.run
    thresholds = options.thresholds
    r, tiny, huge = thresholds.ratio, thresholds.tiny_gradient, thresholds.huge_gradient
    act, hidden = setting.activation, setting.depth - 1
    ratio, largest, per_layer = (
        verdict.first_last_ratio,
        verdict.largest_gradient,
        verdict.per_layer,
    )
    layers = f"{hidden} layer{'s' if hidden != 1 else ''}"
    if verdict.underflowed:
        each = here = "the error underflowed to 0 on its way back"
        amplified = "the signal or the error underflowed to 0 on its way through the layers"
    else:
        each = f"weights ×{verdict.weight_gain:.2g}, {act}' ×{verdict.activation_slope:.2g}"
        here = f"here ×{per_layer:.2g} each ({each})"
        amplified = (
            f"each layer multiplies the signal by ≈{verdict.forward_gain:.2g} forward and the "
            f"gradient by ≈{per_layer:.2g} backward ({each})"
        )
    cap = ACTIVATIONS[act].max_slope
    saturated = f" ({act} saturated)" if verdict.saturated else ""
    sentences = {
        "exploded": f"{how_it_ended(run)}: {amplified}, gradients reach {largest:.1e}, and a step "
        f"of lr {options.optimizer.lr:g} overshoots",
        "grows": f"the gradient grows ×{per_layer:.2g} per layer on its way back ({each}): over "
        f"{layers} the first layer's is {ratio:.3g}× the last's",
        "huge": f"gradients reach {largest:.3g} (above {huge:g}): {amplified}, and dL/dW = delta × "
        "input carries both",
        "tiny": f"every layer's gradient is below {tiny:g}: {amplified}, and dL/dW = delta × input "
        "carries both",
        "small_slope": f"{act}'(z) ≤ {cap:g}: {layers} multiply the gradient by up to "
        f"{cap:g}^{hidden} ≈ {cap**hidden:.0e} unless the weights make up for it; {here}",
        "shrinks": f"the gradient shrinks ×{per_layer:.2g} per layer on its way back ({each}"
        f"{saturated}): over {layers} the first layer's is {ratio:.1e} of the last's",
        "within": f"first and last layer within {r:g}×: each layer multiplies the gradient by "
        f"≈{per_layer:.2g} on its way back ({each})",
    }
    text = sentences[verdict.rule]
    if verdict.zero_layers:
        dtype = str(result.spec.dtype).removeprefix("torch.")
        text += (
            f"; {verdict.zero_layers} of the {setting.depth} layers' gradients are exactly 0, too "
            f"small for {dtype}" + (" (float64 goes down to 1e-308)" if dtype == "float32" else "")
        )
    return text


def how_it_ended(run: TrainingRun) -> str:
    """'inf/NaN at step 4', 'loss ×1e19 at step 4', or 'finite for 64 steps'."""
    if run.history.diverged_at_step is not None:
        return f"inf/NaN at step {run.history.diverged_at_step}"
    if run.blew_up_at_step is not None:
        losses = run.losses()
        grown = losses[run.blew_up_at_step - 1] / losses[0]
        return f"loss ×{grown:.0e} at step {run.blew_up_at_step}"
    return f"finite for {len(run.history.steps)} steps"


def run_summary(initial_loss: float, run: TrainingRun) -> str:
    """'2.39 → 0.702', or '1.25e+06, inf/NaN at step 4' for a run that exploded."""
    if run.exploded:
        return f"{initial_loss:.3g}, {how_it_ended(run)}"
    return f"{initial_loss:.3g} → {run.final_loss:.3g}"


# -- metrics.json ---------------------------------------------------------------------------------------
def init_description(setting: Setting, options: StudyOptions) -> str:
    """The registry's description of the init, e.g. "normal, std 1 (deliberately large)"."""
    init, scale = drawn_init(setting, options)
    description = INITS[init].description(scale)
    return f"{description} (deliberately large)" if setting.init == LARGE else description


def metrics_entry(result: SettingResult, options: StudyOptions) -> dict[str, Any]:
    """The setting's entry in metrics.json `settings`: its measurements, verdict and reason."""
    initial, run = result.initial, result.run
    clipping = None
    if result.clipped is not None and result.clip_check is not None:
        clipping = {**run_entry(result.clipped), "check_at_init": asdict(result.clip_check)}
    return {
        "label": result.setting.label,
        "activation": result.setting.activation,
        "init": result.setting.init,
        "init_description": init_description(result.setting, options),
        "depth": result.setting.depth,
        "sizes": result.spec.sizes,
        "grad_norms_manual": initial.norms_manual,
        "grad_norms_autograd": initial.norms_autograd,
        "grad_norms_rel_diff": initial.norm_rel_diff,
        "first_last_ratio": initial.first_last_ratio,
        "backward": backward_entry(initial.factors),
        "verdict": result.verdict.name,
        "reason": reason(result, options),
        "exploded": run.exploded,
        "diverged_at_step": run.history.diverged_at_step,
        "blew_up_at_step": run.blew_up_at_step,
        "initial_loss": initial.loss_manual,
        "final_loss": run.final_loss,
        "training": run_entry(run),
        "clipping": clipping,
        "seconds": result.seconds,
    }


def verdicts(results: Sequence[SettingResult]) -> dict[str, list[str]]:
    """metrics.json `verdicts`: the settings' labels under each verdict."""
    return {v: [r.setting.label for r in results if r.verdict.name == v] for v in VERDICTS}


def backward_entry(factors: BackwardFactors) -> dict[str, Any]:
    """metrics.json `backward`: each hidden layer's factors, their geometric means, their product."""
    lists = {
        "weight_gain": factors.weight_gain,
        "activation_slope": factors.activation_slope,
        "per_layer": factors.per_layer,
        "forward_gain": factors.forward_gain,
    }
    means = {f"mean_{key}": factors.mean(values) for key, values in lists.items()}
    return {**lists, **means, "product": factors.product}


def run_entry(run: TrainingRun) -> dict[str, Any]:
    """metrics.json `training` (and `clipping`): how a run ended; the gradient check at the same
    parameters (`max_rel_grad_diff`, `within_tolerance`); the two runs' drift
    (`drift_max_rel_grad_diff`, and `drift_step`, where it passed the tolerance)."""
    finished = run.final_loss is not None
    return {
        "max_grad_norm": run.max_grad_norm,
        "exploded": run.exploded,
        "diverged_at_step": run.history.diverged_at_step,
        "blew_up_at_step": run.blew_up_at_step,
        "steps": len(run.history.steps),
        "final_loss": run.final_loss,
        "final_loss_autograd": run.history.epochs[-1]["train_loss_autograd"] if finished else None,
        "max_rel_grad_diff": run.max_rel_grad_diff,
        "within_tolerance": run.within_tolerance,
        "drift_max_rel_grad_diff": run.drift.max_rel_grad_diff,
        "drift_step": run.drift_step,
    }


# -- the whole grid --------------------------------------------------------------------------------------
def describe_study(
    settings: Sequence[Setting], options: StudyOptions, data: Digits, max_grad_norm: float
) -> str:
    """What is about to run: the data, the grid, the training, and the reruns with clipping."""
    activations, inits, depths = (
        list(dict.fromkeys(getattr(s, axis) for s in settings))
        for axis in ("activation", "init", "depth")
    )
    steps = options.epochs * math.ceil(data.rows / options.batch_size)
    dtype = str(resolve_dtype(options.dtype)).removeprefix("torch.")
    optimizer = options.optimizer
    return (
        f"data: {data.description}\n"
        f"{len(settings)} settings: activations {', '.join(activations)} x inits "
        f"{', '.join(inits)} x depths {', '.join(map(str, depths))}; hidden width "
        f"{options.width}, loss {LOSSES[LOSS].label}, {dtype}\n"
        f"each trained for {steps} steps ({options.epochs} epochs of batches of "
        f"{options.batch_size}), {optimizer.name} lr {optimizer.lr:g}; a run that explodes (loss "
        f"inf/NaN, or above {_count(options.thresholds.blowup)} times its start) is rerun with its gradients "
        f"clipped to global norm {max_grad_norm:g}"
        + ("" if options.clip_norm is not None else " (reruns switched off)")
    )


@contextmanager
def progress(quiet: bool, total: int) -> Iterator[Callable[[SettingResult], None]]:
    """`advance(result)` after each setting: a tqdm bar on a terminal, about ten plain lines in a
    log or a pipe, nothing when quiet."""
    from tqdm import tqdm  # plain: the notebook widgets need ipywidgets

    terminal = sys.stderr.isatty()
    bar = tqdm(total=total, desc="settings", disable=quiet or not terminal, unit="setting")
    every = max(1, total // 10)
    done = 0

    def advance(result: SettingResult) -> None:
        nonlocal done
        done += 1
        line = f"{result.setting.label}: {result.verdict.name}"
        bar.update(1)
        bar.set_postfix_str(line, refresh=False)
        if not quiet and not terminal and (done % every == 0 or done == total):
            print(f"setting {done}/{total}: {line}", flush=True)

    try:
        yield advance
    finally:
        bar.close()


def summary_rows(results: Sequence[SettingResult], options: StudyOptions) -> list[dict[str, Any]]:
    """One row per setting for the printed table and settings.csv."""
    return [
        {
            "activation": result.setting.activation,
            "init": result.setting.init,
            "depth": result.setting.depth,
            "first layer": result.initial.norms_manual[0],
            "last layer": result.initial.norms_manual[-1],
            "first/last": result.initial.first_last_ratio,
            "training loss": run_summary(result.initial.loss_manual, result.run),
            "verdict": result.verdict.name,
            "why": reason(result, options),
        }
        for result in results
    ]


TABLE_TITLE = (
    "gradient norm ‖dL/dW‖ of the first and the last layer at initialisation, the short run, and "
    "the verdict:"
)


def verdict_table(results: Sequence[SettingResult], options: StudyOptions) -> str:
    """The printed table: gradient norms at initialisation, the run, the verdict and why."""
    import pandas as pd

    frame = pd.DataFrame(summary_rows(results, options))
    left = {}
    for column in ("activation", "init", "training loss", "verdict", "why"):
        width = max(len(column), *(len(str(v)) for v in frame[column]))
        left[column] = lambda value, width=width: f"{value:<{width}}"
    numbers = {c: (lambda v: f"{v:.2e}") for c in ("first layer", "last layer", "first/last")}
    text = frame.to_string(index=False, formatters={**left, **numbers}, justify="left")
    return "\n".join(line.rstrip() for line in text.splitlines())


CLIPPING_TITLE = "reruns of the settings that exploded, with the gradient's global norm clipped:"


def clipping_lines(results: Sequence[SettingResult]) -> list[str]:
    """Two lines per rerun with clipping: how it ended, and hand-written against torch clipping."""
    lines = []
    for result in results:
        if result.clipped is None or result.clip_check is None:
            continue
        clipped, check = result.clipped, result.clip_check
        norm_diff = (
            abs(check.norm_before_manual - check.norm_before_torch) / check.norm_before_torch
        )
        lines += [
            f"{result.setting.label}: without clipping {how_it_ended(result.run)}; clipped to "
            f"global norm {check.max_norm:g}: {how_it_ended(clipped)}, loss "
            f"{run_summary(result.initial.loss_manual, clipped)}",
            f"  at initialisation the global norm is {check.norm_before_manual:.3e}; hand-written "
            f"clip_grad_norm against torch.nn.utils.clip_grad_norm_: norms {norm_diff:.0e} apart, "
            f"clipped gradients {check.clipped_grads_rel_diff:.0e} apart (relative)",
        ]
    return lines


def highlights(results: Sequence[SettingResult], depth: int, ratio: float) -> list[str]:
    """Plain-words summary at one depth: sigmoid with a standard init, relu with he, the large init
    and its rerun with clipping. Settings absent from the grid are left out."""
    at = {(r.setting.activation, r.setting.init): r for r in results if r.setting.depth == depth}
    lines = []
    for init in ("xavier", "he"):
        result = at.get(("sigmoid", init))
        if result is not None:
            norms = result.initial.norms_manual
            lines.append(
                f"  sigmoid / {init}: the first layer's gradient is "
                f"{_inverse(result.initial.first_last_ratio):,.3g} times smaller than the last "
                "layer's "
                f"({norms[0]:.2e} against {norms[-1]:.2e}): {result.verdict.name}"
            )
    result = at.get(("relu", "he"))
    if result is not None:
        within = 1 / ratio <= result.initial.first_last_ratio <= ratio
        lines.append(
            f"  relu / he: first/last {result.initial.first_last_ratio:.3g} "
            f"({'within' if within else 'beyond'} {ratio:g}×): {result.verdict.name}"
        )
    for (activation, init), result in at.items():
        if init != LARGE:
            continue
        lines.append(
            f"  {activation} / {LARGE}: {result.verdict.name}: first/last "
            f"{result.initial.first_last_ratio:.3g}, training loss "
            f"{run_summary(result.initial.loss_manual, result.run)}"
        )
        if result.clipped is not None:
            clipped = result.clipped
            lines.append(
                f"  {activation} / {LARGE}, clipped to global norm {clipped.max_grad_norm:g}: "
                f"{how_it_ended(clipped)}, loss {run_summary(result.initial.loss_manual, clipped)}"
            )
    return [f"at depth {depth}:", *lines] if lines else []


def _inverse(ratio: float) -> float:
    """1 / ratio, inf where the first layer's gradient is 0 (it underflowed, or the inputs are 0)."""
    return math.inf if ratio == 0 else 1 / ratio


def agreement_lines(results: Sequence[SettingResult]) -> list[str]:
    """Hand-written against autograd: layer norms at initialisation, the gradient check at the same
    parameters during training, then the drift of the two runs (never a disagreement)."""
    tolerance, dtype = results[0].run.tolerance, results[0].spec.dtype
    worst = max(results, key=lambda r: r.initial.norm_rel_diff)
    runs = [run for result in results for _, run in _runs(result)]
    failed = [r for r in results if not all(run.within_tolerance for _, run in _runs(r))]
    checked = (
        f"within tolerance at every step of every run (largest "
        f"{max(run.max_rel_grad_diff for run in runs):.1e})"
        if not failed
        else "OUTSIDE tolerance in " + "; ".join(r.setting.label for r in failed)
    )
    lines = [
        f"hand-written vs autograd, layer gradient norms at initialisation: largest relative "
        f"difference {worst.initial.norm_rel_diff:.1e} over {len(results)} settings "
        f"({worst.setting.label}; tolerance {tolerance:g})",
        f"hand-written vs autograd during training, each step at the hand-written model's "
        f"parameters: {checked}",
    ]
    drifted = [r for r in results if r.run.drift_step is not None]
    if drifted:
        why = why_runs_drift(dtype)
        names = "; ".join(f"{r.setting.label} from step {r.run.drift_step}" for r in drifted)
        lines.append(
            f"the two runs, each trained on its own, drift apart beyond {tolerance:g} in "
            f"{len(drifted)} setting(s): {names}. {why[:1].upper()}{why[1:]}; here each "
            "layer multiplies a perturbation by about 1 or more (the regime where gradients "
            "explode, or its edge), so the difference grows step after step (steps.csv has the "
            "check and the drift at every step)"
        )
    else:
        lines.append(
            f"the two runs, each trained on its own, stay less than {tolerance:g} apart at every "
            "step of every run"
        )
    return lines


# -- the CSV files ---------------------------------------------------------------------------------------
def _runs(result: SettingResult) -> Iterator[tuple[str, TrainingRun]]:
    yield "plain", result.run
    if result.clipped is not None:
        yield "clipped", result.clipped


def step_rows(results: Sequence[SettingResult]) -> Iterator[dict[str, Any]]:
    """steps.csv: one row per step of every run (plain, and clipped where rerun)."""
    for result in results:
        for kind, training in _runs(result):
            for record in training.history.steps:
                yield {"setting": result.setting.label, "run": kind, **record.row()}


def layer_norm_rows(results: Sequence[SettingResult]) -> Iterator[dict[str, Any]]:
    """layer_norms.csv: ‖dL/dW‖ of every layer at every step of every run, both models."""
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


def _count(value: float) -> str:
    """A threshold as a reader writes it: 1,000,000 rather than 1e+06, 2.5 as it is."""
    return f"{value:,.0f}" if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"
