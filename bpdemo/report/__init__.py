"""What a training demo prints and writes about a side-by-side run: agreement, history, tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from bpdemo.agreement import why_runs_drift
from bpdemo.compare import SideBySide
from bpdemo.infra import interruption
from bpdemo.infra.errors import DivergenceError
from bpdemo.infra.outputs import RunDir
from bpdemo.infra.processes import ProcessLost
from bpdemo.train import History

# How each model of a training demo is named in its tables, lines and figures.
MODEL_LABELS = {
    "manual": "hand-written",
    "autograd": "autograd",
    "linear": "linear regression",
    "sklearn_mlp": "scikit-learn MLP",
    "mlp": "MLP, hand-written",
}


def agreement(pair: SideBySide) -> dict[str, Any]:
    """The `agreement` block of metrics.json: the verdict at the same parameters (maxima over every
    step, the tolerance, `within_tolerance`) and the two runs' `drift` (`bpdemo.agreement`)."""
    return pair.agreement.as_dict()


def agreement_line(pair: SideBySide) -> str:
    """The two questions in words: the verdict on one line, the two runs' drift on the next, and
    once the runs have parted, why runs drift."""
    a = pair.agreement
    verdict = f"within tolerance {a.tolerance:g}"
    if not a.within_tolerance:
        verdict = f"OUTSIDE tolerance {a.tolerance:g} from step {a.outside_from_step}"
    lines = [
        f"hand-written vs autograd over {a.steps_compared} steps ({a.dtype}), each step at the "
        f"hand-written model's parameters: max gradient difference {a.max_abs_grad_diff:.2e} "
        f"absolute, {a.max_rel_grad_diff:.2e} relative ({verdict}); "
        f"max loss difference {a.max_abs_loss_diff:.2e}",
        "hand-written vs autograd, two runs each trained on its own (drift, not a check): "
        f"{a.drift.describe(a.steps_compared, a.tolerance)}",
    ]
    if a.drift.parted_at_step is not None:
        lines.append(f"  {why_runs_drift(a.dtype)}")
    return "\n".join(lines)


def run_status(history: History) -> dict[str, Any]:
    """How the run ended, for metrics.json."""
    return {
        "interrupted": history.interrupted,
        "diverged_at_step": history.diverged_at_step,
        "epochs_completed": len(history.epochs) - 1,
        "steps": len(history.steps),
    }


def write_history(run: RunDir, history: History) -> None:
    """`history.csv` (one row per epoch, both models) and `steps.csv` (one row per step)."""
    run.write_csv("history.csv", history.epochs)
    run.write_csv("steps.csv", (record.row() for record in history.steps))


def stop_if_unfinished(
    run: RunDir, history: History, pair: SideBySide, dataset: dict[str, Any], lr: float, epochs: int
) -> None:
    """If the run diverged or was interrupted: write what it has, then raise the matching error.

    Writes `history.csv`, `steps.csv` and a `metrics.json` with `dataset`, `agreement`, the run's
    status (`interrupted`, `diverged_at_step`, ...) and the epoch history so far; an interruption
    adds its phase and signal, and raises `bpdemo.infra.interruption.Interrupted` (a lost process of
    a data-parallel run: `bpdemo.infra.processes.ProcessLost`).
    """
    if history.completed:
        return
    with interruption.shielded():
        write_history(run, history)
        metrics = {
            "dataset": dataset,
            "agreement": agreement(pair),
            **run_status(history),
            "history": history.epochs,
        }
        if history.interrupted:
            detail = f"after {len(history.epochs) - 1} of {epochs} epochs"
            if history.process_lost:
                stop = ProcessLost(interruption.phase(), detail)
            else:
                stop = interruption.stopped(detail)
            metrics.update(stop.marks())
        run.write_json("metrics.json", metrics)
        if history.interrupted:
            raise stop
    raise DivergenceError(
        history.divergence_message(lr, pair.agreement.dtype)
        + f"; the history so far is in {run.path}",
        history.diverged_at_step,
    )


def table(rows: Mapping[str, Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A plain-text table, one row per model: `{"hand-written": {"test RMSE": 1.0, ...}, ...}`."""
    frame = pd.DataFrame.from_dict(rows, orient="index")
    if columns is not None:
        frame = frame[list(columns)]
    return frame.to_string(float_format=lambda v: f"{v:,.4g}", na_rep="–")


def data_and_split(split: Any, **facts: Any) -> dict[str, Any]:
    """What a `dataset` block of metrics.json begins with: the data's name, description and rows,
    `facts` (what the rows hold), then the sizes of the training and the test split."""
    data = split.data
    return {
        "name": data.name,
        "description": data.description,
        "rows": data.rows,
        **facts,
        "train_rows": len(split.train_index),
        "test_rows": len(split.test_index),
    }
