"""One training step (forward, backward, update), hand-written against autograd: time, rate, memory.

A step is where training spends its time, so this is where the hand-written model must hold its own:
its step is `loss_and_grads` then the hand-written optimizer's `step`; the autograd model's is its
`loss_and_grads` (zero the grads, forward, `loss.backward()`) then `torch.optim`'s `step`. Both are
built from one `MLPSpec` and one `OptimizerSpec`, in float32 on the CPU, and fed the same batch. The
rate of the step's own matrix products, run alone, is the ceiling a step can approach; the peak memory
shows what the hand-written model's cache and work tensors cost against autograd's saved tensors.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from bpdemo.autograd_mlp import AutogradMLP
from bpdemo.bench.timing import interleaved, median
from bpdemo.manual import ManualMLP
from bpdemo.optim import OptimizerSpec
from bpdemo.spec import MLPSpec

DTYPE = torch.float32
MIB = 2**20


@dataclass(frozen=True)
class Case:
    """A network, a batch size, and how it is trained."""

    name: str
    sizes: tuple[int, ...]
    batch: int
    hidden_activation: str = "relu"
    loss: str = "cross_entropy"
    optimizer: str = "adam"
    lr: float = 1e-3

    @property
    def network(self) -> str:
        return "-".join(str(s) for s in self.sizes)

    def spec(self) -> MLPSpec:
        activations = [self.hidden_activation] * (len(self.sizes) - 2) + ["identity"]
        return MLPSpec(list(self.sizes), activations, loss=self.loss, seed=0, dtype=DTYPE)

    def optimizer_spec(self) -> OptimizerSpec:
        return OptimizerSpec(name=self.optimizer, lr=self.lr)

    def data(self, seed: int = 0) -> tuple[Tensor, Tensor]:
        """A random batch: x (batch, inputs), and class labels (batch,) or targets (batch, outputs)."""
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(self.batch, self.sizes[0], generator=generator, dtype=DTYPE)
        if self.loss == "cross_entropy":
            return x, torch.randint(0, self.sizes[-1], (self.batch,), generator=generator)
        return x, torch.randn(self.batch, self.sizes[-1], generator=generator, dtype=DTYPE)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "sizes": list(self.sizes),
            "batch": self.batch,
            "hidden_activation": self.hidden_activation,
            "loss": self.loss,
            "optimizer": self.optimizer,
        }


# The four benchmark networks, tiny to large. tiny has the shape of the 3-2-1 example, with a sigmoid
# hidden layer, squared error and plain gradient descent; the others are classifiers with ReLU hidden
# layers, cross-entropy and Adam.
CASES = (
    Case("tiny", (3, 2, 1), 1, hidden_activation="sigmoid", loss="mse", optimizer="sgd", lr=0.1),
    Case("small", (64, 32, 10), 64),
    Case("medium", (784, 256, 128, 10), 256),
    Case("large", (784, 512, 512, 10), 4096),
)
LARGE = CASES[-1]


def model_and_optimizer(spec: MLPSpec, optimizer: OptimizerSpec, hand_written: bool):
    """(model, optimizer): `ManualMLP` and its hand-written optimizer, or `AutogradMLP` and torch.optim."""
    if hand_written:
        model = ManualMLP(spec)
        return model, optimizer.manual(model)
    model = AutogradMLP(spec)
    return model, optimizer.torch(model)


def training_step(model, optimizer, x: Tensor, y: Tensor) -> Callable[[], None]:
    """One training step on (x, y), as a function of nothing: loss and gradients, then the update."""

    def step() -> None:
        model.loss_and_grads(x, y)
        optimizer.step()

    return step


def case_step(case: Case, hand_written: bool) -> Callable[[], None]:
    """One training step of either model on `case`'s batch."""
    model, optimizer = model_and_optimizer(case.spec(), case.optimizer_spec(), hand_written)
    return training_step(model, optimizer, *case.data())


