"""A worked example run: on its inputs, on standardised inputs if the config asks, and audited.

From Python (`docs/worked_examples_python.md`):

    result = run("configs/worked_321.toml")       # or load(...) first: a path, a dict, TOML text
    print(result.text())                          # the walk-through, as the command line prints it
    result.audit                                  # one ClaimResult per claim
    result.trace()                                # trace.json as a dict
    result.picture(step=1, phase="backward")      # a matplotlib Figure
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bpdemo.cli import torch_threads
from bpdemo.config import Override
from bpdemo.worked.audit import ClaimResult, audit_claims, audit_table
from bpdemo.worked.example import WorkedExample
from bpdemo.worked.files import metrics_dict, trace_dict
from bpdemo.worked.picture import network_figure, quiet_numerics
from bpdemo.worked.schema import ConfigSource, load, source_name
from bpdemo.worked.trace import WorkedRun, run_example
from bpdemo.worked.walkthrough import Walkthrough, scale_comparison

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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
            parts.append("claims of the source, audited:\n" + self.audit_table())
        return "\n\n".join(parts)

    def audit_table(self, width: int = 100) -> str:
        """The audit as the walk-through prints it: a legend and one row per claim."""
        return audit_table(self.audit, width)

    def trace(self) -> dict[str, Any]:
        """Every number of every kept step, the claims and their verdicts (what trace.json holds)."""
        return trace_dict(self)

    def metrics(self) -> dict[str, Any]:
        """The run's status, the two models' agreement, final losses, claims by verdict."""
        return metrics_dict(self)

    def picture(
        self,
        step: int | None = None,
        phase: str = "step",
        *,
        sample: int | None = None,
        edge_labels: str | None = None,
        standardised: bool = False,
    ) -> Figure:
        """The network at `step` (default: [picture] step) in `phase` (step, forward, backward or
        update) for `sample`, as a matplotlib Figure (save it with `figure.savefig`); `standardised`
        draws the standardised run."""
        run = self.standardised if standardised else self.run
        if run is None:
            raise ValueError("this example has no standardised run ([data.standardise])")
        with quiet_numerics():
            return network_figure(
                run, step=step, phase=phase, sample=sample, edge_labels=edge_labels
            )

    def runs(self) -> list[WorkedRun]:
        return [self.run] + ([self.standardised] if self.standardised is not None else [])


def run_worked_example(example: WorkedExample) -> WorkedResult:
    """Run the example (and its standardised twin, if asked for) and audit its claims."""
    with quiet_numerics():
        run = run_example(example)
        twin = example.standardised()
        standardised = run_example(twin) if twin is not None and not run.interrupted else None
    return WorkedResult(run, standardised, audit_claims(run))


def run(source: ConfigSource, overrides: Sequence[Override | str] = ()) -> WorkedResult:
    """Load a worked example (a WorkedConfig, a path, a dict or TOML text; see `load`) and run it.

    Raises ConfigError (one line) for a config that is wrong; a run that diverges or is interrupted
    returns normally, with `result.run.diverged_at_step` or `result.run.interrupted` set.
    """
    config = load(source, overrides)
    example = WorkedExample.from_config(config, source=source_name(source))
    with torch_threads(config.train.threads):
        return run_worked_example(example)
