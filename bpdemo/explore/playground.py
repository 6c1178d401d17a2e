"""The playground: a small network learns a 2-D problem, both models side by side, frame by frame.

A frame is one training request: `run_epochs` (the one training loop) puts a `SideBySide` pair
through some epochs of shuffled mini-batches of the training points, both models on the same
batches, then the frame reports both models' loss and score on the training and the test points,
each layer's gradient norm (both models, and the hand-written one's over time), the picture of the
output over the plane and of every neuron (the hand-written model's), and the weights. It answers
two questions apart (`bpdemo.agreement`): the verdict, the largest gradient difference so far with
both gradients taken at the hand-written model's parameters, against the shared tolerance; and the
drift of the two runs, each trained on its own: reported, never judged.

The problems and input features are `bpdemo.explore.problems`; the problem's kind sets the output
and the loss (one sigmoid and bce for two classes, a logit per class and cross_entropy for more,
one linear output and mse for a value). Gradient health is judged as `bpdemo.health` judges a
network, by its rules and thresholds, on each layer's gradient at initialisation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from bpdemo.agreement import TOLERANCES, StepRecord, why_runs_drift
from bpdemo.compare import SideBySide
from bpdemo.explore.problems import CSV, FEATURES, KINDS, PROBLEMS, features_of, parse_csv
from bpdemo.explore.schemas import (
    MAX_CLASSES,
    MAX_POINTS,
    MAX_STEPS_PER_REQUEST,
    MIN_POINTS,
    PlaygroundSettings,
    TrainRequest,
    epoch_too_long,
    held_out_points,
    steps_per_epoch,
)
from bpdemo.explore.sessions import ExploreError
from bpdemo.functional import ACTIVATIONS, LEAKY_RELU_SLOPE, SOFTPLUS_THRESHOLD
from bpdemo.health import Thresholds, first_last_ratio, judge
from bpdemo.optim import OptimizerSpec
from bpdemo.scores import accuracy
from bpdemo.spec import MLPSpec, NetworkSpec
from bpdemo.train import run_epochs
from bpdemo.worked import fmt

CURVE_POINTS = 200  # points of a loss curve sent with a frame (thinned evenly past this)
MARGIN = 0.15  # the grid reaches this fraction of the data's extent beyond it on each side


def thinned(values: list, count: int) -> list:
    """About `count` of `values`, evenly spaced, the first and last always among them."""
    if len(values) <= count:
        return values
    stride = math.ceil(len(values) / count)
    return values[::stride] + ([values[-1]] if (len(values) - 1) % stride else [])


def load_points(settings: PlaygroundSettings) -> tuple[np.ndarray, np.ndarray, str]:
    """(points, 2) coordinates, (points,) labels or values, and the problem's kind."""
    if settings.dataset == CSV:
        coordinates, targets, kind = parse_csv(settings.csv, MAX_CLASSES)
        if not MIN_POINTS <= len(targets) <= MAX_POINTS:
            raise ExploreError(
                422,
                f"the CSV holds {len(targets)} points; the playground takes {MIN_POINTS} to "
                f"{MAX_POINTS}",
            )
        return coordinates, targets, kind
    problem = PROBLEMS[settings.dataset]
    coordinates, targets = problem.make(
        settings.points, settings.noise, settings.seed, settings.classes
    )
    return np.asarray(coordinates, dtype=np.float64), np.asarray(targets), problem.kind