def step_time(case: Case, repeats: int, min_block_seconds: float, extra=None) -> dict:
    """Median seconds per step of both models on `case`, timed interleaved; `extra` contenders too."""
    functions = {
        "manual": case_step(case, hand_written=True),
        "autograd": case_step(case, hand_written=False),
        **(extra or {}),
    }
    seconds = interleaved(functions, repeats, min_block_seconds)
    medians = {name: median(values) for name, values in seconds.items()}
    return {
        **case.describe(),
        "manual_us": medians["manual"] * 1e6,
        "autograd_us": medians["autograd"] * 1e6,
        "ratio": medians["manual"] / medians["autograd"],
        "repeats": repeats,
        "seconds": seconds,
    }


# -- the matrix products of a step --------------------------------------------------------------------
def matmul_products(case: Case) -> tuple[Callable[[], None], float]:
    """The plain matrix products one training step of `case` does, and their floating-point operations.

    Per layer (N rows, `fan_in` -> `fan_out`): the forward product x W^T (N, fan_out), dL/dW = delta^T x
    (fan_out, fan_in) (BP4), and, above the first layer, dL/dx = delta W (N, fan_in) (BP2): each
    2·N·fan_in·fan_out operations. They are run with `torch.mm` into preallocated outputs, with the
    same transposed operands as the model, on random numbers: nothing else.
    """
    generator = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator, dtype=DTYPE)

    products: list[tuple[Tensor, Tensor, Tensor]] = []
    flop = 0.0
    rows = case.batch
    for layer, (fan_in, fan_out) in enumerate(zip(case.sizes[:-1], case.sizes[1:], strict=True)):
        x, weight, delta = rand(rows, fan_in), rand(fan_out, fan_in), rand(rows, fan_out)
        products.append((x, weight.t(), torch.empty(rows, fan_out, dtype=DTYPE)))
        products.append((delta.t(), x, torch.empty(fan_out, fan_in, dtype=DTYPE)))
        flop += 2 * (2.0 * rows * fan_in * fan_out)
        if layer > 0:
            products.append((delta, weight, torch.empty(rows, fan_in, dtype=DTYPE)))
            flop += 2.0 * rows * fan_in * fan_out

    def run() -> None:
        for left, right, out in products:
            torch.mm(left, right, out=out)

    return run, flop


def matmul_fraction(large_step: dict, flop: float) -> dict:
    """The large step's rate against the rate of its own matrix products, from one interleaved run."""
    matmul_us = median(large_step["seconds"]["matmul"]) * 1e6
    manual_gflops = flop / large_step["manual_us"] / 1e3
    autograd_gflops = flop / large_step["autograd_us"] / 1e3
    matmul_gflops = flop / matmul_us / 1e3
    return {
        "case": large_step["name"],
        "gflop_per_step": flop / 1e9,
        "matmul_us": matmul_us,
        "manual_gflops": manual_gflops,
        "autograd_gflops": autograd_gflops,
        "matmul_gflops": matmul_gflops,
        "manual_fraction": manual_gflops / matmul_gflops,
        "autograd_fraction": autograd_gflops / matmul_gflops,
    }


# -- scaling ------------------------------------------------------------------------------------------
def scaling(
    batch_sizes: list[int],
    widths: list[int],
    repeats: int,
    min_block_seconds: float,
    batch_network: tuple[int, ...] = (784, 256, 128, 10),
    width_batch: int = 256,
) -> dict:
    """Step time against batch size (on `batch_network`) and against hidden width ([784, w, w, 10])."""
    by_batch = [
        step_time(Case(f"batch {n}", batch_network, n), repeats, min_block_seconds)
        for n in batch_sizes
    ]
    by_width = [
        step_time(Case(f"width {w}", (784, w, w, 10), width_batch), repeats, min_block_seconds)
        for w in widths
    ]
    return {
        "batch": {
            "sizes": list(batch_network),
            "batch_sizes": list(batch_sizes),
            "manual_us": [r["manual_us"] for r in by_batch],
            "autograd_us": [r["autograd_us"] for r in by_batch],
            "ratio": [r["ratio"] for r in by_batch],
        },
        "width": {
            "sizes": "784-w-w-10",
            "batch": width_batch,
            "widths": list(widths),
            "manual_us": [r["manual_us"] for r in by_width],
            "autograd_us": [r["autograd_us"] for r in by_width],
            "ratio": [r["ratio"] for r in by_width],
        },
        "repeats": repeats,
    }


