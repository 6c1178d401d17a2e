"""Data-parallel training with `torch.distributed`: the same backprop, split across processes.

Every process (rank) sees the same global mini-batch, takes its own contiguous shard of the rows,
backpropagates that shard, and the ranks combine their gradients. For a loss that is a mean over the
batch, L = (1/N) sum_n l_n, and shards S_r of n_r rows,

    L = sum_r (n_r / N) L_r      so, the gradient being linear,      dL/dp = sum_r (n_r / N) dL_r/dp

which for equal shards is the plain average of the shard gradients (what `DistributedDataParallel`
computes). For a loss that is a sum (`sse`, `half_sse`) the weights are 1. So every rank ends the
step holding exactly the full-batch gradient (up to rounding), and the same update keeps all ranks'
weights identical.

The hand-written model weights its shard gradient by n_r / N and sums with `all_reduce`; the autograd
model runs under `DistributedDataParallel`, which averages over the W ranks during `backward()`, so its
shard loss is scaled by W * n_r / N first. Uneven shards (a last batch not divisible by W) stay exact.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from bpdemo.compare import SideBySide
from bpdemo.functional import LOSSES
from bpdemo.infra import interruption
from bpdemo.infra.errors import UsageError
from bpdemo.infra.outputs import FigureFormat, RunDir
from bpdemo.spec import resolve_device

TORCHRUN_HINT = "torchrun --standalone --nproc_per_node=2 -m demos.images --distributed"


def init_from_torchrun(device: torch.device) -> None:
    """Join the process group that torchrun set up (gloo on the CPU, nccl on GPUs)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise UsageError(f"--distributed needs to be started by torchrun, e.g. {TORCHRUN_HINT}")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def is_main_process() -> bool:
    """True outside distributed runs and on rank 0: the one process that prints and writes."""
    return not dist.is_initialized() or dist.get_rank() == 0


