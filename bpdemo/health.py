"""Gradient health: how the size of the gradient changes from layer to layer, and what cures it.

Backpropagation carries the error backwards one layer at a time (BP2, see `bpdemo.manual`):

    delta^l = (delta^(l+1) W^(l+1)) * f'(z^l)        and        dL/dW^l = (delta^l)^T a^(l-1)

so the error reaching the first layer of a network of depth L is the error at the output multiplied
by L - 1 Jacobians, each a weight matrix times the activation's slope f'(z). If each of them shrinks
the error (sigmoid'(z) <= 0.25, or small weights), the product vanishes exponentially with depth; if
each grows it (large weights), the product explodes. The cures: an activation whose slope is 1 where it
is active (relu, tanh near 0), an initialisation whose weights make up for the slope (`xavier` for
tanh, `he` for relu: its sqrt(2) makes up for relu zeroing half the units), and clipping the gradient's
global norm, which bounds every update even when the gradient is enormous.

For one `Setting` (activation, initialisation, depth) `study` builds the network (`MLPSpec` -> both
models through `SideBySide`), measures every layer's weight-gradient norm at initialisation with both
models, reads from the hand-written model's cache how much each layer's weights and activation slope
multiply the error on its way back, trains a short run with `fit`, reruns a diverged setting with
gradient clipping if it exploded, and says in plain words what happened (`classify`).

Verdicts, with the `Thresholds` r = ratio (10), tiny (0.01), huge (100) and blowup (1e6):
    exploding   the run exploded: its loss became inf or NaN, or rose above blowup x its first value;
                or the first layer's gradient is more than r times the last layer's (the gradient
                grows on its way back); or a layer's gradient is above huge;
    vanishing   every layer's gradient is below tiny, or the first layer's gradient is less than 1/r
                of the last layer's (it shrinks on its way back);
    healthy     otherwise.
The first/last ratio alone misses two cases. dL/dW^l = (delta^l)^T a^(l-1) carries the signal a^(l-1)
from the forward pass as well as the error delta^l from the backward pass. With relu or tanh and small
weights, each layer shrinks the signal on the way forward as much as the error on the way back, so
every layer's gradient is about equally tiny (ratio near 1, every norm near 1e-13); with large weights
both grow, and every layer's gradient is about equally huge. `tiny` and `huge` catch those: for this
study's loss (cross-entropy over 10 classes, about ln 10 = 2.3 at the start) a healthy layer's gradient
norm is between 0.1 and a few units.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any

import torch
from torch import Tensor

from bpdemo.compare import SideBySide
from bpdemo.gradcheck import rel_diff
from bpdemo.manual import ManualMLP
from bpdemo.optim import OptimizerSpec
from bpdemo.spec import MLPSpec, resolve_dtype
from bpdemo.train import History, fit

INITS = ("normal", "xavier", "he", "uniform", "large")
VERDICTS = ("vanishing", "exploding", "healthy")
LOSS = "cross_entropy"
# The largest slope each activation can have: sigmoid'(0) = 1/4, every other one at most 1.
MAX_SLOPE = {"sigmoid": 0.25, "tanh": 1.0, "relu": 1.0, "leaky_relu": 1.0, "softplus": 1.0}


# -- what is studied -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """One network of the grid: `depth` weight layers with `activation` between them, one init."""

    activation: str
    init: str
    depth: int

    @property
    def label(self) -> str:
        return f"{self.activation} / {self.init} / depth {self.depth}"


@dataclass(frozen=True)
class Thresholds:
    """Where a verdict changes (see the module docstring)."""

    ratio: float = 10.0
    tiny_gradient: float = 1e-2
    huge_gradient: float = 1e2
    blowup: float = 1e6


@dataclass(frozen=True)
class StudyOptions:
    """Everything about a study except the settings themselves.

    width: hidden layer width (inputs and outputs come from the data).
    normal_std, large_std: the std of the `normal` (small) and `large` initialisations; both are
        `MLPSpec(init="normal", init_scale=std)`, "large" being deliberately too large.
    optimizer: the update rule of every run (without clipping, unless it sets `max_grad_norm`).
    clip_norm: the global norm a setting whose run exploded is clipped to in its rerun (None: no
        rerun).
    """

    width: int = 32
    normal_std: float = 0.01
    large_std: float = 1.0
    dtype: torch.dtype | str = torch.float64
    device: torch.device | str = "cpu"
    optimizer: OptimizerSpec = field(default_factory=lambda: OptimizerSpec("sgd", lr=0.1))
    epochs: int = 4
    batch_size: int = 64
    clip_norm: float | None = 1.0
    seed: int = 0
    thresholds: Thresholds = field(default_factory=Thresholds)


def network_spec(setting: Setting, n_inputs: int, n_classes: int, options: StudyOptions) -> MLPSpec:
    """The `MLPSpec` of a setting: depth - 1 hidden layers of `width`, an identity output layer."""
    init, scale = setting.init, None
    if init == "normal":
        scale = options.normal_std
    elif init == "large":
        init, scale = "normal", options.large_std
    return MLPSpec(
        sizes=[n_inputs, *[options.width] * (setting.depth - 1), n_classes],
        activations=[setting.activation] * (setting.depth - 1) + ["identity"],
        loss=LOSS,
        init=init,
        init_scale=scale,
        seed=options.seed,
        dtype=options.dtype,
        device=options.device,
    )


def init_description(setting: Setting, options: StudyOptions) -> str:
    return {
        "normal": f"normal, std {options.normal_std:g}",
        "xavier": "xavier (Glorot uniform)",
        "he": "he (Kaiming normal)",
        "uniform": "uniform ±1/√fan_in",
        "large": f"normal, std {options.large_std:g} (deliberately large)",
    }[setting.init]


# -- measurements ------------------------------------------------------------------------------------------
def layer_norms(grads: dict[str, Tensor], depth: int) -> list[float]:
    """‖dL/dW‖ (L2 norm over every entry) of each layer's weight, first layer first."""
    return [float(torch.linalg.vector_norm(grads[f"layers.{i}.weight"])) for i in range(depth)]


