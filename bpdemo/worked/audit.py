"""The audit of a worked example: each claim of the source against what backpropagation gives.

A claim is judged at the precision it was written with (see `bpdemo.worked.claims`); so is the
source's own formula for it, which tells an arithmetic slip from a wrong method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bpdemo.worked.claims import Claim, agrees
from bpdemo.worked.trace import WorkedRun
from bpdemo.worked.walkthrough import fmt


@dataclass
class ClaimResult:
    """One audited claim: what the source says, what its formula gives, what backprop gives."""

    claim: Claim
    true_value: float | None  # None: the run did not reach the claim's step

    @property
    def agrees(self) -> bool | None:
        if self.true_value is None:
            return None
        return agrees(self.claim.claimed, self.true_value, self.claim.tolerance)

    @property
    def formula_agrees(self) -> bool | None:
        if self.claim.formula_value is None:
            return None
        return agrees(self.claim.claimed, self.claim.formula_value, self.claim.tolerance)

    def as_dict(self) -> dict[str, Any]:
        claim = self.claim
        return {
            "name": claim.quantity.name,
            "step": "final" if claim.quantity.final else claim.step,
            "sample": claim.sample,
            "claimed": claim.claimed,
            "written": claim.written,
            "tolerance": claim.tolerance,
            "formula": claim.formula,
            "formula_value": claim.formula_value,
            "true_value": self.true_value,
            "agrees": self.agrees,
            "formula_agrees": self.formula_agrees,
        }


def audit_claims(run: WorkedRun) -> list[ClaimResult]:
    return [ClaimResult(c, run.claim_values.get(c.number)) for c in run.example.claims]


AUDIT_LEGEND = (
    "A claim agrees when |claimed − value| ≤ ± (half a unit in the last decimal place the claim "
    "was written with: 0.27 → 0.005)."
)


def audit_table(results: list[ClaimResult]) -> str:
    """The audit as a plain-text table, one row per claim, with its legend."""
    with_formulas = any(r.claim.formula is not None for r in results)
    with_steps = any(r.claim.step != 1 or r.claim.quantity.final for r in results)
    header = ["step", "quantity", "claimed", "±"]
    if with_formulas:
        header += ["source's formula", "formula gives"]
    header += ["backprop gives", "claim vs backprop"]
    if with_formulas:
        header += ["claim vs formula"]
    rows = []
    for result in results:
        claim = result.claim
        # Two digits more than the claim was written with, so a disagreement shows.
        digits = max(6, claim.significant_digits + 2)
        row = [
            "final" if claim.quantity.final else str(claim.step),
            claim.quantity.name + (f" (sample {claim.sample})" if claim.sample else ""),
            claim.written,
            fmt(claim.tolerance, 1),
        ]
        if with_formulas:
            row += [
                claim.formula or "–",
                "–" if claim.formula_value is None else fmt(claim.formula_value, digits),
            ]
        row += [
            "not reached" if result.true_value is None else fmt(result.true_value, digits),
            _verdict(result.agrees),
        ]
        if with_formulas:
            row += [_verdict(result.formula_agrees)]
        rows.append(row)
    if not with_steps:  # every claim is about step 1: the column would say nothing
        header, rows = header[1:], [row[1:] for row in rows]
    left = {"quantity", "source's formula"}
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if name in left else cell.rjust(width)
            for cell, width, name in zip(cells, widths, header, strict=True)
        ).rstrip()

    return "\n".join([AUDIT_LEGEND, line(header), *(line(row) for row in rows)])


def _verdict(value: bool | None) -> str:
    return "–" if value is None else ("agrees" if value else "WRONG")
