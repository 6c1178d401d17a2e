"""A CIFAR-sized convolutional training step, hand-written against autograd: time, peak memory, and
where each goes.

The network: 3×32×32 images in batches of 128, conv 3→32 3×3 padding 1, ReLU, max pool 2, conv
32→64 3×3 padding 1, ReLU, max pool 2, linear to 10, cross-entropy, Adam; float32 on the CPU. The
hand-written convolution is a matrix product over unfolded patches (`bpdemo.conv`); autograd's calls
torch's own convolution kernels (oneDNN on most CPUs), which never lay the patches out whole. Where
the hand-written step's time goes is measured layer by layer (each forward and backward timed on its
own); where its memory goes is read from what its layers keep for the backward pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from bpdemo.autograd_mlp import twin_of
from bpdemo.bench.steps import MIB, _profiled_peak, _storages, training_step
from bpdemo.bench.timing import interleaved, median
from bpdemo.layers import ManualSequential
from bpdemo.optim import OptimizerSpec
from bpdemo.spec import NetworkSpec

DTYPE = torch.float32
BATCH = 128
IMAGE = (3, 32, 32)
LAYERS = (
    {"type": "conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1},
    {"type": "activation", "name": "relu"},
    {"type": "maxpool2d", "kernel_size": 2},
    {"type": "conv2d", "out_channels": 64, "kernel_size": 3, "padding": 1},
    {"type": "activation", "name": "relu"},
    {"type": "maxpool2d", "kernel_size": 2},
    {"type": "flatten"},
    {"type": "linear", "units": 10},
)
NETWORK = "conv 3→32 3×3 p1, relu, maxpool 2, conv 32→64 3×3 p1, relu, maxpool 2, linear→10"
GOAL = 1.5  # hand-written / autograd, in time and in peak memory


def spec() -> NetworkSpec:
    return NetworkSpec(
        inputs=IMAGE[0] * IMAGE[1] * IMAGE[2],
        layers=[dict(entry) for entry in LAYERS],
        loss="cross_entropy",
        seed=0,
        dtype=DTYPE,
        input_shape=IMAGE,
    )


def data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A random batch: images as rows (128, 3072) and class labels (128,)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(BATCH, IMAGE[0] * IMAGE[1] * IMAGE[2], generator=generator, dtype=DTYPE)
    return x, torch.randint(0, 10, (BATCH,), generator=generator)


def model_and_optimizer(hand_written: bool):
    """(model, optimizer): the hand-written CNN and its Adam, or its autograd twin and torch's Adam."""
    optimizer = OptimizerSpec(name="adam", lr=1e-3)
    manual = ManualSequential(spec())
    if hand_written:
        return manual, optimizer.manual(manual)
    twin = twin_of(manual)
    return twin, optimizer.torch(twin)


def layer_times(repeats: int = 5) -> list[dict]:
    """Median seconds of each hand-written layer's forward and backward on the benchmark batch."""
    model, _ = model_and_optimizer(True)
    x, y = data()
    model.loss_and_grads(x, y)  # warm up, and fill every cache
    names = [entry["type"] for entry in model.spec.layers]
    inputs, grads = [], []
    with torch.no_grad():
        h = x.reshape(BATCH, *IMAGE)
        for layer in model.layers:
            inputs.append(h)
            h = layer.forward(h)
        grad = model.loss_fn.gradient(h, y)
        for layer in reversed(model.layers):
            grads.append(grad)
            grad = layer.backward(grad)
    grads.reverse()
    rows = []
    with torch.no_grad():
        for index, layer in enumerate(model.layers):
            forward = _median_seconds(
                lambda layer=layer, i=index: layer.forward(inputs[i]), repeats
            )
            layer.forward(inputs[index])  # its cache again, for its backward
            backward = _median_seconds(
                lambda layer=layer, i=index: layer.backward(grads[i], input_grad=i > 0), repeats
            )
            rows.append(
                {"layer": index, "type": names[index], "forward_s": forward, "backward_s": backward}
            )
    return rows


def _median_seconds(function: Callable[[], object], repeats: int) -> float:
    values = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        values.append(time.perf_counter() - start)
    return median(values)


def kept_bytes(model: ManualSequential) -> dict[str, int]:
    """Bytes the hand-written layers keep for the backward pass, by what they are."""
    patches = _storages(getattr(layer, "patches", None) for layer in model.layers)
    indices = _storages(getattr(layer, "argmax", None) for layer in model.layers)
    return {"patches": sum(patches.values()), "max_indices": sum(indices.values())}


def run(repeats: int, min_block_seconds: float, memory_steps: int = 2) -> dict:
    """Step time (interleaved medians), peak memory of both models, and where each goes."""
    x, y = data()
    steps = {
        name: training_step(*model_and_optimizer(name == "manual"), x, y)
        for name in ("manual", "autograd")
    }
    seconds = interleaved(steps, repeats, min_block_seconds)
    medians = {name: median(values) for name, values in seconds.items()}
    built = {}

    def builder(name: str):
        def build():
            model, optimizer = model_and_optimizer(name == "manual")
            built[name] = model
            return training_step(model, optimizer, x, y)

        return build

    memory = {}
    for name in ("manual", "autograd"):
        peak, _ = _profiled_peak(builder(name), memory_steps)
        memory[f"{name}_mb"] = peak / MIB
    layers = layer_times(repeats)
    kept = kept_bytes(built["manual"])
    return {
        "network": NETWORK,
        "batch": BATCH,
        "image": list(IMAGE),
        "repeats": repeats,
        "manual_ms": medians["manual"] * 1e3,
        "autograd_ms": medians["autograd"] * 1e3,
        "time_ratio": medians["manual"] / medians["autograd"],
        **memory,
        "memory_ratio": memory["manual_mb"] / memory["autograd_mb"],
        "memory_steps": memory_steps,
        "patches_mb": kept["patches"] / MIB,
        "max_indices_mb": kept["max_indices"] / MIB,
        "layers": layers,
        "goal": GOAL,
    }


def where_memory_goes(result: dict) -> str:
    """What the hand-written step holds that autograd's does not."""
    return (
        f"the patches its two convolutions keep for their backward, {result['patches_mb']:.1f} MiB "
        f"(unfold copies each pixel kh·kw = 9 times), and as much again while the second one's "
        f"Wᵀ·δ is folded back; autograd's convolution keeps only its input and never lays the "
        f"patches out"
    )


def where_time_goes(result: dict, top: int = 3) -> str:
    """The hand-written step's largest parts, by share of its layers' summed time."""
    parts = []
    for row in result["layers"]:
        label = f"layer {row['layer']} {row['type']}"
        parts += [(row["forward_s"], f"{label} forward"), (row["backward_s"], f"{label} backward")]
    total = sum(seconds for seconds, _ in parts)
    largest = sorted(parts, reverse=True)[:top]
    return ", ".join(f"{name} {100 * seconds / total:.0f} %" for seconds, name in largest)