@dataclass
class BackwardFactors:
    """How each hidden layer scales the error on its way back, read from the hand-written model.

    For hidden layer l (first hidden layer first), with delta^(l+1) the error of the layer above:
        weight_gain[l]      ‖delta^(l+1) W^(l+1)‖ / ‖delta^(l+1)‖   what the weights do
        activation_slope[l] ‖delta^l‖ / ‖delta^(l+1) W^(l+1)‖        what f'(z^l) does (sigmoid: <= 1/4)
        forward_gain[l]     ‖a^l‖ / ‖a^(l-1)‖                        the signal on the way forward
    Their product over the layers is ‖delta^1‖ / ‖delta^L‖ exactly.
    """

    weight_gain: list[float]
    activation_slope: list[float]
    forward_gain: list[float]

    @property
    def per_layer(self) -> list[float]:
        return [w * s for w, s in zip(self.weight_gain, self.activation_slope, strict=True)]

    @staticmethod
    def mean(values: Sequence[float]) -> float:
        """Geometric mean ("each layer multiplies by about ..."); nan if a value is 0 or not finite."""
        if not values or not all(math.isfinite(v) and v > 0 for v in values):
            return math.nan
        return math.exp(sum(math.log(v) for v in values) / len(values))

    @property
    def product(self) -> float:
        return math.prod(self.per_layer)

    def as_dict(self) -> dict[str, Any]:
        return {
            "weight_gain": self.weight_gain,
            "activation_slope": self.activation_slope,
            "per_layer": self.per_layer,
            "forward_gain": self.forward_gain,
            "mean_weight_gain": self.mean(self.weight_gain),
            "mean_activation_slope": self.mean(self.activation_slope),
            "mean_per_layer": self.mean(self.per_layer),
            "mean_forward_gain": self.mean(self.forward_gain),
            "product": self.product,
        }