def shard_rows(rows: int, rank: int, world_size: int) -> slice:
    """The contiguous rows of a global batch that `rank` takes (sizes differ by at most one)."""
    base, extra = divmod(rows, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def shard_weight(loss: str, shard: int, total: int) -> float:
    """n_r / N for a mean loss, 1 for a sum loss: the shard's share of the full-batch gradient."""
    return 1.0 if LOSSES[loss].reduction == "sum" else shard / total


class DistributedSideBySide(SideBySide):
    """`SideBySide` across the ranks of an initialised process group; `step` takes the global batch.

    Every gradient it compares is the full batch's: each rank's shard gradient, weighted, summed over
    the ranks. The reference of the verdict (see `SideBySide`) is sharded the same way, so that a
    dropout layer draws the same masks in it as in the hand-written model.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        device_ids = [self.spec.device.index or 0] if self.spec.device.type == "cuda" else None
        self.ddp = DistributedDataParallel(self.autograd, device_ids=device_ids)

    def shard(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor, float]:
        """This rank's rows of the global batch, and their weight in the full-batch gradient."""
        rows = shard_rows(len(x), self.rank, self.world_size)
        x_shard, target_shard = x[rows], target[rows]
        return x_shard, target_shard, shard_weight(self.spec.loss, len(x_shard), len(x))

    def gradients(self, x: Tensor, target: Tensor) -> tuple[Tensor, dict, Tensor, dict]:
        x_shard, target_shard, weight = self.shard(x, target)
        shard = len(x_shard)

        self._shard_weight = weight if shard else 0.0
        start = time.perf_counter()
        if shard:
            loss_m, grads_m = self.manual.loss_and_grads(x_shard, target_shard)
        else:  # fewer rows than ranks: this rank adds nothing
            loss_m, grads_m = (
                torch.zeros((), dtype=self.spec.dtype),
                dict(self.manual.named_grads()),
            )
            for grad in grads_m.values():
                grad.zero_()
        for grad in grads_m.values():
            grad.mul_(weight)
            dist.all_reduce(grad)  # sum over ranks of (n_r / N) dL_r/dp = dL/dp
        loss_m = all_reduce_sum(loss_m * weight)
        middle = time.perf_counter()

        self.autograd.zero_grad(set_to_none=True)
        output = self.ddp(x_shard)
        loss_a = self.autograd.loss(output, target_shard) if shard else output.sum() * 0
        (loss_a * (weight * self.world_size)).backward()  # DDP divides the summed gradient by W
        loss_a = all_reduce_sum(loss_a.detach() * weight)
        grads_a = {name: p.grad for name, p in self.autograd.named_parameters()}
        self.seconds_manual += middle - start
        self.seconds_autograd += time.perf_counter() - middle
        return loss_m, grads_m, loss_a, grads_a

    def runs_identical(self) -> bool:
        """True when the two runs are identical on every rank: the ranks decide together, since
        the reference's gradients are summed over them."""
        flag = torch.tensor(float(super().runs_identical()), device=self.spec.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag)

    def reference_gradients(self, x: Tensor, target: Tensor) -> tuple[Tensor, dict]:
        """The reference's full-batch loss and gradients: its shard's, weighted, summed over ranks."""
        x_shard, target_shard, weight = self.shard(x, target)
        if len(x_shard):
            loss, grads = super().reference_gradients(x_shard, target_shard)
        else:  # fewer rows than ranks: this rank adds nothing
            loss = torch.zeros((), dtype=self.spec.dtype, device=self.spec.device)
            grads = {n: torch.zeros_like(p) for n, p in self.reference.named_parameters()}
        for grad in grads.values():
            grad.mul_(weight)
            dist.all_reduce(grad)
        return all_reduce_sum(loss * weight), grads

    @torch.no_grad()
    def gradient_scales(self) -> dict[str, Tensor]:
        """The full batch's S: each rank's shard S weighted as its gradient was, summed over ranks."""
        if self._shard_weight:
            scales = super().gradient_scales()
        else:  # this rank's shard was empty: it added no terms (and its cache is stale)
            scales = {name: torch.zeros_like(p) for name, p in self.manual.named_parameters()}
        for scale in scales.values():
            scale.mul_(self._shard_weight)
            dist.all_reduce(scale)
        return scales


def all_reduce_sum(value: Tensor) -> Tensor:
    value = value.clone()
    dist.all_reduce(value)
    return value


# -- helpers for a demo that runs under torchrun ----------------------------------------------------------
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


def rank_device(device: torch.device) -> torch.device:
    """`cuda` without an index becomes `cuda:LOCAL_RANK`, so each rank on a machine has its own GPU."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device


class StoppedWithRankZero(UsageError):
    """A rank other than 0 stops because rank 0 stopped (rank 0 says why, in one line)."""


@contextmanager
def main_process_first():
    """Run the body on rank 0 first, then on the other ranks (e.g. a download into a shared cache).

    Outside a distributed run it just runs the body. If rank 0 fails inside (a data folder that is
    not there), the others learn of it and stop quietly with the same exit status, rather than
    waiting for it, or failing on a connection it closed.
    """
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        yield
        return
    if is_main_process():
        try:
            yield
        except BaseException as error:
            from_main_process(getattr(error, "exit_status", 1))  # the others stop too
            raise
        from_main_process(None)
        return
    status = from_main_process(None)  # rank 0's outcome: None when it went well
    if status is not None:
        stop = StoppedWithRankZero("rank 0 stopped")
        stop.exit_status = status
        raise stop
    yield


def from_main_process(value: Any) -> Any:
    """Rank 0's `value` (any picklable object) on every rank; `value` itself outside a distributed run."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def prepare_run_dir(
    out: str | None, demo: str, force: bool, figures: FigureFormat | None = None
) -> tuple[RunDir | None, bool]:
    """(the output folder, made by rank 0 only; whether rank 0 could make it), on every rank.

    Rank 0 raises the `UsageError` if not; the other ranks learn of it and stop quietly.
    Outside a distributed run this is `RunDir.prepare`.
    """
    run, failure = None, None
    if is_main_process():
        try:
            run = RunDir.prepare(out, demo, force, figures=figures)
        except UsageError as error:
            failure = error
    failed = from_main_process(failure is not None)
    if failure is not None:
        raise failure
    return run, not failed


def leave_process_group() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def launch_local(module: str, argv: list[str], processes: int, flag: str = "--processes") -> int:
    """Run `python -m module *argv --distributed` on `processes` local processes, as torchrun would
    start them, and return the command's exit status: rank 0's, or the first non-zero one. `flag`
    (the option that asked for this, with its value) is left out of the processes' arguments.

    The processes meet on a free port of this computer's loopback interface (gloo). Every rank
    checks its config and data; only rank 0 prints an error, so a mistake is one line, with the
    usual exit status 2. Ctrl-C reaches every process (they share the terminal); each stops, rank 0
    keeps what was finished and says so, and this waits for them all.
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
    statuses: list[int] = []
    for child in children:
        while True:
            try:
                statuses.append(child.wait())
                break
            except KeyboardInterrupt as error:
                # Ctrl-C reached the children from the terminal; a kill of this process only,
                # not: pass it on. Then wait, so that they keep what they finished.
                signum = interruption.as_interrupted(error).signum
                if signum != signal.SIGINT:
                    for other in children:
                        if other.poll() is None:
                            other.send_signal(signum)
    failed = [status for status in statuses if status != 0]
    return statuses[0] if statuses[0] != 0 else (failed[0] if failed else 0)