class Playground:
    """One page's playground: the data and its split, the pair of models, the curves so far."""

    def __init__(self, settings: PlaygroundSettings):
        self.settings = settings
        coordinates, targets, kind = load_points(settings)
        self.kind = KINDS[kind]
        self.coordinates, self.targets = coordinates, targets
        n = len(targets)
        self.classes = int(targets.max()) + 1 if kind != "regression" else 0
        # the test points: a seeded draw; the training points keep their order (with no test
        # share, training is exactly as on all the points)
        order = np.random.default_rng(settings.seed).permutation(n)
        held_out = np.zeros(n, dtype=bool)
        held_out[order[: held_out_points(n, settings.test_share)]] = True
        self.is_test = held_out
        self.dtype = torch.float64 if settings.dtype == "float64" else torch.float32
        self.features = list(settings.features)
        self.x_all = torch.tensor(features_of(coordinates, self.features), dtype=self.dtype)
        if self.kind.loss == "cross_entropy":
            self.y_all = torch.tensor(targets, dtype=torch.long)
        else:
            self.y_all = torch.tensor(targets, dtype=self.dtype).unsqueeze(1)
        train, test = torch.tensor(~held_out), torch.tensor(held_out)
        self.x, self.y = self.x_all[train], self.y_all[train]
        self.x_test, self.y_test = self.x_all[test], self.y_all[test]
        self.steps_per_epoch = steps_per_epoch(len(self.x), settings.batch_size)
        # checked here for pasted points, whose rows are only known once parsed
        if refusal := epoch_too_long(len(self.x), settings.batch_size):
            raise ExploreError(422, refusal)
        self.spec = self.network_spec()
        self.pair = SideBySide(
            self.spec,
            OptimizerSpec(
                name=settings.optimizer, lr=settings.lr, weight_decay=settings.weight_decay
            ),
        )
        # the positions of the layers with weights among the model's layers (dropout between)
        self.linear = [
            k for k, layer in enumerate(self.pair.manual.layers) if hasattr(layer, "weight")
        ]
        self.norms_at_start = self.initial_norms()
        self.generator = torch.Generator().manual_seed(settings.seed)
        low, high = coordinates.min(axis=0), coordinates.max(axis=0)
        pad = np.maximum((high - low) * MARGIN, 1e-3)
        self.box = np.stack([low - pad, high + pad])  # [[x min, y min], [x max, y max]]
        self.grid = self.plane_grid(settings.grid)
        self.neuron_grid = self.plane_grid(settings.neuron_grid)
        if kind == "regression":  # the colour scale of the values: the targets' own range
            self.value_range = (float(targets.min()), float(targets.max()))
        self.curve: list[tuple[int, float, float, float, float]] = []
        self.norm_history: list[tuple[int, list[float]]] = []
        self.last: StepRecord | None = None
        self.diverged_at_step: int | None = None
        self.epochs = 0
        self.record_losses()

    # -- set-up ------------------------------------------------------------------------------------
    @property
    def hidden(self) -> list[int]:
        return list(self.settings.hidden)

    @property
    def outputs(self) -> int:
        return self.classes if self.kind.loss == "cross_entropy" else 1

    @property
    def sizes(self) -> list[int]:
        return [len(self.features), *self.hidden, self.outputs]

    @property
    def activations(self) -> list[str]:
        return [self.settings.activation] * len(self.hidden) + [self.kind.output_activation]

    @property
    def layer_names(self) -> list[str]:
        """The page's name of each layer with weights, first first: `layers.l` with l its place
        among them, as a clicked point's worked example names its weights (the dropout layers
        between are not drawn, so not counted). The network's edges, the gradient norms and the
        health chart all say these."""
        return [f"layers.{layer}" for layer in range(len(self.linear))]

    def neuron_names(self) -> list[list[str]]:
        """The page's name of each neuron, by depth: 0 the inputs, then what each layer with weights
        computes (`layers.l` computes depth l + 1)."""
        last = len(self.sizes) - 1
        names = [[f"input {FEATURES[f].label}" for f in self.features]]
        for depth, width in enumerate(self.sizes[1:], 1):
            layer = "output" if depth == last else f"hidden layer {depth}, neuron"
            names.append([f"{layer} {unit}" for unit in range(width)])
        return names

    def network_spec(self) -> MLPSpec | NetworkSpec:
        """An MLP, or with dropout the same layers with a dropout layer after each hidden one."""
        common = {"loss": self.kind.loss, "init": "xavier", "seed": self.settings.seed}
        if not self.settings.dropout:
            return MLPSpec(
                sizes=self.sizes, activations=self.activations, dtype=self.dtype, **common
            )
        layers: list[dict[str, Any]] = []
        for width in self.hidden:
            layers.append(
                {"type": "linear", "units": width, "activation": self.settings.activation}
            )
            layers.append({"type": "dropout", "p": self.settings.dropout})
        layers.append(
            {"type": "linear", "units": self.outputs, "activation": self.kind.output_activation}
        )
        return NetworkSpec(inputs=len(self.features), layers=layers, dtype=self.dtype, **common)

    def plane_grid(self, size: int) -> torch.Tensor:
        """(size², features) inputs at the points of a size x size grid over the box, top row first."""
        xs = np.linspace(self.box[0, 0], self.box[1, 0], size)
        ys = np.linspace(self.box[1, 1], self.box[0, 1], size)  # top row first, as an image
        grid_x, grid_y = np.meshgrid(xs, ys)
        plane = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)
        return torch.tensor(features_of(plane, self.features), dtype=self.dtype)

    def initial_norms(self) -> list[float]:
        """Each layer's ‖dL/dW‖ at initialisation on the training points, the hand-written model's,
        for `bpdemo.health`'s rules (no step is taken: the gradients only). Both models take the
        pass, so that with dropout their generators stay in step for training."""
        _, grads, _, _ = self.pair.gradients(self.x, self.y)
        return [float(torch.linalg.vector_norm(grads[f"layers.{k}.weight"])) for k in self.linear]

    # -- training ----------------------------------------------------------------------------------
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float, float, float]:
        """(loss hand-written, loss autograd, score hand-written, score autograd) on (x, y)."""
        if len(x) == 0:
            return (math.nan,) * 4
        evaluation = self.pair.evaluate(x, y)
        return (
            evaluation.loss_manual,
            evaluation.loss_autograd,
            self.score(evaluation.output_manual, y),
            self.score(evaluation.output_autograd, y),
        )

    def score(self, output: torch.Tensor, y: torch.Tensor) -> float:
        """Accuracy (the share of points on the right side of the boundary), or R² for values."""
        if self.kind.loss == "bce":
            return float(((output >= 0.5).to(y.dtype) == y).double().mean())
        if self.kind.loss == "cross_entropy":
            return accuracy(output, y)["accuracy"]
        residual = float(((output - y) ** 2).sum())
        total = float(((y - y.mean()) ** 2).sum())
        return 1 - residual / total if total > 0 else math.nan

    @torch.no_grad()
    def record_losses(self) -> None:
        """Both models on the training and the test points: the curves' next point, the scores."""
        try:
            train = self.evaluate(self.x, self.y)
            test = self.evaluate(self.x_test, self.y_test)
        except RuntimeError:
            self.refuse_unless_overflowed()
            train = test = (math.nan,) * 4
        step = self.pair.steps_done
        self.curve.append((step, train[0], train[1], test[0], test[1]))
        self.scores = {
            "train": {"manual": train[2], "autograd": train[3]},
            "test": {"manual": test[2], "autograd": test[3]},
        }
        self.accuracy = self.scores["train"]

    def train(self, request: TrainRequest) -> dict[str, Any]:
        """Train for `request.epochs` epochs (both models, same mini-batches), then one frame."""
        if self.diverged_at_step is not None:
            raise ExploreError(
                409,
                f"training diverged at step {self.diverged_at_step}: set up again, with a smaller "
                f"learning rate (now {self.settings.lr:g})",
            )
        steps = request.epochs * self.steps_per_epoch
        if steps > MAX_STEPS_PER_REQUEST:
            raise ExploreError(
                422,
                f"{request.epochs} epochs are {steps} steps here; one request runs at most "
                f"{MAX_STEPS_PER_REQUEST}: ask for fewer epochs or use larger batches",
            )
        first_step = self.pair.steps_done
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
            for k, record in enumerate(loop.records, first_step + 1):
                self.norm_history.append((k, self.weight_norms(record)))
            if loop.diverged_at_step is not None:
                self.diverged_at_step = self.pair.steps_done
        self.record_losses()
        return self.frame()

    def weight_norms(self, record: StepRecord) -> list[float]:
        """‖dL/dW‖ of each layer with weights at one step, the hand-written model's."""
        return [record.grad_norm_manual[f"layers.{k}.weight"] for k in self.linear]

    def refuse_unless_overflowed(self) -> None:
        """Re-raise the error being handled unless the weights have gone to inf or NaN.

        torch's bce refuses probabilities that are NaN rather than answering NaN, so the autograd
        model raises where the hand-written one would report a NaN loss.
        """
        if bool(torch.isfinite(self.pair.manual.flat_parameters).all()):
            raise

    # -- what the page draws -----------------------------------------------------------------------
    def shades(self, output: torch.Tensor) -> tuple[list[int], list[int] | None]:
        """The output on a grid as 0-255 shades (P(class 1); the winning class's probability; the
        value within the targets' range), and the winning class of each point (classes only)."""
        if self.kind.loss == "cross_entropy":
            probabilities = torch.softmax(output, dim=1)
            top, winner = probabilities.max(dim=1)
            return to_255(top, 0.0, 1.0), winner.tolist()
        if self.kind.loss == "bce":
            return to_255(output.reshape(-1), 0.0, 1.0), None
        return to_255(output.reshape(-1), *self.value_range), None

    @torch.no_grad()
    def boundary(self) -> dict[str, Any]:
        """The hand-written model's output over the plane, and max |hand - autograd| there (the
        two runs' outputs: part of their drift)."""
        output_manual, output_autograd = self.pair.predict(self.grid)
        difference = float((output_manual - output_autograd).abs().max())
        shades, winners = self.shades(output_manual)
        return {
            "size": self.settings.grid,
            "p255": shades,
            "classes": winners,
            "max_abs_diff": difference,
        }

    @torch.no_grad()
    def neuron_pictures(self, grid: torch.Tensor | None = None) -> list[list[list[int]]]:
        """Every neuron's output over the plane, by depth (0: the input features, then each layer
        with weights), as 0-255 shades, each picture from its own smallest value (0) to its largest
        (255): where the neuron is more or less active, whatever its activation's range."""
        grid = self.neuron_grid if grid is None else grid
        manual = self.pair.manual
        mode = manual.training
        manual.eval()
        try:
            manual.forward(grid)
            outputs = [grid] + [manual.layers[k].output for k in self.linear]
        finally:
            manual.train(mode)
        pictures = []
        for values in outputs:
            low, high = values.amin(dim=0), values.amax(dim=0)
            # a neuron with one value over the whole plane has no more or less: all middle shade
            flat = high <= low
            scaled = torch.where(flat, 0.5, (values - low) / torch.where(flat, 1.0, high - low))
            pictures.append(to_255(scaled.t(), 0.0, 1.0))
        return pictures

    def neuron(self, depth: int, unit: int) -> dict[str, Any]:
        """One neuron's picture at the boundary's resolution (/api/playground/neuron)."""
        if depth >= len(self.sizes) or unit >= self.sizes[depth]:
            raise ExploreError(
                422,
                f"neuron {unit} at depth {depth} does not exist: the widths are {self.sizes}",
            )
        pictures = self.neuron_pictures(self.grid)
        return {
            "depth": depth,
            "unit": unit,
            "size": self.settings.grid,
            "p255": pictures[depth][unit],
        }

    def weights(self) -> list[dict[str, list]]:
        """The hand-written model's weight (out, in) and bias (out,) of each layer with weights."""
        layers = self.pair.manual.layers
        return [
            {"weight": layers[k].weight.tolist(), "bias": layers[k].bias.tolist()}
            for k in self.linear
        ]

    def layer_norms(self) -> list[dict[str, Any]]:
        """Each layer's gradient norm at the last step, sqrt(|∂L/∂W|² + |∂L/∂b|²), both models."""
        if self.last is None:
            return []
        rows = []
        for layer, (k, name) in enumerate(zip(self.linear, self.layer_names, strict=True)):
            names = (f"layers.{k}.weight", f"layers.{k}.bias")  # the model's, dropout counted
            norms = [
                math.hypot(*(norms[n] for n in names))
                for norms in (self.last.grad_norm_manual, self.last.grad_norm_autograd)
            ]
            rows.append(
                {
                    "layer": layer,
                    "manual": norms[0],
                    "autograd": norms[1],
                    "text": [name, fmt(norms[0]), fmt(norms[1])],
                }
            )
        return rows

    def health(self) -> dict[str, Any]:
        """Each layer's ‖dL/dW‖ over the steps, and `bpdemo.health`'s verdict on the network."""
        thresholds = Thresholds()
        norms = self.norms_at_start
        exploded = self.diverged_at_step is not None
        verdict, rule = judge(norms, exploded, self.settings.activation, thresholds)
        history = thinned(self.norm_history, CURVE_POINTS)
        return {
            "verdict": verdict,
            "rule": rule,
            "norms_at_start": norms,
            "steps": [step for step, _ in history],
            "layers": [[row[k] for _, row in history] for k in range(len(self.linear))],
            "text": f"{verdict}: {self.health_reason(rule, norms, thresholds)}",
        }

    def health_reason(self, rule: str, norms: list[float], thresholds: Thresholds) -> str:
        """Why the rule fired, with the numbers it read (the rules: `bpdemo.health`)."""
        ratio = first_last_ratio(norms)
        largest = max(norms)
        r = thresholds.ratio
        at_start = "at initialisation"
        activation = self.settings.activation
        reasons = {
            "exploded": f"the loss became inf or NaN at step {self.diverged_at_step}",
            "grows": f"{at_start} the first layer's gradient is {ratio:.3g}× the last's (above "
            f"{r:g}×): it grows on its way back",
            "huge": f"{at_start} a layer's gradient is {largest:.3g} (above "
            f"{thresholds.huge_gradient:g})",
            "tiny": f"{at_start} every layer's gradient is below {thresholds.tiny_gradient:g} "
            f"(the largest is {largest:.2e})",
            "small_slope": f"{at_start} the first layer's gradient is {ratio:.1e} of the last's "
            f"(below 1/{r:g}): {activation}'(z) ≤ {ACTIVATIONS[activation].max_slope:g}, and "
            f"each of the {len(self.hidden)} hidden layers multiplies the gradient by it",
            "shrinks": f"{at_start} the first layer's gradient is {ratio:.1e} of the last's "
            f"(below 1/{r:g}): it shrinks on its way back",
            "within": f"{at_start} the first and last layers' gradients are within {r:g}× of "
            f"each other ({ratio:.3g}), none below {thresholds.tiny_gradient:g} or above "
            f"{thresholds.huge_gradient:g}",
        }
        return reasons[rule]

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

    def setup_answer(self) -> dict[str, Any]:
        """The answer of /api/playground/setup: the points (also as fractions of the picture)."""
        extent = self.box[1] - self.box[0]
        fractions = (self.coordinates - self.box[0]) / extent
        regression = self.kind.loss == "mse"
        # a value's colour, as the background's (classes have their own colours)
        shades = to_255(self.targets, *self.value_range) if regression else [None] * len(fractions)
        return {
            "settings": self.settings.model_dump(exclude={"csv"}),
            "network": {
                "sizes": self.sizes,
                "activations": self.activations,
                "loss": self.kind.loss,
                "dropout": self.settings.dropout,
                "layers": self.layer_names,
                "neurons": self.neuron_names(),
            },
            "kind": self.kind.name,
            "score": self.kind.score,
            "classes": self.classes,
            "features": [{"name": f, "label": FEATURES[f].label} for f in self.features],
            "steps_per_epoch": self.steps_per_epoch,
            "train_points": len(self.x),
            "test_points": len(self.x_test),
            "value_range": list(self.value_range) if regression else None,
            "points": [
                {
                    "x": float(p[0]),
                    "y": float(p[1]),
                    "u": float(f[0]),
                    "v": float(1 - f[1]),
                    "label": float(c) if regression else int(c),
                    "shade": shade,
                    "test": bool(t),
                }
                for p, f, c, t, shade in zip(
                    self.coordinates, fractions, self.targets, self.is_test, shades, strict=True
                )
            ],
            "box": {
                "x": [float(self.box[0, 0]), float(self.box[1, 0])],
                "y": [float(self.box[0, 1]), float(self.box[1, 1])],
            },
            "frame": self.frame(),
        }

    def frame(self) -> dict[str, Any]:
        """The answer of /api/playground/train (docs/explore.md lists its fields).

        The verdict, at the same parameters: `max_grad_diff`, `max_abs_grad_diff`,
        `within_tolerance`, `outside_from_step`. The drift of the two runs: `drift`, and
        `grid.max_abs_diff` (their outputs over the plane).
        """
        grid = self.boundary()
        step, loss_manual, loss_autograd, test_manual, test_autograd = self.curve[-1]
        agreement = self.pair.agreement
        drift = agreement.drift
        tolerance = TOLERANCES[self.spec.dtype]
        first = self.curve[0][1]
        top = max(
            (v for row in self.curve for v in row[1:] if math.isfinite(v)),
            default=1.0,
        )
        last_step = max(step, 1)
        curve = thinned(self.curve, CURVE_POINTS)
        scores = self.scores

        def line(column: int) -> list:
            # points as fractions of the plot: (step / last step, loss / top)
            return [[row[0] / last_step, _fraction(row[column], top)] for row in curve]

        return {
            "step": step,
            "epoch": self.epochs,
            "loss": {"manual": loss_manual, "autograd": loss_autograd, "first": first},
            "test_loss": {"manual": test_manual, "autograd": test_autograd},
            "accuracy": self.accuracy,
            "scores": scores,
            "diverged_at_step": self.diverged_at_step,
            "message": self.message(loss_manual, first),
            "grad_norms": self.layer_norms(),
            "health": self.health(),
            "neurons": {"size": self.settings.neuron_grid, "pictures": self.neuron_pictures()},
            "weights": self.weights(),
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
                "test_loss_manual": _number(test_manual),
                "test_loss_autograd": _number(test_autograd),
                "score": self.kind.score,
                "accuracy_manual": self.score_text(scores["train"]["manual"]),
                "accuracy_autograd": self.score_text(scores["train"]["autograd"]),
                "test_score_manual": self.score_text(scores["test"]["manual"]),
                "test_score_autograd": self.score_text(scores["test"]["autograd"]),
                "max_grad_diff": f"{agreement.max_rel_grad_diff:.1e}",
                "tolerance": f"{tolerance:g}",
                "verdict": "within" if agreement.within_tolerance else "OUTSIDE",
                "outside_from": (
                    "" if agreement.within_tolerance else f"from step {agreement.outside_from_step}"
                ),
                "drift": drift.describe(agreement.steps_compared, tolerance),
                "why_drift": why_runs_drift(self.spec.dtype) if drift.parted_at_step else "",
                "grid_diff": f"{grid['max_abs_diff']:.1e}",
                "top": fmt(top),
            },
            "grid": grid,
            "curve": {
                "top": top,
                "last_step": last_step,
                "manual": line(1),
                "autograd": line(2),
                "test_manual": line(3),
                "test_autograd": line(4),
            },
        }

    def score_text(self, value: float) -> str:
        if not math.isfinite(value):
            return "–"
        return f"{value:.1%}" if self.kind.score == "accuracy" else f"{value:.3f}"


