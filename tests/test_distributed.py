"""Data-parallel training on 2 gloo processes equals single-process training on the same batches.

The processes meet through a file in tmp_path and talk over the loopback interface only.
"""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bpdemo import MLPSpec, OptimizerSpec, SideBySide
from bpdemo.distributed import DistributedSideBySide, shard_rows, shard_weight
from tests.conftest import targets_for

STEPS = 6
BATCH_ROWS = [10, 10, 7, 10, 7, 1]  # 7 rows split 4 + 3, and 1 row leaves one rank empty


def spec_for(loss: str) -> MLPSpec:
    sizes = [4, 6, 3] if loss == "cross_entropy" else [4, 6, 2]
    return MLPSpec(sizes, ["tanh", "identity"], loss=loss, seed=5, dtype="float64")


OPTIMIZER = OptimizerSpec(name="adam", lr=0.05, weight_decay=0.01)


def global_batches(spec: MLPSpec):
    generator = torch.Generator().manual_seed(11)
    for rows in BATCH_ROWS:
        x = torch.randn(rows, spec.sizes[0], generator=generator, dtype=torch.float64)
        yield x, targets_for(spec.loss, rows, spec.sizes[-1], generator)


def train(pair: SideBySide):
    losses = [
        (record.loss_manual, record.loss_autograd)
        for record in (pair.step(x, y) for x, y in global_batches(pair.spec))
    ]
    return losses, pair.manual.state_dict(), pair.autograd.state_dict(), pair.agreement.as_dict()


LOSSES = ["cross_entropy", "mse", "half_sse"]  # a mean loss with labels, a mean and a sum loss


def worker(rank: int, world_size: int, rendezvous: str, results: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world_size
    )
    try:
        outcome = {loss: train(DistributedSideBySide(spec_for(loss), OPTIMIZER)) for loss in LOSSES}
        apart = DistributedSideBySide(spec_for("cross_entropy"), OPTIMIZER)
        with torch.no_grad():  # every rank's autograd run starts a hair away: the runs drift
            next(apart.autograd.parameters()).add_(1e-9)
        outcome["apart"] = train(apart)
        torch.save(outcome, f"{results}.{rank}")
    finally:
        dist.destroy_process_group()


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory):
    """Rank 0's and rank 1's (losses, manual weights, autograd weights, agreement) for every loss."""
    folder = tmp_path_factory.mktemp("distributed")
    previous = os.environ.get("GLOO_SOCKET_IFNAME")
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # loopback only
    try:
        mp.spawn(worker, args=(2, str(folder / "rendezvous"), str(folder / "out")), nprocs=2)
    finally:
        if previous is None:
            del os.environ["GLOO_SOCKET_IFNAME"]
        else:
            os.environ["GLOO_SOCKET_IFNAME"] = previous
    return [torch.load(folder / f"out.{rank}") for rank in range(2)]


@pytest.mark.parametrize("loss", LOSSES)
def test_two_gloo_processes_follow_the_single_process_run(distributed_results, loss):
    single_losses, single_manual, single_autograd, _ = train(SideBySide(spec_for(loss), OPTIMIZER))
    for results in distributed_results:
        losses, manual, autograd, _ = results[loss]
        for (lm, la), (sm, sa) in zip(losses, single_losses, strict=True):
            assert lm == pytest.approx(sm, rel=1e-12) and la == pytest.approx(sa, rel=1e-12)
        for name, expected in single_manual.items():
            assert relative(manual[name], expected) <= 1e-12, name
            assert relative(autograd[name], single_autograd[name]) <= 1e-12, name
    moved = max(
        float((p - spec_for(loss).initial_parameters()[n]).abs().max())
        for n, p in single_manual.items()
    )
    assert moved > 0.05


@pytest.mark.parametrize("loss", [*LOSSES, "apart"])
def test_every_rank_checks_the_full_batch_gradient_at_the_hand_written_parameters(
    distributed_results, loss
):
    first, second = (results[loss][3] for results in distributed_results)
    assert first == second  # the ranks decide together whether the check needs its own pass
    assert first["within_tolerance"] and first["max_rel_grad_diff"] <= 1e-10
    if loss == "apart":  # the check had its own pass at every step, the runs drifted
        assert first["drift"]["parted_at_step"] == 1
        assert first["drift"]["max_rel_grad_diff"] > 1e-10


def test_shards_cover_the_batch_once_and_differ_by_at_most_one_row():
    for rows in range(0, 12):
        for world in (1, 2, 3, 5):
            shards = [shard_rows(rows, r, world) for r in range(world)]
            covered = [i for s in shards for i in range(rows)[s]]
            assert covered == list(range(rows))
            sizes = [len(range(rows)[s]) for s in shards]
            assert max(sizes) - min(sizes) <= 1


def test_shard_weights_make_the_full_batch_gradient():
    assert shard_weight("mse", 4, 7) == pytest.approx(4 / 7)
    assert shard_weight("cross_entropy", 3, 7) == pytest.approx(3 / 7)
    assert shard_weight("sse", 3, 7) == 1.0


def test_without_torchrun_distributed_is_a_clear_error(monkeypatch):
    from bpdemo.infra.errors import UsageError
    from bpdemo.infra.processes import init_from_torchrun

    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UsageError, match="needs to be started by torchrun"):
        init_from_torchrun(torch.device("cpu"))
    assert "RANK" not in os.environ
