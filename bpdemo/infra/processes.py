"""The processes of a data-parallel command: starting them, joining torchrun's group, rank 0 first.

`launch_local` starts a command's N processes on this computer (`--processes N`) and waits for them;
`process_group` joins the group torchrun (or `launch_local`) set up, for one command's run;
`rank_zero_first` lets rank 0 do a thing before the others (a download into a shared cache) and
`from_rank_zero` gives every rank rank 0's answer. Which process speaks is `bpdemo.infra.ranks`.

A process of the run that ends before the others (killed, or out of memory) breaks the group: the
others find its connection closed at their next collective operation (`lost_process`). They stop as
an interruption stops them, keeping what they finished (`ProcessLost`), and the command exits 1.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import torch
import torch.distributed as dist

from bpdemo.infra import interruption
from bpdemo.infra.errors import RunError, UsageError
from bpdemo.infra.ranks import is_rank_zero
from bpdemo.spec import resolve_device

TORCHRUN_HINT = "torchrun --standalone --nproc_per_node=2 -m demos.images --distributed"
# What the transports of torch.distributed name in the errors of a group that lost a process.
_TRANSPORTS = re.compile(r"gloo|nccl", re.IGNORECASE)


class StoppedWithRankZero(UsageError):
    """A rank other than 0 stops because rank 0 stopped (rank 0 says why, in one line)."""


class ProcessLost(interruption.Interrupted):
    """Another process of this data-parallel run ended before it: this one stopped in `phase`, as an
    interruption stops it (what it finished is kept), and the command exits with status 1."""

    def __init__(self, phase: str, detail: str = ""):
        super().__init__(0, phase, detail)  # no signal reached this process

    @property
    def exit_status(self) -> int:
        return 1

    def describe(self) -> str:
        """`stopped after 2 of 10 epochs (another process of the run ended, during training)`."""
        detail = f" {self.detail}" if self.detail else ""
        return f"stopped{detail} (another process of the run ended, during {self.phase})"

    def marks(self) -> dict[str, object]:
        """What the run's metrics.json adds: interrupted, where, and why (no signal: a lost process)."""
        return {"interrupted": True, "phase": self.phase, "signal": None, "process_lost": True}


def lost_process(error: BaseException) -> bool:
    """Whether `error` is this process finding its group broken: a collective operation of a joined
    group that failed in its transport (another process's connection closed, reset or timed out)."""
    return (
        isinstance(error, RuntimeError)
        and dist.is_available()
        and dist.is_initialized()
        and (isinstance(error, dist.DistError) or bool(_TRANSPORTS.search(str(error))))
    )


# -- one process among several ---------------------------------------------------------------------------
@contextmanager
def process_group(distributed: bool, device: str) -> Iterator[str]:
    """With `distributed`, join torchrun's process group for the block and leave it after.

    Yields the device this process should use: `device` itself, or with `distributed` this rank's
    own GPU (see `rank_device`).
    """
    if not distributed:
        yield device
        return
    rank = rank_device(resolve_device(device))
    init_from_torchrun(rank)
    try:
        yield str(rank)
    finally:
        leave_process_group()


def init_from_torchrun(device: torch.device) -> None:
    """Join the process group that torchrun set up (gloo on the CPU, nccl on GPUs)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise UsageError(f"--distributed needs to be started by torchrun, e.g. {TORCHRUN_HINT}")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def rank_device(device: torch.device) -> torch.device:
    """`cuda` without an index becomes `cuda:LOCAL_RANK`, so each rank on a machine has its own GPU."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device


def leave_process_group() -> None:
    """Leave the process group, if this process joined one (a group that lost a process, too)."""
    if dist.is_initialized():
        with suppress(RuntimeError):  # the run's own error says what went wrong
            dist.destroy_process_group()


@contextmanager
def rank_zero_first() -> Iterator[None]:
    """Run the body on rank 0 first, then on the other ranks (e.g. a download into a shared cache).

    Outside a distributed run it just runs the body. If rank 0 fails inside (a data folder that is
    not there), the others learn of it and stop quietly with the same exit status, rather than
    waiting for it, or failing on a connection it closed.
    """
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        yield
        return
    if is_rank_zero():
        try:
            yield
        except BaseException as error:
            from_rank_zero(getattr(error, "exit_status", 1))  # the others stop too
            raise
        from_rank_zero(None)
        return
    status = from_rank_zero(None)  # rank 0's outcome: None when it went well
    if status is not None:
        raise stopped_with_rank_zero(status)
    yield