def _ratio(numerator: float, denominator: float) -> float:
    if denominator == 0:
        return math.nan if numerator == 0 else math.inf
    return numerator / denominator


@torch.no_grad()
def backward_factors(model: ManualMLP) -> BackwardFactors:
    """`BackwardFactors` from the cache of the model's last forward and backward pass."""
    layers = model.layers
    weight_gain, slope, forward = [], [], []
    for lower, upper in pairwise(layers):
        carried = upper.delta @ upper.weight  # dL/da^l, before the slope f'(z^l) is applied
        norm_upper = float(torch.linalg.vector_norm(upper.delta))
        norm_carried = float(torch.linalg.vector_norm(carried))
        weight_gain.append(_ratio(norm_carried, norm_upper))
        slope.append(_ratio(float(torch.linalg.vector_norm(lower.delta)), norm_carried))
        forward.append(
            _ratio(
                float(torch.linalg.vector_norm(lower.output)),
                float(torch.linalg.vector_norm(lower.input)),
            )
        )
    return BackwardFactors(weight_gain, slope, forward)


@dataclass
class InitialGradients:
    """Both models on the whole training set at initialisation: loss, layer norms, factors."""

    loss_manual: float
    loss_autograd: float
    norms_manual: list[float]
    norms_autograd: list[float]
    factors: BackwardFactors

    @property
    def norm_rel_diff(self) -> float:
        """Largest |‖g_manual‖ − ‖g_autograd‖| / ‖g_autograd‖ over the layers."""
        return max(
            abs(m - a) / a if a else abs(m - a)
            for m, a in zip(self.norms_manual, self.norms_autograd, strict=True)
        )

    @property
    def first_last_ratio(self) -> float:
        return _ratio(self.norms_manual[0], self.norms_manual[-1])


def initial_gradients(pair: SideBySide, x: Tensor, y: Tensor) -> InitialGradients:
    loss_m, grads_m, loss_a, grads_a = pair.gradients(x, y)
    depth = pair.spec.num_layers
    return InitialGradients(
        loss_manual=float(loss_m),
        loss_autograd=float(loss_a),
        norms_manual=layer_norms(grads_m, depth),
        norms_autograd=layer_norms(grads_a, depth),
        factors=backward_factors(pair.manual),
    )


@dataclass
class ClipCheck:
    """The same gradients clipped by hand (`bpdemo.optim.clip_grad_norm`) and by torch."""

    max_norm: float
    norm_manual: float  # global norm before clipping, as each function returns it
    norm_torch: float
    clipped_rel_diff: float  # largest relative difference of the clipped gradients, over parameters
    clipped_norm: float  # global norm after clipping (hand-written)

    def as_dict(self) -> dict[str, float]:
        return {
            "max_norm": self.max_norm,
            "norm_before_manual": self.norm_manual,
            "norm_before_torch": self.norm_torch,
            "norm_after_manual": self.clipped_norm,
            "clipped_grads_rel_diff": self.clipped_rel_diff,
        }


def clipping_check(pair: SideBySide, x: Tensor, y: Tensor) -> ClipCheck:
    """Clip both models' gradients on (x, y) to `pair.optimizer.max_grad_norm` and compare."""
    max_norm = pair.optimizer.max_grad_norm
    pair.gradients(x, y)
    norm_manual = pair.manual_optimizer.clip_grad_norm()
    named = dict(pair.autograd.named_parameters())
    names = pair.optimizer.trained_names(named)
    norm_torch = float(torch.nn.utils.clip_grad_norm_([named[n] for n in names], max_norm))
    grads_m = dict(pair.manual.named_grads())
    clipped = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(grads_m[n]) for n in names])
    )
    return ClipCheck(
        max_norm=max_norm,
        norm_manual=norm_manual,
        norm_torch=norm_torch,
        clipped_rel_diff=max(rel_diff(grads_m[n], named[n].grad) for n in names),
        clipped_norm=float(clipped),
    )


