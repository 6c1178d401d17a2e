"""The network picture of a worked example: the numbers of one step, one sample and one phase.

`picture_state` picks them out of a run for `bpdemo.plots.network`, which draws them; `picture_name`
says which file each picture goes to (network.png is the step picture of `[picture] step`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor

from bpdemo.equations import fmt
from bpdemo.functional import LOSSES
from bpdemo.worked.schema import PHASES
from bpdemo.worked.trace import WorkedRun

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from bpdemo.plots.network import NetworkState


@contextmanager
def quiet_numerics() -> Iterator[None]:
    """Keep numpy's and matplotlib's warnings off stderr: the inf or NaN of a diverged step is said
    once, in the run's own message, not as a warning per number drawn."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def picture_name(phase: str, standardised: bool = False) -> str:
    """network.png, network_forward.png, ...; network_standardised[_phase].png for the twin run."""
    return (
        "network"
        + ("_standardised" if standardised else "")
        + ("" if phase == "step" else f"_{phase}")
        + ".png"
    )


def _array(tensor: Tensor) -> np.ndarray:
    return tensor.double().cpu().numpy()


def picture_step(run: WorkedRun, step: int | None = None) -> int:
    """The step a picture shows: `step`, or `[picture] step` (a step of the run, as the example
    checks; the last step run when the run stopped before it, diverged or interrupted)."""
    if step is None:
        return min(run.example.config.picture.step, max(run.steps_run, 1))
    kept = [values.step for values in run.steps]
    if run.step(step) is None:
        shown = ", ".join(map(str, kept[:10])) + (", …" if len(kept) > 10 else "")
        raise ValueError(
            f"step {step} is not in the trace (kept steps: {shown}); a run keeps about "
            "train.max_trace_steps steps, [picture] step and every claim's step"
        )
    return step


def picture_state(
    run: WorkedRun,
    step: int | None = None,
    phase: str = "step",
    sample: int | None = None,
    edge_labels: str | None = None,
) -> NetworkState:
    """The numbers the picture of `phase` at `step` shows for `sample` (defaults: [picture])."""
    from bpdemo.plots.network import NetworkState  # matplotlib, only when drawing

    if phase not in PHASES:
        raise ValueError(f"phase {phase!r} is not one of {', '.join(PHASES)}")
    config, example = run.example.config, run.example
    if not run.steps:
        raise ValueError("the run has no step to draw")
    number = picture_step(run, step)
    values = run.step(number) or run.steps[-1]
    sample = config.picture.sample if sample is None else sample
    if not 0 <= sample < len(example.inputs):
        raise ValueError(f"sample {sample} does not exist (0 to {len(example.inputs) - 1})")
    spec = example.spec
    if LOSSES[spec.loss].classification:
        label = int(example.targets[sample])
        names = config.labels.outputs
        target = [f"target: class {label}" + (f" ({names[label]})" if names else "")]
    else:
        from bpdemo.plots.network import short

        target = [f"target = {short(v)}" for v in example.targets[sample].tolist()]
    # The loss after the update: the next step's forward pass, or the final one after the last step.
    after = run.final if values.step == run.steps_run else run.step(values.step + 1)
    layers = range(spec.num_layers)
    rows = len(example.inputs)
    note = None
    if rows > 1:
        per_sample = {"step": "z and a", "forward": "z and a", "backward": "δ and ∂L/∂a"}
        note = (
            f"{per_sample[phase]}: sample {sample}; " if phase in per_sample else ""
        ) + f"the loss, the gradients and the update: all {rows} samples"
    title = config.title + (f" — {example.variant}" if config.data.standardise else "")
    if run.steps_run > 1:  # a run of one step has no other step to tell it from
        title += f", step {values.step}"
    title += f", sample {sample}" if len(example.inputs) > 1 else ""

    def biases(tensors: dict[str, Tensor]) -> list[np.ndarray] | None:
        # None for a network without biases: it has none, and its picture draws none.
        return [_array(tensors[f"layers.{i}.bias"]) for i in layers] if spec.bias else None

    return NetworkState(
        weights=[_array(values.params_before[f"layers.{i}.weight"]) for i in layers],
        biases=biases(values.params_before),
        grad_weights=[_array(values.grads[f"layers.{i}.weight"]) for i in layers],
        grad_biases=biases(values.grads),
        inputs=_array(example.inputs[sample]),
        pre_activations=[_array(z[sample]) for z in values.pre_activations],
        activations=[_array(a[sample]) for a in values.activations],
        activation_names=list(spec.activations),
        loss=values.loss,
        loss_name=spec.loss,
        targets=target,
        probabilities=(
            None if values.probabilities is None else _array(values.probabilities[sample])
        ),
        input_labels=config.labels.inputs,
        hidden_labels=config.labels.hidden,
        output_labels=config.labels.outputs,
        title=title,
        phase=phase,
        grad_activations=[_array(g[sample]) for g in values.grad_activations],
        deltas=[_array(d[sample]) for d in values.deltas],
        weights_after=[_array(values.params_after[f"layers.{i}.weight"]) for i in layers],
        biases_after=biases(values.params_after),
        biases_trained=example.optimizer.train_biases,
        weight_labels=config.labels.weights,
        bias_labels=config.labels.biases,
        loss_after=None if after is None else after.loss,
        edge_labels=config.picture.edge_labels if edge_labels is None else edge_labels,
        learning_rate=fmt(example.optimizer.lr),
        note=note,
    )


def network_figure(run: WorkedRun, **choices) -> Figure:
    """The picture of `run` as a matplotlib Figure (choices: those of `picture_state`)."""
    from bpdemo.plots.network import network_picture

    return network_picture(picture_state(run, **choices))
