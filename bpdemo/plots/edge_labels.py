"""Labels on the edges of a drawing, placed where each is legible and unambiguous, or left out.

A drawing of fixed scale (a data unit is `inches_per_unit` inches) knows how much room a text takes,
so `Layout` can keep a list of what is already drawn (neurons, their texts, placed labels) and put
each edge label, in order of priority, at the spot along its edge that covers none of it and that no
other edge passes near (a label another edge crosses at its middle could name either).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in data units
# Where along an edge (fraction of the way from its start) a label may sit.
SPOTS = (0.5, 0.38, 0.62, 0.28, 0.72, 0.2, 0.8)
CLEARANCE = 0.3  # how near (data units) another edge may pass a label's middle
GLYPH_WIDTH, LINE_HEIGHT = 0.6, 1.25  # of DejaVu Sans, in ems: about, for digits and signs


@dataclass
class EdgeLabel:
    """The text for one edge, and where the edge runs."""

    text: str
    colour: str
    start: tuple[float, float]
    end: tuple[float, float]
    gap: int  # the layer gap the edge crosses
    index: int  # of the edge among those of its gap
    fallback: float  # where "all" puts it when no spot is free (a fraction of the way)


def _overlaps_any(box: Box, others: np.ndarray) -> bool:
    """Whether `box` overlaps any row of `others` (K, 4)."""
    x0, y0, x1, y1 = box
    return bool(
        np.any(
            (x0 < others[:, 2]) & (others[:, 0] < x1) & (y0 < others[:, 3]) & (others[:, 1] < y1)
        )
    )


def _distances(point: tuple[float, float], starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Distance from `point` to each segment starts[k] -> ends[k] (arrays (K, 2))."""
    direction = ends - starts
    length2 = np.maximum((direction**2).sum(axis=1), 1e-12)
    t = np.clip(((np.asarray(point) - starts) * direction).sum(axis=1) / length2, 0, 1)
    nearest = starts + t[:, None] * direction
    return np.hypot(*(nearest - np.asarray(point)).T)


@dataclass
class Layout:
    """What a drawing of fixed scale already covers, and where its edge labels can go."""

    inches_per_unit: float
    taken: list[Box] = field(default_factory=list)

    def box(self, x: float, y: float, text: str, points: float, ha="center", va="center") -> Box:
        """An estimate of the box a text of `points` covers, with a little padding."""
        lines = text.split("\n")
        scale = points / 72 / self.inches_per_unit  # an em in data units
        width = max(len(line) for line in lines) * GLYPH_WIDTH * scale + 0.16
        height = len(lines) * LINE_HEIGHT * scale + 0.12
        x0 = {"left": x, "center": x - width / 2, "right": x - width}[ha]
        y0 = {"bottom": y, "center": y - height / 2, "top": y - height}[va]
        return (x0, y0, x0 + width, y0 + height)

    def take(self, box: Box) -> None:
        self.taken.append(box)

    def place(
        self,
        labels: list[EdgeLabel],
        edges: list[tuple[np.ndarray, np.ndarray]],
        points: float,
        mode: str = "auto",
        budgets: list[int] | None = None,
    ) -> list[tuple[EdgeLabel, float, float]]:
        """(label, x, y) of each label that gets a place, `labels` coming in order of priority.

        Of the free spots along its edge, a label takes the one farthest from the other edges of
        its gap (`edges[gap]`: their starts and ends, (K, 2) each), if that is at least CLEARANCE;
        "auto" places at most `budgets[gap]` labels in a gap and leaves out those with no such spot,
        "all" puts those at their fallback spot, whatever they cover.
        """
        placed = []
        per_gap = [0] * len(edges)
        for label in labels:
            if mode == "auto" and budgets is not None and per_gap[label.gap] >= budgets[label.gap]:
                continue
            (x0, y0), (x1, y1) = label.start, label.end
            starts, ends = edges[label.gap]
            others = np.arange(len(starts)) != label.index
            best, best_clearance = None, CLEARANCE
            taken = np.array(self.taken).reshape(-1, 4)
            for t in SPOTS:
                x, y = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
                box = self.box(x, y, label.text, points)
                if _overlaps_any(box, taken):
                    continue
                distances = _distances((x, y), starts[others], ends[others])
                clearance = float(distances.min()) if distances.size else math.inf
                if clearance > best_clearance:
                    best, best_clearance = (x, y, box), clearance
            if best is None and mode == "all":
                x, y = x0 + label.fallback * (x1 - x0), y0 + label.fallback * (y1 - y0)
                best = (x, y, self.box(x, y, label.text, points))
            if best is not None:
                self.take(best[2])
                placed.append((label, best[0], best[1]))
                per_gap[label.gap] += 1
        return placed