@dataclass
class TrainingRun:
    """A short training run of both models: per-step losses and layer norms, how it ended."""

    history: History
    max_grad_norm: float | None
    tolerance: float
    blowup: float = math.inf

    @property
    def exploded(self) -> bool:
        """The loss became inf/NaN (the training loop stopped), or rose above blowup x its first."""
        return self.history.diverged_at_step is not None or self.blew_up_at_step is not None

    @property
    def blew_up_at_step(self) -> int | None:
        """First step whose (finite) loss is above `blowup` times the first step's loss."""
        steps = self.history.steps
        if not steps:
            return None
        ceiling = self.blowup * steps[0].loss_manual
        for record in steps:
            if math.isfinite(record.loss_manual) and record.loss_manual > ceiling:
                return record.step
        return None

    def how_it_ended(self) -> str:
        """'inf/NaN at step 4', 'loss ×1e19 at step 4', or 'finite for 64 steps'."""
        if self.history.diverged_at_step is not None:
            return f"inf/NaN at step {self.history.diverged_at_step}"
        if self.blew_up_at_step is not None:
            record = self.history.steps[self.blew_up_at_step - 1]
            grown = record.loss_manual / self.history.steps[0].loss_manual
            return f"loss ×{grown:.0e} at step {self.blew_up_at_step}"
        return f"finite for {len(self.history.steps)} steps"

    @property
    def steps(self) -> list[int]:
        return [record.step for record in self.history.steps]

    def losses(self, model: str = "manual") -> list[float]:
        return [getattr(record, f"loss_{model}") for record in self.history.steps]

    def layer_norms(self, model: str = "manual") -> list[list[float]]:
        """(steps, layers): ‖dL/dW‖ of each layer at each step, before any clipping."""
        rows = []
        for record in self.history.steps:
            norms = getattr(record, f"grad_norm_{model}")
            rows.append([v for k, v in norms.items() if k.endswith(".weight")])
        return rows

    @property
    def final_loss(self) -> float | None:
        """Training-set loss of the hand-written model after the run; None if it became inf/NaN."""
        if self.history.diverged_at_step is not None or not self.history.epochs:
            return None
        return self.history.epochs[-1]["train_loss_manual"]

    @property
    def final_loss_autograd(self) -> float | None:
        if self.history.diverged_at_step is not None or not self.history.epochs:
            return None
        return self.history.epochs[-1]["train_loss_autograd"]

    @property
    def max_rel_grad_diff(self) -> float:
        """Largest relative gradient difference over the steps with finite losses."""
        values = [r.max_rel_grad_diff for r in self._finite_steps()]
        return max((v for v in values if math.isfinite(v)), default=0.0)

    @property
    def drift_step(self) -> int | None:
        """First step whose relative gradient difference exceeds the tolerance, if any.

        The two models are never re-synchronised; where gradients explode, a rounding difference of
        1e-16 in the weights is amplified at every step until the two runs part ways.
        """
        for record in self._finite_steps():
            if record.max_rel_grad_diff > self.tolerance:
                return record.step
        return None

    def _finite_steps(self):
        return [
            r
            for r in self.history.steps
            if math.isfinite(r.loss_manual) and math.isfinite(r.loss_autograd)
        ]

    def summary(self) -> dict[str, Any]:
        return {
            "max_grad_norm": self.max_grad_norm,
            "exploded": self.exploded,
            "diverged_at_step": self.history.diverged_at_step,
            "blew_up_at_step": self.blew_up_at_step,
            "steps": len(self.history.steps),
            "final_loss": self.final_loss,
            "final_loss_autograd": self.final_loss_autograd,
            "max_rel_grad_diff": self.max_rel_grad_diff,
            "drift_step": self.drift_step,
        }


