"""Timing on a shared, noisy machine: interleaved repeats, medians, and what the machine was.

Every contender is timed in the same process, in blocks of calls long enough to dwarf the timer, and the
blocks are interleaved (A, B, B, A, A, B, ...) so that a burst of load from another process slows every
contender alike. The median over the repeats is the number reported; ratios are taken of medians.
"""

from __future__ import annotations

import gc
import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping

import torch


def calls_per_block(function: Callable[[], object], min_seconds: float) -> int:
    """How many calls of `function` make a timed block of at least `min_seconds` (at least 1)."""
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            function()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return calls
        # aim a little past the target, and never grow by more than 100x at once
        calls = max(
            calls + 1, min(calls * 100, int(calls * 1.2 * min_seconds / max(elapsed, 1e-9)))
        )


def interleaved(
    functions: Mapping[str, Callable[[], object]], repeats: int, min_block_seconds: float
) -> dict[str, list[float]]:
    """Seconds per call of each function, one value per repeat, measured interleaved.

    Each function is first warmed up (and its block length found) with `calls_per_block`; then each
    repeat times one block of every function, the order rotating from one repeat to the next and
    running backwards every other full rotation, so that each function goes first, last and in between
    equally often. The garbage collector is off inside a block, as `timeit` does.
    """
    names = list(functions)
    calls = {name: calls_per_block(functions[name], min_block_seconds) for name in names}
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        order = names[shift:] + names[:shift]
        if (repeat // len(names)) % 2:
            order.reverse()
        for name in order:
            function, count = functions[name], calls[name]
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                start = time.perf_counter()
                for _ in range(count):
                    function()
                elapsed = time.perf_counter() - start
            finally:
                if gc_was_enabled:
                    gc.enable()
            seconds[name].append(elapsed / count)
    return seconds


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> dict:
    """What the numbers were measured on: processor, cores, platform, library versions, load."""
    import numpy

    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        # read from its installed metadata: importing scikit-learn takes a second or two
        "sklearn": importlib.metadata.version("scikit-learn"),
        "torch_threads": torch.get_num_threads(),
        "blas": blas_name(),
    }


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_name() -> str:
    config = torch.__config__.show()
    if "Math Kernel Library" in config:
        return "MKL"
    if "OpenBLAS" in config:
        return "OpenBLAS"
    return "unknown"


def load_average() -> float | None:
    """The 1-minute load average (runnable processes); None where the system does not say."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
