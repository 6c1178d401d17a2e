"""A worked example run: on its inputs, on standardised inputs if the config asks, and audited."""

from __future__ import annotations

from dataclasses import dataclass

from bpdemo.worked.audit import ClaimResult, audit_claims, audit_table
from bpdemo.worked.example import WorkedExample
from bpdemo.worked.trace import WorkedRun, run_example
from bpdemo.worked.walkthrough import Walkthrough, scale_comparison


@dataclass
class WorkedResult:
    """A worked example run on its inputs, and optionally on standardised inputs, with its audit."""

    run: WorkedRun
    standardised: WorkedRun | None
    audit: list[ClaimResult]

    def text(self) -> str:
        """The walk-through of each run, the two side by side, and the audit."""
        parts = [Walkthrough(self.run).text()]
        if self.standardised is not None:
            parts.append("═" * 70)
            parts.append(Walkthrough(self.standardised).text())
            if self.run.steps and self.standardised.steps:
                parts.append(scale_comparison(self.run, self.standardised))
        if self.audit:
            parts.append("claims of the source, audited:\n" + audit_table(self.audit))
        return "\n\n".join(parts)

    def runs(self) -> list[WorkedRun]:
        return [self.run] + ([self.standardised] if self.standardised is not None else [])


def run_worked_example(example: WorkedExample) -> WorkedResult:
    """Run the example (and its standardised twin, if asked for) and audit its claims."""
    run = run_example(example)
    twin = example.standardised()
    standardised = run_example(twin) if twin is not None and not run.interrupted else None
    return WorkedResult(run, standardised, audit_claims(run))
