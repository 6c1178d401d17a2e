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
Starting the processes and joining their group is `bpdemo.infra.processes`.
"""

from __future__ import annotations

import time

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from bpdemo.compare import SideBySide
from bpdemo.functional import LOSSES


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
