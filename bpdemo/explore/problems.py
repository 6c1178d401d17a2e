"""The playground's problems: 2-D data sets of three kinds, the input features, and pasted points.

A problem is one entry of `PROBLEMS`: its kind, which sets the network's output and loss
(`KINDS`), and how its points are made from a count, a noise level and a seed. `FEATURES` are what
the network may see of a point (x₁, x₂, their squares, product and sines), each computed from the
two coordinates here, so the data, the pictures' grid and the exported script use the same rule.
`parse_csv` reads points of one's own: `x1,x2,label` lines (a class 0..K-1) or `x1,x2,value` lines.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bpdemo.explore.sessions import ExploreError


@dataclass(frozen=True)
class Kind:
    """What the network answers: its output layer, its loss, and how a fit is scored."""

    name: str
    output_activation: str
    loss: str
    score: str  # "accuracy" or "R²"


KINDS = {
    kind.name: kind
    for kind in [
        Kind("two classes", "sigmoid", "bce", "accuracy"),  # one output: P(class 1)
        Kind("classes", "identity", "cross_entropy", "accuracy"),  # a logit per class, softmax
        Kind("regression", "identity", "mse", "R²"),  # one output: the value
    ]
}

Maker = Callable[[int, float, int, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Problem:
    """A data set: `make(points, noise, seed, classes)` -> ((points, 2) coordinates, (points,)
    labels or values)."""

    name: str
    kind: str
    make: Maker
    description: str


def _xor(n: int, noise: float, seed: int, classes: int):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 2))
    x += np.sign(x) * 0.1  # a gap along the axes, as on paper
    labels = (x[:, 0] * x[:, 1] < 0).astype(np.int64)
    return x + rng.normal(0, noise, size=x.shape), labels


def _spiral(n: int, noise: float, seed: int, classes: int):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    t = rng.uniform(0.1, 1, size=n)
    angle = 3 * math.pi * t + math.pi * labels
    x = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1)
    return x + rng.normal(0, noise * 0.5, size=x.shape), labels


def _blobs(n: int, noise: float, seed: int, classes: int):
    """`classes` round clouds, their centres evenly on the unit circle."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    angle = 2 * math.pi * labels / classes + math.pi / 4
    centres = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return centres + rng.normal(0, 0.15 + noise, size=(n, 2)), labels


def _gauss(n: int, noise: float, seed: int, classes: int):
    return _blobs(n, noise, seed, 2)


def _plane(n: int, noise: float, seed: int, classes: int):
    """A tilted plane: the value is (x₁ + x₂) / 2."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 2))
    return x, (x[:, 0] + x[:, 1]) / 2 + rng.normal(0, noise * 0.5, size=n)


BUMPS = [((-0.5, -0.5), 1.0), ((0.5, 0.5), 1.0), ((-0.5, 0.5), -1.0), ((0.5, -0.5), -1.0)]


# scikit-learn is imported when its data is asked for: the import takes longer than the explorer's
# whole start otherwise.
def _moons(n: int, noise: float, seed: int, classes: int):
    from sklearn.datasets import make_moons

    return make_moons(n_samples=n, noise=noise, random_state=seed)


def _circles(n: int, noise: float, seed: int, classes: int):
    from sklearn.datasets import make_circles

    return make_circles(n_samples=n, noise=noise, factor=0.5, random_state=seed)


def _bumps(n: int, noise: float, seed: int, classes: int):
    """Two hills and two hollows, Gaussian bumps of width 0.3 at (±0.5, ±0.5)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 2))
    value = sum(h * np.exp(-((x - c) ** 2).sum(axis=1) / (2 * 0.3**2)) for c, h in BUMPS)
    return x, value + rng.normal(0, noise * 0.5, size=n)


PROBLEMS = {
    problem.name: problem
    for problem in [
        Problem("xor", "two classes", _xor, "class 1 where x₁ and x₂ have different signs"),
        Problem(
            "moons",
            "two classes",
            _moons,
            "two interleaved half circles (scikit-learn's make_moons)",
        ),
        Problem(
            "circles", "two classes", _circles, "a ring around a disc (scikit-learn's make_circles)"
        ),
        Problem("spiral", "two classes", _spiral, "two arms winding 1.5 turns"),
        Problem("gauss", "two classes", _gauss, "two Gaussian clouds"),
        Problem("blobs", "classes", _blobs, "a Gaussian cloud per class, softmax over the classes"),
        Problem("plane", "regression", _plane, "the value (x₁ + x₂) / 2"),
        Problem("bumps", "regression", _bumps, "two Gaussian hills and two hollows"),
    ]
}
CSV = "csv"  # the problem name of pasted points


@dataclass(frozen=True)
class Feature:
    """One input of the network, computed from a point's two coordinates (points, 2) -> (points,)."""

    name: str
    label: str
    compute: Callable[[np.ndarray], np.ndarray]


FEATURES = {
    feature.name: feature
    for feature in [
        Feature("x1", "x₁", lambda p: p[:, 0]),
        Feature("x2", "x₂", lambda p: p[:, 1]),
        Feature("x1^2", "x₁²", lambda p: p[:, 0] ** 2),
        Feature("x2^2", "x₂²", lambda p: p[:, 1] ** 2),
        Feature("x1x2", "x₁x₂", lambda p: p[:, 0] * p[:, 1]),
        Feature("sin_x1", "sin x₁", lambda p: np.sin(p[:, 0])),
        Feature("sin_x2", "sin x₂", lambda p: np.sin(p[:, 1])),
    ]
}


def features_of(points: np.ndarray, names: list[str]) -> np.ndarray:
    """(points, 2) coordinates -> (points, len(names)) inputs of the network."""
    return np.stack([FEATURES[name].compute(points) for name in names], axis=1)


def parse_csv(text: str, max_classes: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Points from `x1,x2,label` or `x1,x2,value` lines: (coordinates (n, 2), labels or values
    (n,), kind). A first line that is not numbers is a header. The labels are classes when every
    one is a whole number from 0 to `max_classes` - 1 (two of them: two classes), else values."""
    lines = [(k, line.strip()) for k, line in enumerate(text.splitlines(), 1) if line.strip()]
    rows = []
    for position, (number, line) in enumerate(lines):
        parts = [part.strip() for part in line.split(",")]
        try:
            values = [float(part) for part in parts]
        except ValueError:
            if position == 0:
                continue  # a header
            raise ExploreError(
                422, f"CSV line {number}: {line[:40]!r} is not three numbers x1,x2,label"
            ) from None
        if len(values) != 3 or not all(math.isfinite(v) for v in values):
            raise ExploreError(
                422,
                f"CSV line {number}: {line[:40]!r} is not three finite numbers x1,x2,label "
                f"(it has {len(values)})",
            )
        rows.append(values)
    if not rows:
        raise ExploreError(422, "the CSV holds no points: paste lines x1,x2,label")
    table = np.asarray(rows, dtype=np.float64)
    targets = table[:, 2]
    whole = np.all(targets == np.round(targets)) and targets.min() >= 0
    if whole and targets.max() < max_classes:
        count = int(targets.max()) + 1
        if count < 2:
            raise ExploreError(422, "the CSV's labels are all 0: give at least two classes")
        kind = "two classes" if count == 2 else "classes"
        return table[:, :2], targets.astype(np.int64), kind
    return table[:, :2], targets, "regression"