def to_255(values: Any, low: float | torch.Tensor, high: float | torch.Tensor) -> list:
    """Values (a tensor or an array) in [low, high] as whole shades 0-255, a list (of lists by row):
    the pictures' colour scale, shared with the image tab. NaN is the middle shade; a range of width
    0 counts as 1 wide. low and high may be tensors, broadcast against the values (a range a row)."""
    span = torch.as_tensor(high - low, dtype=torch.float64)
    span = torch.where(span > 0, span, 1.0)
    scaled = torch.nan_to_num((torch.as_tensor(values).double() - low) / span, nan=0.5)
    return scaled.clamp(0, 1).mul(255).round().to(torch.uint8).tolist()


def _fraction(value: float, top: float) -> float | None:
    if not math.isfinite(value) or top <= 0:
        return None
    return min(value / top, 1.0)


def _number(value: float) -> str:
    return fmt(value) if math.isfinite(value) else "–"


# -- one point, as a worked example; the network, exported -------------------------------------------
def point_config(playground: Playground, index: int) -> dict[str, Any]:
    """A worked example (as a dict, `WorkedConfig`'s keys) of one point with the playground's current
    weights: its forward pass, its loss, its backward pass and the update of plain gradient descent
    it alone would cause, at the playground's learning rate (dropout off: one point's step)."""
    count = len(playground.targets)
    if index >= count:
        raise ExploreError(
            422, f"point {index} does not exist: there are {count} (0 to {count - 1})"
        )
    layers = playground.weights()
    target = playground.y_all[index]
    targets = [int(target)] if playground.kind.loss == "cross_entropy" else [target.tolist()]
    where = "test" if playground.is_test[index] else "training"
    return {
        "title": (
            f"point {index} ({where}) of the playground, with the weights after step "
            f"{playground.pair.steps_done}"
        ),
        "network": {
            "sizes": playground.sizes,
            "activations": playground.activations,
            "loss": playground.kind.loss,
            "dtype": playground.settings.dtype,
        },
        "init": {
            "weights": [layer["weight"] for layer in layers],
            "biases": [layer["bias"] for layer in layers],
        },
        "train": {"lr": playground.settings.lr, "steps": 1, "optimizer": "sgd"},
        "data": {"inputs": [playground.x_all[index].tolist()], "targets": targets},
        "labels": {"inputs": [FEATURES[f].label for f in playground.features]},
    }


