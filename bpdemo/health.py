"""Gradient health: how the size of the gradient changes from layer to layer, and what cures it.

Backpropagation carries the error backwards one layer at a time (BP2, see `bpdemo.manual`):

    delta^l = (delta^(l+1) W^(l+1)) * f'(z^l)        and        dL/dW^l = (delta^l)^T a^(l-1)

so the error reaching the first layer of a network of depth L is the error at the output multiplied
by L - 1 Jacobians, each a weight matrix times the activation's slope f'(z). If each shrinks the error
(sigmoid'(z) <= 0.25, or small weights), the product vanishes exponentially with depth; if each grows
it (large weights), the product explodes. The cures: an activation whose slope is 1 where it is active
(relu, tanh near 0), an initialisation whose weights make up for the slope (`xavier` for tanh, `he` for
relu), and clipping the gradient's global norm, which bounds every update however large the gradient.

`study` builds one `Setting`'s network (activation, initialisation, depth) as both models, measures
every layer's weight-gradient norm at initialisation with both, reads from the hand-written model's
cache how much each layer's weights and slope multiply the error on its way back, trains a short run
with `fit`, reruns a run that exploded with clipping, and judges it (`classify`): numbers and the rule
that fired. What is said about them is `bpdemo.report.health`; what is drawn, `bpdemo.plots.gradients`.

The rules, in order, with the `Thresholds` r = ratio, tiny, huge and blowup:
    exploding   the run exploded (its loss became inf or NaN, or rose above blowup x its first);
                or the first layer's gradient is more than r times the last layer's (it grows on its
                way back); or a layer's gradient is above huge;
    vanishing   every layer's gradient is below tiny, or the first layer's is less than 1/r of the
                last layer's (it shrinks on its way back);
    healthy     otherwise.
tiny and huge catch what the first/last ratio misses: dL/dW^l carries the signal a^(l-1) as well as
the error delta^l, and small weights shrink both alike, so every layer's gradient is about equally tiny
(large weights: equally huge). For this study's loss (cross-entropy over 10 classes, about ln 10 = 2.3
at the start) a healthy layer's gradient norm is between 0.1 and a few units.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Annotated

import torch
from pydantic import Field
from torch import Tensor

from bpdemo.agreement import Drift, rel_diff
from bpdemo.compare import SideBySide
from bpdemo.functional import ACTIVATIONS
from bpdemo.infra import interruption
from bpdemo.infra.config import PositiveFloat, Seed, Spec, Width, at_most
from bpdemo.infra.limits import MAX_BATCH, MAX_EPOCHS
from bpdemo.manual import ManualMLP
from bpdemo.optim import OptimizerSpec
from bpdemo.spec import INITS, DtypeName, MLPSpec
from bpdemo.train import History, fit

LARGE = "large"  # the study's own initialisation: `normal` with a deliberately large std
STUDY_INITS = (*INITS, LARGE)
VERDICTS = ("vanishing", "exploding", "healthy")
LOSS = "cross_entropy"


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


def grid(activations: Sequence[str], inits: Sequence[str], depths: Sequence[int]) -> list[Setting]:
    """Every combination, activation slowest, then init, then depth."""
    return [Setting(a, i, d) for a in activations for i in inits for d in depths]


class Thresholds(Spec):
    """Where a verdict changes (see the module docstring): the gradients demo's `[verdict]` table."""

    ratio: Annotated[float, Field(gt=1, allow_inf_nan=False)] = 10.0  # r
    tiny_gradient: PositiveFloat = 0.01
    huge_gradient: PositiveFloat = 100.0
    blowup: Annotated[float, Field(gt=1, allow_inf_nan=False)] = 1e6


class StudyOptions(Spec):
    """Everything about a study except the settings themselves; the gradients demo's config shows
    each under its table (in brackets), with the default and the checks it has here.

    width: hidden layer width [model]; inputs and outputs come from the data.
    normal_std, large_std: the std of the `normal` (small) and `large` initialisations [grid]; both
        are `MLPSpec(init="normal", init_scale=std)`, "large" being deliberately too large.
    dtype, device: of both models [model].
    optimizer: the update rule of every run [optimizer] (without clipping, unless it sets
        `max_grad_norm`): plain gradient descent, so nothing rescales the gradient.
    epochs, batch_size: of every run [train].
    clip_norm: the global norm a setting whose run exploded is clipped to in its rerun
        ([clipping] max_grad_norm; None: no rerun).
    thresholds: where the verdicts change [verdict].
    """

    width: Width = 32
    normal_std: PositiveFloat = 0.01
    large_std: PositiveFloat = 1.0
    dtype: DtypeName = "float64"
    device: str = "cpu"
    optimizer: OptimizerSpec = OptimizerSpec()
    epochs: at_most(MAX_EPOCHS) = 4
    batch_size: at_most(MAX_BATCH) = 64
    clip_norm: PositiveFloat | None = 1.0
    seed: Seed = 0
    thresholds: Thresholds = Thresholds()


