"""The benchmark: the hand-written model's speed and memory against autograd and scikit-learn.

    python -m bpdemo.bench [--out DIR] [--quick] [--threads N] [--ames CSV]

The hand-written model is meant to be used as well as read, so the benchmark measures what a user
waits for and what the machine must hold, against the same network trained by autograd and by
scikit-learn: side by side in one process, interleaved, with medians over repeats (the machine may be
shared and noisy: the ratios are the numbers to read):

- `steps.py`: the step time (forward, backward, update) of the four benchmark networks, tiny to large;
  the large step's rate against the rate of its own matrix products; step time against batch size and
  width; the peak memory of a large training step.
- `cnn.py`: a CIFAR-sized convolutional step (batch 128, 3×32×32, two convolutions), its time and
  peak memory against autograd's, and where each goes.
- `end_to_end.py`: the time to train to scikit-learn's test score on the digits (and on the Ames
  houses, given their CSV), against `MLPClassifier` / `MLPRegressor`.
- `summary.py`: the goals and the printed table. The figure is `bpdemo.plots.bench`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from bpdemo.bench import cnn, end_to_end, steps, summary, timing
from bpdemo.infra import interruption


@dataclass(frozen=True)
class Settings:
    """How much to measure. `FULL` is the default; `QUICK` (`--quick`) is a smoke run under a minute."""

    quick: bool
    repeats: int  # interleaved repeats of each step-time measurement
    min_block_seconds: float  # a timed block of calls lasts at least this long
    batch_sizes: tuple[int, ...]
    widths: tuple[int, ...]
    race_repeats: int  # seeds each model trains from in the end-to-end races
    max_epochs: int  # an end-to-end training that has not reached the target by then stops
    sklearn_max_iter: int = 200  # for the scikit-learn fit that sets the target: its default
    memory_steps: int = 3


FULL = Settings(
    quick=False,
    repeats=11,
    min_block_seconds=0.2,
    batch_sizes=(1, 4, 16, 64, 256, 1024, 4096),
    widths=(16, 32, 64, 128, 256, 512, 1024),
    race_repeats=5,
    max_epochs=1000,
)
QUICK = Settings(
    quick=True,
    repeats=3,
    min_block_seconds=0.02,
    batch_sizes=(1, 64, 4096),
    widths=(32, 256, 1024),
    race_repeats=1,
    max_epochs=400,
)


def run(
    settings: Settings = FULL,
    ames_csv: Path | end_to_end.Problem | None = None,
    progress: Callable[[str], None] | None = None,
    results: dict | None = None,
) -> dict:
    """Measure everything; returns the results `bench.json` holds (see `summary` for the goals).

    ames_csv: the Ames sales for the regression race (the CSV, or the `Problem` read from it); None
    skips it (`bench.json` says why). results: the dict to fill, part by part as each is measured
    (so that an interrupted run keeps what it measured); a new one if None.
    """
    started = time.perf_counter()

    def say(message: str, phase: str) -> None:
        interruption.set_phase(phase)
        if progress is not None:
            progress(f"[{time.perf_counter() - started:5.1f} s] {message}")

    results = {} if results is None else results
    results.update(
        {
            "quick": settings.quick,
            "settings": asdict(settings),
            "machine": timing.machine(),
            "torch_version": torch.__version__,
            "threads": torch.get_num_threads(),
            "load_average": {"before": timing.load_average()},
        }
    )

    rows = []
    for case in steps.CASES:
        say(f"step time: {case.name} ({case.network}, batch {case.batch})", "step time")
        extra = {}
        if case is steps.LARGE:
            products, flop = steps.matmul_products(case)
            extra["matmul"] = products
        rows.append(steps.step_time(case, settings.repeats, settings.min_block_seconds, extra))
    results["matmul"] = steps.matmul_fraction(rows[-1], flop)
    results["matmul_fraction"] = results["matmul"]["manual_fraction"]
    results["step_time"] = [_microseconds(row) for row in rows]

    say("scaling: step time against batch size and width", "scaling")
    results["scaling"] = steps.scaling(
        list(settings.batch_sizes),
        list(settings.widths),
        settings.repeats,
        settings.min_block_seconds,
    )

    say("end to end: digits", "end to end")
    limits = {
        "repeats": settings.race_repeats,
        "max_epochs": settings.max_epochs,
        "sklearn_max_iter": settings.sklearn_max_iter,
    }
    races = results["end_to_end"] = {}
    races["digits"] = end_to_end.race(end_to_end.digits_problem(), **limits)
    if ames_csv is not None:
        say("end to end: Ames houses", "end to end")
        problem = ames_csv
        if not isinstance(problem, end_to_end.Problem):
            problem = end_to_end.ames_problem(Path(ames_csv))
        races["ames"] = end_to_end.race(problem, **limits)
    else:
        races["ames"] = {
            "skipped": f"no Ames sales CSV: give --ames CSV or set {end_to_end.AMES_ENV}"
        }

    say("peak memory of the large step", "memory")
    results["memory"] = steps.peak_memory(steps.LARGE, settings.memory_steps)

    say(f"CNN step: batch {cnn.BATCH}, {cnn.NETWORK}", "cnn")
    results["cnn"] = cnn.run(settings.repeats, settings.min_block_seconds, settings.memory_steps)

    results["load_average"]["after"] = timing.load_average()
    results["goals"] = summary.goals(results)
    results["seconds"] = time.perf_counter() - started
    return results


def _microseconds(row: dict) -> dict:
    """A step-time row for bench.json: its per-repeat seconds as microseconds, by contender."""
    row = dict(row)
    row["repeats_us"] = {
        name: [s * 1e6 for s in values] for name, values in row.pop("seconds").items()
    }
    return row


def print_progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)
