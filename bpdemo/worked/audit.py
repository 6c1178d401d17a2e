"""The audit of a worked example: each claim of the source against what backpropagation gives.

A claim is judged at the precision it was written with, or at its own tolerance (see
`bpdemo.worked.claims`); so is the source's own formula for it, which tells an arithmetic slip from a
wrong method. The table fits a terminal of TABLE_WIDTH columns: when the formulas do not fit beside
the numbers, each goes on its own line under its claim.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

from bpdemo.worked.claims import Claim, agrees
from bpdemo.worked.diagnosis import diagnose
from bpdemo.worked.trace import WorkedRun
from bpdemo.worked.walkthrough import fmt

TABLE_WIDTH = 100


@dataclass
class ClaimResult:
    """One audited claim: what the source says, what its formula gives, what backprop gives."""

    claim: Claim
    true_value: float | None  # None: the run did not reach the claim's step
    # The slips that reproduce a disagreeing claim, one sentence each (bpdemo.worked.diagnosis).
    diagnosis: list[str] = field(default_factory=list)

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
            "judged_by": claim.judged_by,
            "digits": claim.digits,
            "formula": claim.formula,
            "formula_value": claim.formula_value,
            "true_value": self.true_value,
            "agrees": self.agrees,
            "formula_agrees": self.formula_agrees,
            "diagnosis": self.diagnosis,
        }


def audit_claims(run: WorkedRun) -> list[ClaimResult]:
    """Each claim of the run's example with its true value, and why it disagrees if it does."""
    results = []
    for claim in run.example.claims:
        true_value = run.claim_values.get(claim.number)
        results.append(ClaimResult(claim, true_value, diagnose(claim, true_value, run)))
    return results


AUDIT_LEGEND = (
    "± is how far a claim may be from the value and still agree: half a unit in the last decimal "
    "place the claim was written with (0.27 → 0.005), or the claim's own tolerance (marked t), or "
    "half a unit in the last of its own significant digits (marked d and their count: 0.7514 with "
    "digits = 3 → 0.0005)."
)


def _tolerance_cell(claim: Claim) -> str:
    mark = {"written": "", "tolerance": " t", "digits": f" d{claim.digits}"}[claim.judged_by]
    return fmt(claim.tolerance, 1) + mark


def _verdict(value: bool | None) -> str:
    return "–" if value is None else ("agrees" if value else "WRONG")


Column = tuple[tuple[str, str], bool, list[str]]  # (header's two lines, left-aligned, cells)


def audit_table(results: list[ClaimResult], width: int = TABLE_WIDTH) -> str:
    """The audit as a plain-text table, one row per claim, with its legend, `width` columns wide."""
    with_formulas = any(r.claim.formula is not None for r in results)
    with_steps = any(r.claim.step != 1 or r.claim.quantity.final for r in results)
    with_samples = any(r.claim.sample for r in results)
    columns: list[Column] = []
    if with_steps:
        columns.append((("", "step"), False, [_step(r.claim) for r in results]))
    columns.append((("", "quantity"), True, [r.claim.quantity.name for r in results]))
    if with_samples:
        columns.append((("", "sample"), False, [str(r.claim.sample) for r in results]))
    columns.append((("", "claimed"), False, [r.claim.written for r in results]))
    columns.append((("", "±"), False, [_tolerance_cell(r.claim) for r in results]))
    formulas = [r.claim.formula or "–" for r in results]
    if with_formulas:
        gives = [_number(r.claim.formula_value, r.claim, "–") for r in results]
        columns.append((("formula", "gives"), False, gives))
    true_values = [_number(r.true_value, r.claim, "not reached") for r in results]
    columns.append((("backprop", "gives"), False, true_values))
    columns.append((("claim vs", "backprop"), False, [_verdict(r.agrees) for r in results]))
    if with_formulas:
        verdicts = [_verdict(r.formula_agrees) for r in results]
        columns.append((("claim vs", "formula"), False, verdicts))
    # First try one line a claim, the formulas in a column of their own.
    inline = columns
    if with_formulas:
        inline = [*columns[:-4], (("source's", "formula"), True, formulas), *columns[-4:]]
    lines = _lines(inline, two_line_header=False)
    if max(len(line) for line in lines) <= width:
        header, rows = lines[:1], lines[1:]
        return "\n".join([*_wrapped(AUDIT_LEGEND, width), *header, *_under(rows, results, width)])
    lines = _lines(columns, two_line_header=True)
    header, rows = lines[:2], lines[2:]
    if with_formulas:  # each formula on its own line(s), under its claim
        rows = [
            "\n".join(
                [row, *_wrapped(f"source's formula: {formula}", width, indent="    ")]
                if formula != "–"
                else [row]
            )
            for row, formula in zip(rows, formulas, strict=True)
        ]
    return "\n".join([*_wrapped(AUDIT_LEGEND, width), *header, *_under(rows, results, width)])


def _under(rows: list[str], results: list[ClaimResult], width: int) -> list[str]:
    """Each row, and under it the slips that reproduce its claim (the diagnosis)."""
    lines = []
    for row, result in zip(rows, results, strict=True):
        lines.append(row)
        for sentence in result.diagnosis:
            lines += _wrapped(f"why: {sentence}", width, indent="    ")
    return lines


def _step(claim: Claim) -> str:
    return "final" if claim.quantity.final else str(claim.step)


def _number(value: float | None, claim: Claim, missing: str) -> str:
    # Two digits more than the claim was written with, so a disagreement shows.
    return missing if value is None else fmt(value, max(6, claim.significant_digits + 2))


def _lines(columns: list[Column], two_line_header: bool) -> list[str]:
    """The header (one line, or two) and one line per row, the columns two spaces apart."""
    if two_line_header:
        headers = [header for header, _, _ in columns]
    else:
        headers = [("", " ".join(word for word in header if word)) for header, _, _ in columns]
    widths = [
        max(len(top), len(bottom), *(len(cell) for cell in cells))
        for (top, bottom), (_, _, cells) in zip(headers, columns, strict=True)
    ]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(w) if left else cell.rjust(w)
            for cell, w, (_, left, _) in zip(cells, widths, columns, strict=True)
        ).rstrip()

    lines = [line([top for top, _ in headers])] if two_line_header else []
    lines.append(line([bottom for _, bottom in headers]))
    lines += [line(list(row)) for row in zip(*(cells for _, _, cells in columns), strict=True)]
    return lines


def _wrapped(text: str, width: int, indent: str = "") -> list[str]:
    return textwrap.wrap(
        text, width, initial_indent=indent, subsequent_indent=indent + "  ", break_on_hyphens=False
    )