def drawn_init(setting: Setting, options: StudyOptions) -> tuple[str, float | None]:
    """(name in `bpdemo.spec.INITS`, init_scale) the setting's weights are drawn with."""
    if setting.init == LARGE:
        return "normal", options.large_std
    if setting.init == "normal":
        return "normal", options.normal_std
    return setting.init, None


def network_spec(setting: Setting, n_inputs: int, n_classes: int, options: StudyOptions) -> MLPSpec:
    """The `MLPSpec` of a setting: depth - 1 hidden layers of `width`, an identity output layer."""
    init, scale = drawn_init(setting, options)
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


# -- measurements ------------------------------------------------------------------------------------------
def layer_norms(grads: dict[str, Tensor], depth: int) -> list[float]:
    """‖dL/dW‖ (L2 norm over every entry) of each layer's weight, first layer first."""
    return [_norm(grads[f"layers.{i}.weight"]) for i in range(depth)]


@dataclass
class BackwardFactors:
    """How each hidden layer scales the error on its way back, read from the hand-written model.

    For hidden layer l (first hidden layer first), with delta^(l+1) the error of the layer above:
        weight_gain[l]       ‖dL/da^l‖ / ‖delta^(l+1)‖   the weights: dL/da^l = delta^(l+1) W^(l+1)
        activation_slope[l]  ‖delta^l‖ / ‖dL/da^l‖       f'(z^l) (sigmoid: at most 1/4)
        forward_gain[l]      ‖a^l‖ / ‖a^(l-1)‖           the signal on the way forward
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


def _ratio(numerator: float, denominator: float) -> float:
    if denominator == 0:
        return math.nan if numerator == 0 else math.inf
    return numerator / denominator


def first_last_ratio(norms: Sequence[float]) -> float:
    """‖dL/dW‖ of the first layer over the last's: above r it grows on its way back, below 1/r it
    shrinks (inf when only the last is 0, NaN when both are)."""
    return _ratio(norms[0], norms[-1])


def _norm(tensor: Tensor) -> float:
    return float(torch.linalg.vector_norm(tensor))


@torch.no_grad()
def backward_factors(model: ManualMLP) -> BackwardFactors:
    """`BackwardFactors` from the cache of the model's last forward and backward pass."""
    weight_gain, slope, forward = [], [], []
    for lower, upper in pairwise(model.layers):
        carried = _norm(lower.grad_output)  # dL/da^l, before the slope f'(z^l) is applied
        weight_gain.append(_ratio(carried, _norm(upper.delta)))
        slope.append(_ratio(_norm(lower.delta), carried))
        forward.append(_ratio(_norm(lower.output), _norm(lower.input)))
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
        return first_last_ratio(self.norms_manual)


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
    norm_before_manual: float  # the global norm before clipping, as each function returns it
    norm_before_torch: float
    norm_after_manual: float
    clipped_grads_rel_diff: float  # the largest relative difference over the parameters


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
        norm_before_manual=norm_manual,
        norm_before_torch=norm_torch,
        norm_after_manual=float(clipped),
        clipped_grads_rel_diff=max(rel_diff(grads_m[n], named[n].grad) for n in names),
    )


@dataclass
class TrainingRun:
    """A short training run of both models: per-step losses and layer norms, how it ended, the
    gradient check at the same parameters and the two runs' drift (`drift`, from the pair)."""

    history: History
    max_grad_norm: float | None
    tolerance: float
    blowup: float = math.inf
    drift: Drift = field(default_factory=Drift)

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

    @property
    def steps(self) -> list[int]:
        return [record.step for record in self.history.steps]

    def losses(self, model: str = "manual") -> list[float]:
        return [getattr(record, f"loss_{model}") for record in self.history.steps]

    def layer_norms(self, model: str = "manual") -> list[list[float]]:
        """(steps, layers): ‖dL/dW‖ of each layer at each step, before any clipping."""
        return [
            [v for k, v in getattr(record, f"grad_norm_{model}").items() if k.endswith(".weight")]
            for record in self.history.steps
        ]

    @property
    def final_loss(self) -> float | None:
        """Training-set loss of the hand-written model after the run; None if it became inf/NaN."""
        if self.history.diverged_at_step is not None or not self.history.epochs:
            return None
        return self.history.epochs[-1]["train_loss_manual"]

    @property
    def max_rel_grad_diff(self) -> float:
        """Largest relative gradient difference at the same parameters (the check), over the steps
        with finite losses."""
        values = [r.max_rel_grad_diff for r in self.history.steps if r.finite]
        return max((v for v in values if math.isfinite(v)), default=0.0)

    @property
    def within_tolerance(self) -> bool:
        """The check: at the same parameters, every finite step within the tolerance."""
        return self.max_rel_grad_diff <= self.tolerance

    @property
    def drift_step(self) -> int | None:
        """First step at which the two runs' gradients, each at its own parameters, were further
        apart than the tolerance, if any: drift, not a disagreement (where gradients explode,
        rounding differences between the runs' weights grow every step)."""
        return self.drift.past_tolerance_at_step