def train(pair: SideBySide, x: Tensor, y: Tensor, options: StudyOptions) -> TrainingRun:
    history = fit(
        pair,
        (x, y),
        epochs=options.epochs,
        batch_size=options.batch_size,
        seed=options.seed,
        quiet=True,
    )
    return TrainingRun(
        history,
        pair.optimizer.max_grad_norm,
        pair.agreement.tolerance,
        options.thresholds.blowup,
    )


# -- one setting, start to end -----------------------------------------------------------------------------
@dataclass
class SettingResult:
    setting: Setting
    spec: MLPSpec
    initial: InitialGradients
    run: TrainingRun
    clipped: TrainingRun | None
    clip_check: ClipCheck | None
    verdict: str
    reason: str
    seconds: float

    def as_dict(self, options: StudyOptions) -> dict[str, Any]:
        """The setting's entry in metrics.json `settings`."""
        initial, run = self.initial, self.run
        clipping = None
        if self.clipped is not None and self.clip_check is not None:
            clipping = {**self.clipped.summary(), "check_at_init": self.clip_check.as_dict()}
        return {
            "label": self.setting.label,
            "activation": self.setting.activation,
            "init": self.setting.init,
            "init_description": init_description(self.setting, options),
            "depth": self.setting.depth,
            "sizes": self.spec.sizes,
            "grad_norms_manual": initial.norms_manual,
            "grad_norms_autograd": initial.norms_autograd,
            "grad_norms_rel_diff": initial.norm_rel_diff,
            "first_last_ratio": initial.first_last_ratio,
            "backward": initial.factors.as_dict(),
            "verdict": self.verdict,
            "reason": self.reason,
            "exploded": run.exploded,
            "diverged_at_step": run.history.diverged_at_step,
            "blew_up_at_step": run.blew_up_at_step,
            "initial_loss": initial.loss_manual,
            "final_loss": run.final_loss,
            "training": run.summary(),
            "clipping": clipping,
            "seconds": self.seconds,
        }


def study(setting: Setting, x: Tensor, y: Tensor, n_classes: int, options: StudyOptions):
    """Measure, train, and judge one setting (see the module docstring); returns `SettingResult`."""
    start = time.perf_counter()
    spec = network_spec(setting, x.shape[1], n_classes, options)
    pair = SideBySide(spec, options.optimizer)
    initial = initial_gradients(pair, x, y)
    run = train(pair, x, y, options)
    clipped = clip_check = None
    if run.exploded and options.clip_norm is not None:
        clipped_pair = SideBySide(spec, replace(options.optimizer, max_grad_norm=options.clip_norm))
        clip_check = clipping_check(clipped_pair, x, y)
        clipped = train(clipped_pair, x, y, options)
    verdict, reason = classify(setting, initial, run, options)
    return SettingResult(
        setting=setting,
        spec=spec,
        initial=initial,
        run=run,
        clipped=clipped,
        clip_check=clip_check,
        verdict=verdict,
        reason=reason,
        seconds=time.perf_counter() - start,
    )


# -- the verdict, in plain words -----------------------------------------------------------------------------
def classify(
    setting: Setting, initial: InitialGradients, run: TrainingRun, options: StudyOptions
) -> tuple[str, str]:
    """(verdict, reason): see the module docstring for the rules."""
    verdict, reason = _judge(setting, initial, run, options)
    zeros = sum(norm == 0 for norm in initial.norms_manual)
    if zeros:
        dtype = str(resolve_dtype(options.dtype)).removeprefix("torch.")
        reason += (
            f"; {zeros} of the {setting.depth} layers' gradients are exactly 0, too small for "
            f"{dtype}" + (" (float64 goes down to 1e-308)" if dtype == "float32" else "")
        )
    return verdict, reason


