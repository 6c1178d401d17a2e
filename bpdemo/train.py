"""The training loop: epochs of mini-batches through anything that steps, then `fit` for a side-by-side pair.

`run_epochs` is the one loop. It shuffles the rows once per epoch from a seeded generator (or keeps
their order), cuts them into mini-batches, calls `step(x, target)` on each, and stops at once when a
step's loss is inf or NaN, on Ctrl-C, when another process of a data-parallel run is lost, or when
the end-of-epoch callback says so; it keeps what it has either way. A step is one model and its
optimizer (`OneModel`, as the benchmark trains), a `SideBySide` pair (the demos), or a pair that also
keeps every number (the worked examples).

`fit` puts a `SideBySide` pair through it: both models see identical mini-batches in identical
order, both are evaluated on the training and the held-out split after every epoch, and the
`History` keeps every step (the verdict at the same parameters and the two runs' drift, see
`bpdemo.agreement.StepRecord`) and every epoch. The caller decides what to say and write.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor
from tqdm import tqdm  # plain: the notebook widgets need ipywidgets

from bpdemo.agreement import StepRecord
from bpdemo.compare import SideBySide
from bpdemo.infra.processes import lost_process

Metrics = Callable[[Tensor, Tensor], dict[str, float]]
Split = tuple[Tensor, Tensor]


class Record(Protocol):
    """What a step returns: at least whether its loss was finite."""

    @property
    def finite(self) -> bool: ...


@dataclass
class Loop:
    """What `run_epochs` did: the step records, and how it ended."""

    records: list[Any] = field(default_factory=list)
    epochs: int = 0  # completed epochs
    seconds: float = 0.0  # in the epochs (shuffling and steps), not in the end-of-epoch callback
    diverged_at_step: int | None = None  # 1-based, counted over the whole loop
    interrupted: bool = False
    process_lost: bool = False  # interrupted by the loss of another process of a data-parallel run
    stopped: bool = False  # the end-of-epoch callback asked to stop


def run_epochs(
    step: Callable[[Tensor, Tensor], Record],
    x: Tensor,
    target: Tensor,
    *,
    epochs: int,
    batch_size: int,
    generator: torch.Generator | None = None,
    end_of_epoch: Callable[[int], bool | None] | None = None,
) -> Loop:
    """Train for `epochs` epochs of mini-batches of `batch_size` rows of (x, target).

    generator: shuffles the rows at the start of every epoch (None: the rows stay in order).
    end_of_epoch(epoch): called after each completed epoch (1, 2, ...); returning True stops.
    """
    loop = Loop()
    rows = len(x)
    x_epoch, target_epoch = x, target
    if generator is not None:  # the shuffled rows of each epoch, written into the same tensors
        x_epoch, target_epoch = torch.empty_like(x), torch.empty_like(target)
    try:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            if generator is not None:
                order = torch.randperm(rows, generator=generator)
                torch.index_select(x, 0, order, out=x_epoch)
                torch.index_select(target, 0, order, out=target_epoch)
            for first in range(0, rows, batch_size):
                batch = slice(first, first + batch_size)
                record = step(x_epoch[batch], target_epoch[batch])
                loop.records.append(record)
                if not record.finite:
                    loop.seconds += time.perf_counter() - start
                    loop.diverged_at_step = len(loop.records)
                    return loop
            loop.seconds += time.perf_counter() - start
            loop.epochs = epoch
            if end_of_epoch is not None and end_of_epoch(epoch):
                loop.stopped = True
                return loop
    except KeyboardInterrupt:
        loop.interrupted = True
    except RuntimeError as error:
        if not lost_process(error):
            raise
        loop.interrupted = loop.process_lost = True
    return loop


@dataclass
class Step:
    """One step of one model: its number and loss."""

    step: int
    loss: float

    @property
    def finite(self) -> bool:
        return math.isfinite(self.loss)


class OneModel:
    """One model and its optimizer, as `run_epochs` steps them (hand-written or autograd alike)."""

    def __init__(self, model, optimizer):
        self.model, self.optimizer = model, optimizer
        self.steps_done = 0

    def step(self, x: Tensor, target: Tensor) -> Step:
        loss, _ = self.model.loss_and_grads(x, target)
        self.optimizer.step()
        self.steps_done += 1
        return Step(self.steps_done, float(loss))


# -- both models side by side -----------------------------------------------------------------------
@dataclass
class History:
    """Per-step records (`StepRecord`: the verdict and the drift), per-epoch rows (each run's
    losses and metrics), timings, and how the run ended."""

    steps: list[StepRecord] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)
    seconds_manual: float = 0.0
    seconds_autograd: float = 0.0
    interrupted: bool = False
    diverged_at_step: int | None = None
    process_lost: bool = False  # the interruption was another process of the run ending

    @property
    def completed(self) -> bool:
        return not self.interrupted and self.diverged_at_step is None

    @property
    def overflowed_at_start(self) -> bool:
        """The loss was already inf or NaN before any update (the first row of `epochs`)."""
        start = self.epochs[0] if self.epochs else {}
        return not math.isfinite(start.get("train_loss_manual", 0.0))

    def divergence_message(self, lr: float | None = None, dtype: str = "float32") -> str:
        if self.overflowed_at_start:  # no update was made yet: the learning rate played no part
            return (
                "the loss is inf or NaN before any update: the inputs or the initial weights "
                f"overflow in {dtype}; scale the data down, or choose a smaller model.init_scale"
            )
        advice = f" (now {lr:g})" if lr is not None else ""
        return (
            f"training diverged: the loss became inf or NaN at step {self.diverged_at_step}; "
            f"try a smaller learning rate{advice}"
        )


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

    def epoch_row(epoch: int) -> dict[str, float]:
        row: dict[str, float] = {"epoch": epoch, "step": pair.steps_done}
        row.update(evaluate_row(pair, "train", train, metrics))
        if test is not None:
            row.update(evaluate_row(pair, "test", test, metrics))
        return row

    history.epochs.append(epoch_row(0))
    terminal = sys.stderr.isatty()
    bar = tqdm(total=epochs, desc=description, disable=quiet or not terminal, unit="epoch")
    log_every = max(1, epochs // 10)

    def end_of_epoch(epoch: int) -> None:
        row = epoch_row(epoch)
        history.epochs.append(row)
        summary = progress_summary(row, pair)
        bar.update(1)
        bar.set_postfix_str(summary, refresh=False)
        if not quiet and not terminal and (epoch % log_every == 0 or epoch in (1, epochs)):
            print(f"{description} epoch {epoch}/{epochs}: {summary}", flush=True)

    try:
        loop = run_epochs(
            pair.step,
            *train,
            epochs=epochs,
            batch_size=batch_size,
            generator=torch.Generator().manual_seed(seed),
            end_of_epoch=end_of_epoch,
        )
    finally:
        bar.close()
    history.steps = loop.records
    history.interrupted, history.process_lost = loop.interrupted, loop.process_lost
    if loop.diverged_at_step is not None:
        history.diverged_at_step = loop.records[-1].step
    history.seconds_manual = pair.seconds_manual
    history.seconds_autograd = pair.seconds_autograd
    return history


def progress_summary(row: dict[str, float], pair: SideBySide) -> str:
    """One progress line: both runs' losses, the largest gradient difference at the same
    parameters so far (the verdict), and once the two runs have parted, their drift."""
    agreement = pair.agreement
    parts = [
        f"train loss {row['train_loss_manual']:.4g} (autograd {row['train_loss_autograd']:.4g})"
    ]
    if "test_loss_manual" in row:
        parts.append(f"test loss {row['test_loss_manual']:.4g}")
    parts.append(f"max grad diff {agreement.max_rel_grad_diff:.1e}")
    if agreement.drift.parted_at_step is not None:
        parts.append(f"runs' drift {agreement.drift.max_rel_grad_diff:.1e}")
    return ", ".join(parts)


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run torch on `count` CPU threads inside the block (None: torch's default), then restore.

    Small networks run faster on one: their matrices are too small to share out, and on a busy
    machine the threads wait for each other.
    """
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