def stopped_with_rank_zero(status: int) -> StoppedWithRankZero:
    """What a rank other than 0 raises to stop with rank 0's exit `status`."""
    stop = StoppedWithRankZero("rank 0 stopped")
    stop.exit_status = status
    return stop


def from_rank_zero(value: Any) -> Any:
    """Rank 0's `value` (any picklable object) on every rank; `value` itself outside a distributed run."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# -- starting the processes ------------------------------------------------------------------------------
GRACE_SECONDS = (
    30.0  # as torchrun's agent: how long the others have to stop once one process failed
)


def launch_local(module: str, argv: list[str], processes: int, flag: str = "--processes") -> int:
    """Run `python -m module *argv --distributed` on `processes` local processes, as torchrun would
    start them, and return the command's exit status: rank 0's, or the first non-zero one. `flag`
    (the option that asked for this, with its value) is left out of the processes' arguments.

    The processes meet on a free port of this computer's loopback interface (gloo). Every rank
    checks its config and data; only rank 0 prints an error, so a mistake is one line, with the
    usual exit status 2. Ctrl-C reaches every process (they share the terminal); each stops, rank 0
    keeps what was finished and says so, and this waits for them all.

    A process that fails leaves the others a group they cannot go on with. They find out at their
    next collective operation and stop, rank 0 keeping what it finished (`ProcessLost`); any still
    running `GRACE_SECONDS` later (one that waits for the group to form) is sent SIGTERM, and after
    as long again SIGKILL. A process that a signal ended (`kill -9`) makes the command a `RunError`
    with exit status 128 + the signal, unless rank 0 ended on its own and has said why.
    """
    with socket.socket() as probe:  # a port that is free now, for the processes to meet on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = list(argv)
    for i, word in enumerate(argv):
        if word == flag:
            del argv[i : i + 2]
            break
        if word.startswith(f"{flag}="):
            del argv[i]
            break
    command = [sys.executable, "-m", module, *argv, "--distributed"]
    children = []
    for rank in range(processes):
        environment = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(processes),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
        environment.setdefault("GLOO_SOCKET_IFNAME", "lo")
        children.append(subprocess.Popen(command, env=environment))
    first_failed = _wait_for_all(children)
    statuses = [child.returncode for child in children]
    if statuses[0] > 0:  # rank 0 ended on its own, and has said why
        return statuses[0]
    if first_failed is not None and statuses[first_failed] < 0:
        how = signal.Signals(-statuses[first_failed]).name
        error = RunError(
            f"process {first_failed + 1} of {processes} (rank {first_failed}) was ended by {how}"
        )
        error.exit_status = 128 - statuses[first_failed]
        raise error
    return next((status for status in statuses if status != 0), 0)


def _wait_for_all(children: list[subprocess.Popen]) -> int | None:
    """Wait until every child has ended; returns the rank of the first that failed, if one did.

    Once one failed, those still running after `GRACE_SECONDS` are sent SIGTERM, then SIGKILL.
    A kill of this process is passed on to them (Ctrl-C reaches them from the terminal itself).
    """
    first_failed, deadline, stops = None, None, [signal.SIGTERM, signal.SIGKILL]
    while True:
        try:
            statuses = [child.poll() for child in children]
            if None not in statuses:
                return first_failed
            if first_failed is None and any(statuses):
                first_failed = next(rank for rank, status in enumerate(statuses) if status)
                deadline = time.monotonic() + GRACE_SECONDS
            if deadline is not None and time.monotonic() > deadline and stops:
                _send(children, stops.pop(0))
                deadline += GRACE_SECONDS
            time.sleep(0.05)
        except KeyboardInterrupt as error:
            signum = interruption.as_interrupted(error).signum
            if signum != signal.SIGINT:
                _send(children, signum)


def _send(children: list[subprocess.Popen], signum: int) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signum)