def _judge(
    setting: Setting, initial: InitialGradients, run: TrainingRun, options: StudyOptions
) -> tuple[str, str]:
    thresholds = options.thresholds
    r, tiny, huge = thresholds.ratio, thresholds.tiny_gradient, thresholds.huge_gradient
    f = initial.factors
    act, hidden = setting.activation, setting.depth - 1
    gain, slope, per_layer = f.mean(f.weight_gain), f.mean(f.activation_slope), f.mean(f.per_layer)
    forward = f.mean(f.forward_gain)
    ratio, largest = initial.first_last_ratio, max(initial.norms_manual)
    layers = f"{hidden} layer{'s' if hidden != 1 else ''}"
    if all(math.isfinite(v) for v in (gain, slope, per_layer, forward)):
        each = f"weights ×{gain:.2g}, {act}' ×{slope:.2g}"
        here = f"here ×{per_layer:.2g} each ({each})"
        amplified = (
            f"each layer multiplies the signal by ≈{forward:.2g} forward and the gradient by "
            f"≈{per_layer:.2g} backward ({each})"
        )
    else:  # a factor is 0 or not finite: the error (or the signal) underflowed on its way
        each = here = "the error underflowed to 0 on its way back"
        amplified = "the signal or the error underflowed to 0 on its way through the layers"

    if run.exploded:
        return "exploding", (
            f"{run.how_it_ended()}: {amplified}, gradients reach {largest:.1e}, and a step of lr "
            f"{options.optimizer.lr:g} overshoots"
        )
    if ratio > r:
        return "exploding", (
            f"the gradient grows ×{per_layer:.2g} per layer on its way back ({each}): over "
            f"{layers} the first layer's is {ratio:.3g}× the last's"
        )
    if largest > huge:
        return "exploding", (
            f"gradients reach {largest:.3g} (above {huge:g}): {amplified}, and dL/dW = delta × "
            f"input carries both"
        )
    if largest < tiny:
        return "vanishing", (
            f"every layer's gradient is below {tiny:g}: {amplified}, and dL/dW = delta × input "
            f"carries both"
        )
    if ratio < 1 / r:
        if act == "sigmoid":
            return "vanishing", (
                f"sigmoid'(z) ≤ 0.25: {layers} multiply the gradient by up to 0.25^{hidden} ≈ "
                f"{0.25**hidden:.0e} unless the weights make up for it; {here}"
            )
        saturated = f" ({act} saturated)" if act in MAX_SLOPE and slope < MAX_SLOPE[act] / 2 else ""
        return "vanishing", (
            f"the gradient shrinks ×{per_layer:.2g} per layer on its way back ({each}"
            f"{saturated}): over {layers} the first layer's is {ratio:.1e} of the last's"
        )
    return "healthy", (
        f"first and last layer within {r:g}×: each layer multiplies the gradient by "
        f"≈{per_layer:.2g} on its way back ({each})"
    )


# -- a whole grid --------------------------------------------------------------------------------------------
def grid(activations: Sequence[str], inits: Sequence[str], depths: Sequence[int]) -> list[Setting]:
    """Every combination, activation slowest, then init, then depth."""
    return [Setting(a, i, d) for a in activations for i in inits for d in depths]


def run_summary(initial_loss: float, run: TrainingRun) -> str:
    """'2.39 → 0.702', or '1.25e+06, inf/NaN at step 4' for a run that exploded."""
    if run.exploded:
        return f"{initial_loss:.3g}, {run.how_it_ended()}"
    return f"{initial_loss:.3g} → {run.final_loss:.3g}"


def summary_rows(results: Sequence[SettingResult]) -> list[dict[str, Any]]:
    """One row per setting for the printed table and settings.csv."""
    rows = []
    for result in results:
        norms = result.initial.norms_manual
        rows.append(
            {
                "activation": result.setting.activation,
                "init": result.setting.init,
                "depth": result.setting.depth,
                "first layer": norms[0],
                "last layer": norms[-1],
                "first/last": result.initial.first_last_ratio,
                "training loss": run_summary(result.initial.loss_manual, result.run),
                "verdict": result.verdict,
                "why": result.reason,
            }
        )
    return rows