# -- peak memory --------------------------------------------------------------------------------------
def peak_memory(case: Case = LARGE, steps: int = 3) -> dict:
    """Peak tensor memory of building each model and training it for `steps` steps, in MiB.

    Measured with torch's profiler (`profile_memory=True`), which records every allocation and free of
    torch's CPU allocator: the number is the largest net amount of tensor memory (allocations minus
    frees) held at any moment from building the model to the end of its last step: parameters,
    gradients, optimizer state, the hand-written model's cache and work tensors, autograd's saved
    tensors, and every temporary. The batch itself is allocated before and is not counted, for either
    model. Memory outside torch's allocator (Python objects, the BLAS library's own work space) is not
    seen. For the hand-written model it also says what its last pass holds: the cache
    (`manual_cache_mb`) and the work tensors beyond the cache (`manual_scratch_mb`).
    """
    x, y = case.data()
    built = {}

    def builder(name: str, hand_written: bool) -> Callable[[], Callable[[], None]]:
        def build() -> Callable[[], None]:
            model, optimizer = model_and_optimizer(case.spec(), case.optimizer_spec(), hand_written)
            built[name] = model
            return training_step(model, optimizer, x, y)

        return build

    result = {"case": case.name, "batch": case.batch, "steps": steps}
    for name, hand_written in (("manual", True), ("autograd", False)):
        peak, held = _profiled_peak(builder(name, hand_written), steps)
        result[f"{name}_mb"] = peak / MIB
        result[f"{name}_held_mb"] = held / MIB
    result["manual_cache_mb"] = cache_bytes(built["manual"]) / MIB
    result["manual_scratch_mb"] = scratch_bytes(built["manual"]) / MIB
    return result


def _storages(tensors: Iterable[Tensor | None]) -> dict[int, int]:
    """{address: bytes} of the memory under `tensors`, each block once (views share their base's)."""
    storages = (t.untyped_storage() for t in tensors if t is not None)
    return {storage.data_ptr(): storage.nbytes() for storage in storages}


def _cache(model: ManualMLP) -> dict[int, int]:
    tensors = ("pre_activation", "output", "grad_output", "delta")
    return _storages(getattr(layer, name) for layer in model.layers for name in tensors)


def cache_bytes(model: ManualMLP) -> int:
    """Bytes of the layers' cache of the last pass: z, a, dL/da and delta of every layer, each block of
    memory once (most are rows of the workspace; the input batch is the caller's and not counted)."""
    return sum(_cache(model).values())


def scratch_bytes(model: ManualMLP) -> int:
    """Bytes of the work tensors beyond the cache: the layers' workspace buffers that no cached tensor
    lies in (one an identity layer asks for but writes nothing to, rows kept for a larger batch)."""
    cached = _cache(model)
    work = _storages(b for layer in model.layers for b in layer.workspace.buffers.values())
    return sum(size for address, size in work.items() if address not in cached)


def _profiled_peak(build: Callable[[], Callable[[], None]], steps: int) -> tuple[int, int]:
    """(peak, held at the end) net bytes allocated while building a model and stepping it."""
    from torch.autograd.profiler import profile

    with _quiet_stderr(), profile(profile_memory=True) as profiler:
        step = build()
        for _ in range(steps):
            step()
    events = sorted(_allocations(profiler.kineto_results.experimental_event_tree()))
    held = peak = 0
    for _, size in events:
        held += size
        peak = max(peak, held)
    return peak, held


def _allocations(nodes) -> Iterator[tuple[int, int]]:
    """(time in ns, bytes: + allocated, - freed) of every allocation event under `nodes`."""
    stack = list(nodes)
    while stack:
        node = stack.pop()
        size = getattr(node.extra_fields, "alloc_size", None)
        if size is not None:
            yield node.start_time_ns, size
        stack.extend(node.children)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence the profiler library's own lines on stderr (start/stop notices, a GPU probe)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
