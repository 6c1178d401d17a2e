"""The playground: a small network learns a 2-D data set, both models side by side, frame by frame.

A frame is one training request: `run_epochs` (the one training loop) puts a `SideBySide` pair
through some epochs of shuffled mini-batches, both models on the same batches, then the frame reports
both models' loss on all the points, each layer's gradient norm (both models), and the decision
boundary: the hand-written model's probability on a grid. It answers two questions apart
(`bpdemo.agreement`): the verdict, the largest gradient difference so far with both gradients taken
at the hand-written model's parameters, against the shared tolerance; and the drift of the two runs,
each trained on its own (their gradients, weights and boundaries), with the step it passed the
tolerance: reported, never judged.

The data sets: XOR and a two-armed spiral written here, two moons and two circles from
scikit-learn's generators. The network has one sigmoid output (the probability of class 1) and the
bce loss, so the boundary is where that probability is 0.5.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from sklearn.datasets import make_circles, make_moons

from bpdemo.agreement import TOLERANCES, StepRecord, why_runs_drift
from bpdemo.compare import SideBySide
from bpdemo.explore.schemas import MAX_STEPS_PER_REQUEST, PlaygroundSettings, TrainRequest
from bpdemo.explore.sessions import ExploreError
from bpdemo.optim import OptimizerSpec
from bpdemo.spec import MLPSpec
from bpdemo.train import run_epochs
from bpdemo.worked import fmt

CURVE_POINTS = 200  # points of a loss curve sent with a frame (thinned evenly past this)
MARGIN = 0.15  # the grid reaches this fraction of the data's extent beyond it on each side


def xor(points: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points in the square [-1, 1]²; class 1 where the two coordinates have different signs."""
    x = rng.uniform(-1, 1, size=(points, 2))
    x += np.sign(x) * 0.1  # a gap along the axes, as on paper
    labels = (x[:, 0] * x[:, 1] < 0).astype(np.int64)
    return x + rng.normal(0, noise, size=x.shape), labels


