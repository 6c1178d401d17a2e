"""How far apart two numbers, two gradients or two models are, and how far apart they may be.

Every measure of agreement bpdemo uses, and its one table of tolerances.

The relative gradient difference of a parameter is measured against the size of the numbers that were
added up to make its gradient, not against the gradient itself:

    relative difference = max |g_manual - g_autograd| / max S,
    S = |delta|^T |a_prev|  for a weight,   S = sum over the batch of |delta|  for a bias

A gradient is a sum over the batch, and rounding errs by about eps * S, however much the terms cancel.
Near a minimum they cancel almost entirely (a bias gradient is a mean residual, close to 0), so dividing
by |g| would report large "differences" that are rounding and nothing else. S >= |g| entry by entry,
so this measure is never stricter than max|g_manual - g_autograd| / max|g|, which `rel_diff` gives.

Tolerances (`TOLERANCES`, relative gradient difference at every step): float64 at or below 1e-10,
float32 at or below 1e-4. Both models do the same arithmetic in a different order, so they differ by
rounding only: about 1e-16 (float64) or 1e-7 (float32) per operation.

Two models trained side by side answer two questions, never mixed (docs/agreement.md):
    the verdict   does the hand-written backward compute autograd's gradient? Both gradients are
                  taken at the same parameters, the hand-written model's, at every step, and held to
                  the tolerance: `StepRecord.grad_*_diff`, `Agreement.within_tolerance`.
    drift         how far have the two runs, each trained on its own, drifted apart? Each keeps its own
                  rounding in its weights, and a chaotic run amplifies that difference step after step
                  (`why_runs_drift`). It is reported, never judged: `StepRecord.drift_*`,
                  `StepRecord.param_abs_diff`, `Agreement.drift`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

TOLERANCES: dict[torch.dtype, float] = {torch.float64: 1e-10, torch.float32: 1e-4}
# A hand-written gradient against finite differences (float64, h = 1e-6): their error is about
# h² for the truncation and 1e-16 / h for the rounding, 1e-9 to 1e-10 relative in practice.
FINITE_DIFFERENCE_TOLERANCE = 1e-6
SAME_VALUES = 1e-10  # a forward against its torch function: the same function, rounding apart


def max_abs_diff(a: Tensor, b: Tensor) -> float:
    return float((a.to(torch.float64) - b.to(torch.float64)).abs().max()) if a.numel() else 0.0


def rel_diff(a: Tensor, b: Tensor) -> float:
    """Largest absolute difference relative to the size of the reference `b`.

    max|a - b| / max|b|: 0 when equal, about 1e-16 for float64 rounding, about 1e-7 for float32.
    Elementwise |a - b| / |b| would blow up where a gradient is near zero, so the scale is the
    largest entry of `b` (and the smallest normal number when `b` is all zeros).
    """
    scale = float(b.to(torch.float64).abs().max()) if b.numel() else 0.0
    return max_abs_diff(a, b) / max(scale, torch.finfo(torch.float64).tiny)


def summand_scales(manual) -> dict[str, Tensor]:
    """Per parameter, the sum of the absolute values of the terms its last gradient added up.

    Read from the hand-written model's cache of its last pass: a weight's gradient is
    dL/dW = delta^T a_prev (BP4), so S = |delta|^T |a_prev|, shaped like W; a bias's is
    dL/db = sum_n delta (BP3), so S = sum_n |delta|, shaped like b. Each layer says its own
    (`summand_scales()`); a layer that does not is measured against its gradient itself.
    """
    scales: dict[str, Tensor] = {}
    for i, layer in enumerate(manual.layers):
        own = layer.summand_scales() if hasattr(layer, "summand_scales") else {}
        for local in layer.parameter_names:
            grad = getattr(layer, f"grad_{local}")
            scales[f"layers.{i}.{local}"] = own.get(local, grad.abs())
    return scales


def relative_to(abs_diff: float, scale: Tensor) -> float:
    """`abs_diff / max(scale)`; 0 when both are 0 (nothing was added, nothing differs)."""
    largest = float(scale.max()) if scale.numel() else 0.0
    if largest == 0.0:
        return 0.0 if abs_diff == 0.0 else float("inf")
    return abs_diff / largest


def why_runs_drift(dtype: torch.dtype | str) -> str:
    """The one sentence that says why two correct runs drift apart (float64 or float32)."""
    name = str(dtype).removeprefix("torch.")
    eps = torch.finfo(getattr(torch, name)).eps
    return (
        f"two runs drift apart because each keeps its own rounding (about {eps:.0e} in {name}) "
        "in its weights and carries it into every later step, where training can amplify it; "
        "the gradients are checked at the same weights, so drift is not a disagreement"
    )


@dataclass
class StepRecord:
    """What one training step of both models looked like. Norms and differences are floats.

    The verdict, at the same parameters (the hand-written model's, as the step began):
        grad_abs_diff, grad_rel_diff: per parameter, the hand-written gradient against autograd's.
        loss_abs_diff: |hand-written loss - autograd's loss|.
    The drift of the two runs, each trained on its own:
        loss_manual, loss_autograd: each run's own loss (the autograd run's, at its own parameters).
        drift_grad_abs_diff, drift_grad_rel_diff: per parameter, the hand-written run's gradient
            against the autograd run's (each at its own parameters).
        param_abs_diff: per parameter, the two runs' parameters after the update.
        grad_norm_manual, grad_norm_autograd: each run's gradient norms.
        same_parameters: the two runs were bitwise identical as the step began (parameters, buffers
            and dropout generators), so the two questions have the same answer.
    A record made without the drift fields is one of two runs that were identical.
    """

    step: int
    loss_manual: float
    loss_autograd: float
    grad_abs_diff: dict[str, float]
    grad_rel_diff: dict[str, float]
    param_abs_diff: dict[str, float]
    grad_norm_manual: dict[str, float]
    grad_norm_autograd: dict[str, float]
    loss_abs_diff: float | None = None
    drift_grad_abs_diff: dict[str, float] | None = None
    drift_grad_rel_diff: dict[str, float] | None = None
    same_parameters: bool = True

    def __post_init__(self) -> None:
        if self.loss_abs_diff is None:
            self.loss_abs_diff = abs(self.loss_manual - self.loss_autograd)
        if self.drift_grad_abs_diff is None:
            self.drift_grad_abs_diff = self.grad_abs_diff
        if self.drift_grad_rel_diff is None:
            self.drift_grad_rel_diff = self.grad_rel_diff

    @property
    def finite(self) -> bool:
        """Both losses are finite numbers (not inf, not NaN)."""
        return math.isfinite(self.loss_manual) and math.isfinite(self.loss_autograd)

    @property
    def max_abs_grad_diff(self) -> float:
        return max(self.grad_abs_diff.values())

    @property
    def max_rel_grad_diff(self) -> float:
        return max(self.grad_rel_diff.values())

    @property
    def max_abs_param_diff(self) -> float:
        return max(self.param_abs_diff.values())

    @property
    def drift_max_abs_grad_diff(self) -> float:
        return max(self.drift_grad_abs_diff.values())

    @property
    def drift_max_rel_grad_diff(self) -> float:
        return max(self.drift_grad_rel_diff.values())

    def row(self) -> dict[str, float]:
        """A flat row for `steps.csv`: the losses and the maxima over parameters.

        The verdict: `max_abs_grad_diff`, `max_rel_grad_diff`. The drift: the two losses,
        `max_abs_param_diff`, `drift_max_abs_grad_diff`, `drift_max_rel_grad_diff`, and
        `same_parameters` (1 while the two runs are bitwise identical, 0 after they part).
        """
        return {
            "step": self.step,
            "loss_manual": self.loss_manual,
            "loss_autograd": self.loss_autograd,
            "max_abs_grad_diff": self.max_abs_grad_diff,
            "max_rel_grad_diff": self.max_rel_grad_diff,
            "max_abs_param_diff": self.max_abs_param_diff,
            "drift_max_abs_grad_diff": self.drift_max_abs_grad_diff,
            "drift_max_rel_grad_diff": self.drift_max_rel_grad_diff,
            "same_parameters": int(self.same_parameters),
        }


@dataclass
class Drift:
    """How far the two runs, each trained on its own, have drifted apart over the steps so far.

    Not a verdict (`why_runs_drift`): the maxima over the steps of the gradient difference between
    the runs (absolute, and relative as the verdict measures it), of their losses and of their
    parameters after each update; `parted_at_step`, the first step that began with the runs no
    longer bitwise identical, and `past_tolerance_at_step`, the first at which their gradient
    difference passed the tolerance (None: never).
    """

    max_abs_grad_diff: float = 0.0
    max_rel_grad_diff: float = 0.0
    max_abs_loss_diff: float = 0.0
    max_abs_param_diff: float = 0.0
    parted_at_step: int | None = None
    past_tolerance_at_step: int | None = None

    def describe(self, steps: int, tolerance: float) -> str:
        """The drift in words, e.g. "gradients 1.1e+02 relative apart at most, parameters 1.4,
        losses 0.25; above 1e-10 from step 2163 (first apart at step 2)"."""
        if self.parted_at_step is None:
            return f"bitwise identical at every step of {steps}"
        past = self.past_tolerance_at_step
        where = (
            f"above {tolerance:g} from step {past}" if past else f"below {tolerance:g} throughout"
        )
        return (
            f"gradients {self.max_rel_grad_diff:.1e} relative apart at most, parameters "
            f"{self.max_abs_param_diff:.1e}, losses {self.max_abs_loss_diff:.1e}; {where} "
            f"(first apart at step {self.parted_at_step})"
        )

    def add(self, record: StepRecord, tolerance: float) -> None:
        self.max_abs_grad_diff = max(self.max_abs_grad_diff, record.drift_max_abs_grad_diff)
        self.max_rel_grad_diff = max(self.max_rel_grad_diff, record.drift_max_rel_grad_diff)
        loss_diff = abs(record.loss_manual - record.loss_autograd)
        self.max_abs_loss_diff = max(self.max_abs_loss_diff, loss_diff)
        self.max_abs_param_diff = max(self.max_abs_param_diff, record.max_abs_param_diff)
        if self.parted_at_step is None and not record.same_parameters:
            self.parted_at_step = record.step
        past = record.finite and record.drift_max_rel_grad_diff > tolerance
        if self.past_tolerance_at_step is None and past:
            self.past_tolerance_at_step = record.step


