"""Which process of a command speaks for it: the only one outside a data-parallel run, rank 0 inside one.

torchrun and `--processes` give every process they start its `RANK` before it begins, so the answer
is known from the first line of a command, before torch is loaded or a process group is joined (an
error in the arguments, a Ctrl-C while Python is still starting). This module imports nothing else,
so that `bpdemo.infra.interruption` can ask while torch is still loading.
"""

from __future__ import annotations

import os


def is_rank_zero() -> bool:
    """Whether this process prints and writes for the command: any process outside a data-parallel
    run, rank 0 inside one (its `RANK`, as torchrun and `--processes` set it)."""
    return os.environ.get("RANK", "0") == "0"