def spiral(points: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved arms winding 1.5 turns out from the centre, one per class."""
    labels = np.arange(points) % 2
    t = rng.uniform(0.1, 1, size=points)
    angle = 3 * math.pi * t + math.pi * labels
    x = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1)
    return x + rng.normal(0, noise * 0.5, size=x.shape), labels


def make_points(settings: PlaygroundSettings) -> tuple[np.ndarray, np.ndarray]:
    """(points, 2) coordinates and (points,) labels 0/1 of the chosen data set, from its seed."""
    n, noise, seed = settings.points, settings.noise, settings.seed
    if settings.dataset == "moons":
        return make_moons(n_samples=n, noise=noise, random_state=seed)
    if settings.dataset == "circles":
        return make_circles(n_samples=n, noise=noise, factor=0.5, random_state=seed)
    rng = np.random.default_rng(seed)
    return (xor if settings.dataset == "xor" else spiral)(n, noise, rng)


def thinned(values: list, count: int) -> list:
    """About `count` of `values`, evenly spaced, the first and last always among them."""
    if len(values) <= count:
        return values
    stride = math.ceil(len(values) / count)
    return values[::stride] + ([values[-1]] if (len(values) - 1) % stride else [])


class Playground:
    """One page's playground: the data, the pair of models, the loss curves so far."""

    def __init__(self, settings: PlaygroundSettings):
        self.settings = settings
        points, labels = make_points(settings)
        dtype = torch.float64 if settings.dtype == "float64" else torch.float32
        self.x = torch.tensor(points, dtype=dtype)
        self.y = torch.tensor(labels, dtype=dtype).unsqueeze(1)
        self.labels = labels
        hidden = list(settings.hidden)
        self.spec = MLPSpec(
            sizes=[2, *hidden, 1],
            activations=[settings.activation] * len(hidden) + ["sigmoid"],
            loss="bce",
            init="xavier",
            seed=settings.seed,
            dtype=dtype,
        )
        self.pair = SideBySide(self.spec, OptimizerSpec(name=settings.optimizer, lr=settings.lr))
        self.generator = torch.Generator().manual_seed(settings.seed)
        low, high = points.min(axis=0), points.max(axis=0)
        pad = (high - low) * MARGIN
        self.box = np.stack([low - pad, high + pad])  # [[x min, y min], [x max, y max]]
        g = settings.grid
        xs = np.linspace(self.box[0, 0], self.box[1, 0], g)
        ys = np.linspace(self.box[1, 1], self.box[0, 1], g)  # top row first, as an image
        grid_x, grid_y = np.meshgrid(xs, ys)
        self.grid = torch.tensor(np.stack([grid_x.ravel(), grid_y.ravel()], axis=1), dtype=dtype)
        self.curve: list[tuple[int, float, float]] = []
        self.last: StepRecord | None = None
        self.diverged_at_step: int | None = None
        self.epochs = 0
        self.record_losses()

    @torch.no_grad()
    def record_losses(self) -> None:
        """Both models on all the points: the loss curves' next point, and each one's accuracy."""
        try:
            evaluation = self.pair.evaluate(self.x, self.y)
        except RuntimeError:
            self.refuse_unless_overflowed()
            self.curve.append((self.pair.steps_done, math.nan, math.nan))
            self.accuracy = {"manual": math.nan, "autograd": math.nan}
            return
        self.curve.append((self.pair.steps_done, evaluation.loss_manual, evaluation.loss_autograd))
        self.accuracy = {  # the share of points on the right side of each model's boundary
            model: float(((output >= 0.5).to(self.y.dtype) == self.y).double().mean())
            for model, output in (
                ("manual", evaluation.output_manual),
                ("autograd", evaluation.output_autograd),
            )
        }

    def setup_answer(self) -> dict[str, Any]:
        """The answer of /api/playground/setup: the points (also as fractions of the picture)."""
        extent = self.box[1] - self.box[0]
        fractions = (np.asarray(self.x.double()) - self.box[0]) / extent
        return {
            "settings": self.settings.model_dump(),
            "network": {"sizes": self.spec.sizes, "activations": self.spec.activations},
            "steps_per_epoch": self.settings.steps_per_epoch(),
            "points": [
                {
                    "x": float(p[0]),
                    "y": float(p[1]),
                    "u": float(f[0]),
                    "v": float(1 - f[1]),
                    "label": int(c),
                }
                for p, f, c in zip(np.asarray(self.x.double()), fractions, self.labels, strict=True)
            ],
            "box": {
                "x": [float(self.box[0, 0]), float(self.box[1, 0])],
                "y": [float(self.box[0, 1]), float(self.box[1, 1])],
            },
            "frame": self.frame(),
        }

    def train(self, request: TrainRequest) -> dict[str, Any]:
        """Train for `request.epochs` epochs (both models, same mini-batches), then one frame."""
        if self.diverged_at_step is not None:
            raise ExploreError(
                409,
                f"training diverged at step {self.diverged_at_step}: set up again, with a smaller "
                f"learning rate (now {self.settings.lr:g})",
            )
        steps = request.epochs * self.settings.steps_per_epoch()
        if steps > MAX_STEPS_PER_REQUEST:
            raise ExploreError(
                422,
                f"{request.epochs} epochs are {steps} steps here; one request runs at most "
                f"{MAX_STEPS_PER_REQUEST}: ask for fewer epochs or use larger batches",
            )
        try:
            loop = run_epochs(
                self.pair.step,
                self.x,
                self.y,
                epochs=request.epochs,
                batch_size=self.settings.batch_size,
                generator=self.generator,
            )
        except RuntimeError:
            self.refuse_unless_overflowed()
            self.diverged_at_step = self.pair.steps_done + 1
        else:
            self.epochs += loop.epochs
            if loop.records:
                self.last = loop.records[-1]
            if loop.diverged_at_step is not None:
                self.diverged_at_step = self.pair.steps_done
        self.record_losses()
        return self.frame()

    def refuse_unless_overflowed(self) -> None:
        """Re-raise the error being handled unless the weights have gone to inf or NaN.

        torch's bce refuses probabilities that are NaN rather than answering NaN, so the autograd
        model raises where the hand-written one would report a NaN loss.
        """
        if bool(torch.isfinite(self.pair.manual.flat_parameters).all()):
            raise

    @torch.no_grad()
    def boundary(self) -> tuple[list[int], float]:
        """The hand-written model's P(class 1) on the grid as 0-255, and max |p_hand - p_autograd|
        (the two runs' boundaries: part of their drift)."""
        p_manual = self.pair.manual.forward(self.grid).reshape(-1)
        p_autograd = self.pair.autograd(self.grid).reshape(-1)
        difference = float((p_manual - p_autograd).abs().max())
        shades = torch.nan_to_num(p_manual, nan=0.5).clamp(0, 1).mul(255).round().to(torch.uint8)
        return shades.tolist(), difference

    def layer_norms(self) -> list[dict[str, Any]]:
        """Each layer's gradient norm at the last step, sqrt(|∂L/∂W|² + |∂L/∂b|²), both models."""
        if self.last is None:
            return []
        rows = []
        for layer in range(self.spec.num_layers):
            names = (f"layers.{layer}.weight", f"layers.{layer}.bias")
            norms = [
                math.hypot(*(norms[n] for n in names))
                for norms in (self.last.grad_norm_manual, self.last.grad_norm_autograd)
            ]
            rows.append(
                {
                    "layer": layer,
                    "manual": norms[0],
                    "autograd": norms[1],
                    "text": [f"layers.{layer}", fmt(norms[0]), fmt(norms[1])],
                }
            )
        return rows

    def message(self, loss: float, first: float) -> str:
        """What the page says about how training goes: diverged, or worse than before training."""
        lr = f"{self.settings.lr:g}"
        if self.diverged_at_step is not None:
            return (
                f"training diverged at step {self.diverged_at_step}: the loss became inf or NaN; "
                f"set up again with a smaller learning rate (now {lr})"
            )
        # bce's logarithms are clamped, so a step too large rarely reaches inf: it saturates the
        # output instead, and the loss climbs above where it started
        if loss > first:
            return (
                f"the loss ({fmt(loss)}) is above where it started ({fmt(first)}): the learning "
                f"rate (now {lr}) is too large for this network"
            )
        return ""

    def frame(self) -> dict[str, Any]:
        """The answer of /api/playground/train (docs/explore.md lists its fields).

        The verdict, at the same parameters: `max_grad_diff`, `max_abs_grad_diff`,
        `within_tolerance`, `outside_from_step`. The drift of the two runs: `drift`, and
        `grid.max_abs_diff` (their boundaries).
        """
        shades, grid_difference = self.boundary()
        step, loss_manual, loss_autograd = self.curve[-1]
        agreement = self.pair.agreement
        drift = agreement.drift
        tolerance = TOLERANCES[self.spec.dtype]
        first, top = (
            self.curve[0][1],
            max((v for _, m, a in self.curve for v in (m, a) if math.isfinite(v)), default=1.0),
        )
        last_step = max(step, 1)
        curve = thinned(self.curve, CURVE_POINTS)
        return {
            "step": step,
            "epoch": self.epochs,
            "loss": {"manual": loss_manual, "autograd": loss_autograd, "first": first},
            "accuracy": self.accuracy,
            "diverged_at_step": self.diverged_at_step,
            "message": self.message(loss_manual, first),
            "grad_norms": self.layer_norms(),
            "max_grad_diff": agreement.max_rel_grad_diff,
            "max_abs_grad_diff": agreement.max_abs_grad_diff,
            "steps_compared": agreement.steps_compared,
            "tolerance": tolerance,
            "within_tolerance": agreement.within_tolerance,
            "outside_from_step": agreement.outside_from_step,
            "drift": {
                "max_rel_grad_diff": drift.max_rel_grad_diff,
                "max_abs_param_diff": drift.max_abs_param_diff,
                "max_abs_loss_diff": drift.max_abs_loss_diff,
                "parted_at_step": drift.parted_at_step,
                "past_tolerance_at_step": drift.past_tolerance_at_step,
            },
            "text": {
                "loss_manual": fmt(loss_manual),
                "loss_autograd": fmt(loss_autograd),
                "loss_first": fmt(first),
                "accuracy_manual": _percent(self.accuracy["manual"]),
                "accuracy_autograd": _percent(self.accuracy["autograd"]),
                "max_grad_diff": f"{agreement.max_rel_grad_diff:.1e}",
                "tolerance": f"{tolerance:g}",
                "verdict": "within" if agreement.within_tolerance else "OUTSIDE",
                "outside_from": (
                    "" if agreement.within_tolerance else f"from step {agreement.outside_from_step}"
                ),
                "drift": drift.describe(agreement.steps_compared, tolerance),
                "why_drift": why_runs_drift(self.spec.dtype) if drift.parted_at_step else "",
                "grid_diff": f"{grid_difference:.1e}",
                "top": fmt(top),
            },
            "grid": {"size": self.settings.grid, "p255": shades, "max_abs_diff": grid_difference},
            "curve": {
                "top": top,
                "last_step": last_step,
                # points as fractions of the plot: (step / last step, loss / top)
                "manual": [[s / last_step, _fraction(m, top)] for s, m, _ in curve],
                "autograd": [[s / last_step, _fraction(a, top)] for s, _, a in curve],
            },
        }


def _fraction(value: float, top: float) -> float | None:
    if not math.isfinite(value) or top <= 0:
        return None
    return min(value / top, 1.0)


def _percent(value: float) -> str:
    return f"{value:.1%}" if math.isfinite(value) else "–"
