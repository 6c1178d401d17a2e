"""The training loop: epochs of shuffled mini-batches through the comparison engine, with evaluation.

Both models see identical mini-batches in identical order (one shuffle per epoch from the seed). After
every epoch both are evaluated on the training and the held-out split. The loop stops at once when a
loss becomes inf or NaN, or on Ctrl-C, and keeps the history so far (`History.diverged_at_step`,
`History.interrupted`); the caller decides what to say and write.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from bpdemo.compare import SideBySide, StepRecord

Metrics = Callable[[Tensor, Tensor], dict[str, float]]
Split = tuple[Tensor, Tensor]


@dataclass
class History:
    """Per-step records, per-epoch rows, timings, and how the run ended."""

    steps: list[StepRecord] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)
    seconds_manual: float = 0.0
    seconds_autograd: float = 0.0
    interrupted: bool = False
    diverged_at_step: int | None = None

    @property
    def completed(self) -> bool:
        return not self.interrupted and self.diverged_at_step is None

    def divergence_message(self, lr: float | None = None) -> str:
        advice = f" (now {lr:g})" if lr is not None else ""
        return (
            f"training diverged: the loss became inf or NaN at step {self.diverged_at_step}; "
            f"try a smaller learning rate{advice}"
        )


def batches(n: int, batch_size: int, generator: torch.Generator) -> list[Tensor]:
    """Index tensors of one shuffled epoch: a permutation of range(n) cut into mini-batches."""
    order = torch.randperm(n, generator=generator)
    return list(torch.split(order, batch_size))


def evaluate_row(pair: SideBySide, split: str, data: Split, metrics: Metrics | None) -> dict:
    evaluation = pair.evaluate(*data)
    row = {f"{split}_loss_manual": evaluation.loss_manual}
    row[f"{split}_loss_autograd"] = evaluation.loss_autograd
    if metrics is not None:
        for model, output in (
            ("manual", evaluation.output_manual),
            ("autograd", evaluation.output_autograd),
        ):
            for key, value in metrics(output, data[1]).items():
                row[f"{split}_{key}_{model}"] = value
    return row


def fit(
    pair: SideBySide,
    train: Split,
    test: Split | None = None,
    *,
    epochs: int,
    batch_size: int,
    seed: int = 0,
    metrics: Metrics | None = None,
    quiet: bool = False,
    description: str = "training",
) -> History:
    """Train both models of `pair` for `epochs` epochs; returns the `History`.

    Args:
        train, test: (inputs (N, in), targets) in the models' dtype and device.
        metrics: optional extra numbers per evaluation, e.g. accuracy: f(output, target) -> dict.
        quiet: no progress output at all. Otherwise a tqdm bar on a terminal, and about ten plain
            progress lines when the output is not a terminal (a log file, CI).
    """
    history = History()
    generator = torch.Generator().manual_seed(seed)
    x_train, y_train = train

    def epoch_row(epoch: int) -> dict[str, float]:
        row: dict[str, float] = {"epoch": epoch, "step": pair.steps_done}
        row.update(evaluate_row(pair, "train", train, metrics))
        if test is not None:
            row.update(evaluate_row(pair, "test", test, metrics))
        return row

    history.epochs.append(epoch_row(0))
    terminal = sys.stderr.isatty()
    bar = tqdm(range(1, epochs + 1), desc=description, disable=quiet or not terminal, unit="epoch")
    log_every = max(1, epochs // 10)
    try:
        for epoch in bar:
            for index in batches(len(x_train), batch_size, generator):
                record = pair.step(x_train[index], y_train[index])
                history.steps.append(record)
                if not (math.isfinite(record.loss_manual) and math.isfinite(record.loss_autograd)):
                    history.diverged_at_step = record.step
                    return history
            row = epoch_row(epoch)
            history.epochs.append(row)
            summary = progress_summary(row, pair)
            bar.set_postfix_str(summary, refresh=False)
            if not quiet and not terminal and (epoch % log_every == 0 or epoch in (1, epochs)):
                print(f"{description} epoch {epoch}/{epochs}: {summary}", flush=True)
    except KeyboardInterrupt:
        history.interrupted = True
    finally:
        bar.close()
        history.seconds_manual = pair.seconds_manual
        history.seconds_autograd = pair.seconds_autograd
    return history


def progress_summary(row: dict[str, float], pair: SideBySide) -> str:
    parts = [
        f"train loss {row['train_loss_manual']:.4g} (autograd {row['train_loss_autograd']:.4g})"
    ]
    if "test_loss_manual" in row:
        parts.append(f"test loss {row['test_loss_manual']:.4g}")
    parts.append(f"max grad diff {pair.agreement.max_rel_grad_diff:.1e}")
    return ", ".join(parts)