SCRIPT_ACTIVATIONS = {  # each of `bpdemo.functional.ACTIVATIONS` as a torch.nn module
    "identity": "torch.nn.Identity()",
    "sigmoid": "torch.nn.Sigmoid()",
    "tanh": "torch.nn.Tanh()",
    "relu": "torch.nn.ReLU()",
    "leaky_relu": f"torch.nn.LeakyReLU({LEAKY_RELU_SLOPE!r})",
    "softplus": f"torch.nn.Softplus(threshold={SOFTPLUS_THRESHOLD!r})",
}


@torch.no_grad()
def export(playground: Playground) -> dict[str, Any]:
    """The network's weights as JSON, its predictions on every point (the hand-written model's, in
    evaluation mode), and a PyTorch script that rebuilds it and prints the same predictions."""
    layers = playground.weights()
    output_manual, _ = playground.pair.predict(playground.x_all)
    softmax = playground.kind.loss == "cross_entropy"
    predictions = torch.softmax(output_manual, dim=1) if softmax else output_manual
    modules = []
    for layer, activation in zip(layers, playground.activations, strict=True):
        out_features, in_features = len(layer["weight"]), len(layer["weight"][0])
        modules.append(f"    torch.nn.Linear({in_features}, {out_features}),")
        modules.append(f"    {SCRIPT_ACTIVATIONS[activation]},")
    names = [f"layers.{k}" for k in playground.linear]
    parameters = {}
    for name, layer in zip(names, layers, strict=True):
        parameters[f"{name}.weight"], parameters[f"{name}.bias"] = layer["weight"], layer["bias"]
    features = ", ".join(FEATURES[f].label for f in playground.features)
    script = f'''"""The playground's network after step {playground.pair.steps_done}, rebuilt in PyTorch.

Inputs: {features}. Prints one line per point: {"the class probabilities (softmax of the outputs)" if softmax else "the output"}.
"""

import torch

torch.set_default_dtype(torch.float64)
model = torch.nn.Sequential(
{chr(10).join(modules)}
)
WEIGHTS = {[[layer["weight"], layer["bias"]] for layer in layers]!r}
with torch.no_grad():
    linear = [module for module in model if isinstance(module, torch.nn.Linear)]
    for module, (weight, bias) in zip(linear, WEIGHTS):
        module.weight.copy_(torch.tensor(weight))
        module.bias.copy_(torch.tensor(bias))
    INPUTS = torch.tensor({playground.x_all.double().tolist()!r})
    outputs = model(INPUTS)
{"    outputs = torch.softmax(outputs, dim=1)" + chr(10) if softmax else ""}for row in outputs.tolist():
    print(",".join(repr(value) for value in row))
'''
    return {
        "sizes": playground.sizes,
        "activations": playground.activations,
        "features": playground.features,
        "step": playground.pair.steps_done,
        "parameters": parameters,
        "predictions": predictions.double().tolist(),
        "script": script,
    }