@dataclass
class Agreement:
    """The two questions over every step compared so far (see the module docstring).

    The verdict, at the same parameters at every step: `max_abs_grad_diff`, `max_rel_grad_diff`
    (held to `tolerance`: `within_tolerance`, and `outside_from_step`, the first step it failed) and
    `max_abs_loss_diff`. The drift of the two runs: `drift`, and `max_abs_param_diff` (the drift's,
    under the name it has always had).
    """

    dtype: str
    tolerance: float
    steps_compared: int = 0
    max_abs_grad_diff: float = 0.0
    max_rel_grad_diff: float = 0.0
    max_abs_loss_diff: float = 0.0
    outside_from_step: int | None = None  # the first step the verdict failed (None: never)
    drift: Drift = field(default_factory=Drift)

    @property
    def within_tolerance(self) -> bool:
        """The verdict: at every step, at the same parameters, within the tolerance."""
        return self.max_rel_grad_diff <= self.tolerance

    @property
    def max_abs_param_diff(self) -> float:
        return self.drift.max_abs_param_diff

    def add(self, record: StepRecord) -> None:
        self.steps_compared += 1
        self.max_abs_grad_diff = max(self.max_abs_grad_diff, record.max_abs_grad_diff)
        self.max_rel_grad_diff = max(self.max_rel_grad_diff, record.max_rel_grad_diff)
        self.max_abs_loss_diff = max(self.max_abs_loss_diff, record.loss_abs_diff)
        if self.outside_from_step is None and record.max_rel_grad_diff > self.tolerance:
            self.outside_from_step = record.step
        self.drift.add(record, self.tolerance)

    def as_dict(self) -> dict:
        """metrics.json's `agreement`: the verdict's keys, `max_abs_param_diff`, then `drift`."""
        verdict = {k: v for k, v in asdict(self).items() if k != "drift"}
        return {
            **verdict,
            "max_abs_param_diff": self.max_abs_param_diff,
            "within_tolerance": self.within_tolerance,
            "drift": asdict(self.drift),
        }