def verdict_table(results: Sequence[SettingResult]) -> str:
    """The printed table: gradient norms at initialisation, the run, the verdict and why."""
    import pandas as pd

    frame = pd.DataFrame(summary_rows(results))
    left = {}
    for column in ("activation", "init", "training loss", "verdict", "why"):
        width = max(len(column), *(len(str(v)) for v in frame[column]))
        left[column] = lambda value, width=width: f"{value:<{width}}"
    numbers = {c: (lambda v: f"{v:.2e}") for c in ("first layer", "last layer", "first/last")}
    text = frame.to_string(index=False, formatters={**left, **numbers}, justify="left")
    return "\n".join(line.rstrip() for line in text.splitlines())


def clipping_lines(results: Sequence[SettingResult]) -> list[str]:
    """Two lines per rerun with clipping: how it ended, and hand-written against torch clipping."""
    lines = []
    for result in results:
        if result.clipped is None or result.clip_check is None:
            continue
        clipped, check = result.clipped, result.clip_check
        norm_diff = abs(check.norm_manual - check.norm_torch) / check.norm_torch
        lines += [
            f"{result.setting.label}: without clipping {result.run.how_it_ended()}; clipped to "
            f"global norm {check.max_norm:g}: {clipped.how_it_ended()}, loss "
            f"{run_summary(result.initial.loss_manual, clipped)}",
            f"  at initialisation the global norm is {check.norm_manual:.3e}; hand-written "
            f"clip_grad_norm against torch.nn.utils.clip_grad_norm_: norms {norm_diff:.0e} apart, "
            f"clipped gradients {check.clipped_rel_diff:.0e} apart (relative)",
        ]
    return lines


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run torch on `count` threads inside the block (None: leave it), then restore the number.

    The study's matrices are tiny (32 x 32): splitting them across threads costs more than it saves,
    and on a busy machine the threads wait for each other (ten times slower on 2 shared cores).
    """
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def highlights(results: Sequence[SettingResult], depth: int, ratio: float) -> list[str]:
    """Plain-words summary at one depth: sigmoid with a standard init, relu with he, the large init
    and its rerun with clipping. Settings absent from the grid are left out."""
    at = {(r.setting.activation, r.setting.init): r for r in results if r.setting.depth == depth}
    lines = []
    for init in ("xavier", "he"):
        result = at.get(("sigmoid", init))
        if result is not None:
            norms = result.initial.norms_manual
            lines.append(
                f"  sigmoid / {init}: the first layer's gradient is "
                f"{1 / result.initial.first_last_ratio:,.3g} times smaller than the last layer's "
                f"({norms[0]:.2e} against {norms[-1]:.2e}): {result.verdict}"
            )
    result = at.get(("relu", "he"))
    if result is not None:
        within = 1 / ratio <= result.initial.first_last_ratio <= ratio
        lines.append(
            f"  relu / he: first/last {result.initial.first_last_ratio:.3g} "
            f"({'within' if within else 'beyond'} {ratio:g}×): {result.verdict}"
        )
    for (activation, init), result in at.items():
        if init != "large":
            continue
        lines.append(
            f"  {activation} / large: {result.verdict}: first/last "
            f"{result.initial.first_last_ratio:.3g}, training loss "
            f"{run_summary(result.initial.loss_manual, result.run)}"
        )
        if result.clipped is not None:
            clipped = result.clipped
            lines.append(
                f"  {activation} / large, clipped to global norm {clipped.max_grad_norm:g}: "
                f"{clipped.how_it_ended()}, loss {run_summary(result.initial.loss_manual, clipped)}"
            )
    return [f"at depth {depth}:", *lines] if lines else []