def train(pair: SideBySide, x: Tensor, y: Tensor, options: StudyOptions) -> TrainingRun:
    history = fit(
        pair,
        (x, y),
        epochs=options.epochs,
        batch_size=options.batch_size,
        seed=options.seed,
        quiet=True,
    )
    if history.interrupted:  # the loop kept what it had; the study stops there, not this run only
        raise interruption.stopped()
    return TrainingRun(
        history,
        pair.optimizer.max_grad_norm,
        pair.agreement.tolerance,
        options.thresholds.blowup,
        pair.agreement.drift,
    )


# -- the verdict ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """What `classify` found: the verdict, the rule that fired, and the numbers the rules read.

    rule, in the order of the module docstring: `exploded`, `grows` (first/last above r), `huge`,
    `tiny`, `small_slope` or `shrinks` (first/last below 1/r, with an activation whose largest slope
    is below 1, such as sigmoid, or another), `within`. The gains and slope are `BackwardFactors`'
    geometric means over the hidden layers, nan where the error or the signal underflowed to 0.
    """

    name: str  # one of VERDICTS
    rule: str
    first_last_ratio: float
    largest_gradient: float
    weight_gain: float
    activation_slope: float
    per_layer: float
    forward_gain: float
    saturated: bool  # the mean slope is under half the activation's largest: it saturates
    zero_layers: int  # layers whose gradient is exactly 0, too small for the dtype

    @property
    def underflowed(self) -> bool:
        means = (self.weight_gain, self.activation_slope, self.per_layer, self.forward_gain)
        return not all(math.isfinite(v) for v in means)


def judge(
    norms: Sequence[float], exploded: bool, activation: str, thresholds: Thresholds
) -> tuple[str, str]:
    """(verdict, rule) by the rules of the module docstring, tried in that order, from each layer's
    ‖dL/dW‖ (first layer first), whether the run exploded, and the hidden layers' activation."""
    r = thresholds.ratio
    ratio, largest = first_last_ratio(norms), max(norms)
    if exploded:
        return "exploding", "exploded"
    if ratio > r:
        return "exploding", "grows"
    if largest > thresholds.huge_gradient:
        return "exploding", "huge"
    if largest < thresholds.tiny_gradient:
        return "vanishing", "tiny"
    if ratio < 1 / r:
        return "vanishing", "small_slope" if ACTIVATIONS[activation].max_slope < 1 else "shrinks"
    return "healthy", "within"


def classify(
    setting: Setting, initial: InitialGradients, run: TrainingRun, thresholds: Thresholds
) -> Verdict:
    """The `Verdict` of a setting, by the rules of the module docstring, tried in that order."""
    ratio, largest = initial.first_last_ratio, max(initial.norms_manual)
    activation = ACTIVATIONS[setting.activation]
    name, rule = judge(initial.norms_manual, run.exploded, setting.activation, thresholds)
    f = initial.factors
    gain, slope, per_layer, forward = (
        f.mean(values)
        for values in (f.weight_gain, f.activation_slope, f.per_layer, f.forward_gain)
    )
    return Verdict(
        name,
        rule,
        ratio,
        largest,
        gain,
        slope,
        per_layer,
        forward,
        saturated=slope < activation.max_slope / 2,
        zero_layers=sum(norm == 0 for norm in initial.norms_manual),
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
    verdict: Verdict
    seconds: float


def study(
    setting: Setting, x: Tensor, y: Tensor, n_classes: int, options: StudyOptions
) -> SettingResult:
    """Measure, train, and judge one setting (see the module docstring)."""
    start = time.perf_counter()
    spec = network_spec(setting, x.shape[1], n_classes, options)
    pair = SideBySide(spec, options.optimizer)
    initial = initial_gradients(pair, x, y)
    run = train(pair, x, y, options)
    clipped = clip_check = None
    if run.exploded and options.clip_norm is not None:
        clipped_pair = SideBySide(spec, options.optimizer.replace(max_grad_norm=options.clip_norm))
        clip_check = clipping_check(clipped_pair, x, y)
        clipped = train(clipped_pair, x, y, options)
    return SettingResult(
        setting=setting,
        spec=spec,
        initial=initial,
        run=run,
        clipped=clipped,
        clip_check=clip_check,
        verdict=classify(setting, initial, run, options.thresholds),
        seconds=time.perf_counter() - start,
    )
