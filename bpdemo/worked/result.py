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

from torch import Tensor

from bpdemo.infra.config import Override
from bpdemo.train import torch_threads
from bpdemo.worked.audit import AUDIT_LEGEND, ClaimResult, audit_claims, audit_table
from bpdemo.worked.example import WorkedExample
from bpdemo.worked.picture import network_figure, quiet_numerics
from bpdemo.worked.schema import ConfigSource, load, source_name
from bpdemo.worked.trace import StepValues, WorkedRun, run_example
from bpdemo.worked.walkthrough import Walkthrough, scale_comparison

if TYPE_CHECKING:
    from matplotlib.figure import Figure


AGREEMENT_MEASURE = (
    "the largest relative difference between the hand-written step and autograd's step from the "
    "same parameters, over every z, a, dL/da, delta, the loss, every gradient and updated parameter: "
    "a gradient's max |hand-written − autograd| / max S, S the sum of the absolute terms it adds up "
    "(as bpdemo.agreement measures it); every other tensor's max |hand-written − autograd| / "
    "max |autograd|"
)


def _nested(tensor: Tensor) -> Any:
    return tensor.detach().cpu().tolist()


def step_dict(values: StepValues) -> dict[str, Any]:
    return {
        "step": values.step,
        "loss": values.loss,
        "outputs": _nested(values.outputs),
        "hidden": [_nested(a) for a in values.activations[:-1]],
        "pre_activations": [_nested(z) for z in values.pre_activations],
        **(
            {"probabilities": _nested(values.probabilities)}
            if values.probabilities is not None
            else {}
        ),
        "grad_activations": [_nested(g) for g in values.grad_activations],
        "deltas": [_nested(d) for d in values.deltas],
        "grads": {name: _nested(g) for name, g in values.grads.items()},
        "params_before": {name: _nested(p) for name, p in values.params_before.items()},
        "params_after": {name: _nested(p) for name, p in values.params_after.items()},
        "max_manual_autograd_diff": values.max_manual_autograd_diff,
        "max_manual_autograd_abs_diff": values.max_manual_autograd_abs_diff,
    }


def run_dict(run: WorkedRun) -> dict[str, Any]:
    """The trace of one run (without the claims)."""
    spec = run.example.spec
    final = None
    if run.final is not None:
        final = {"loss": run.final.loss, "outputs": _nested(run.final.outputs)}
        if run.final.probabilities is not None:
            final["probabilities"] = _nested(run.final.probabilities)
        final["max_manual_autograd_diff"] = run.final_diff
    return {
        "variant": run.example.variant,
        "network": {
            "sizes": spec.sizes,
            "activations": spec.activations,
            "loss": spec.loss,
            "dtype": str(spec.dtype).removeprefix("torch."),
            "bias": spec.bias,
        },
        "inputs": _nested(run.example.inputs),
        "targets": _nested(run.example.targets),
        "status": {
            "steps_run": run.steps_run,
            "steps_kept": len(run.steps),
            "diverged_at_step": run.diverged_at_step,
            "interrupted": run.interrupted,
        },
        "agreement": agreement_dict(run),
        "steps": [step_dict(values) for values in run.steps],
        "final": final,
    }


def agreement_dict(run: WorkedRun) -> dict[str, Any]:
    """How far the two models were apart over the whole run, against the shared tolerance."""
    return {
        "measure": AGREEMENT_MEASURE,
        "max_manual_autograd_diff": run.max_manual_autograd_diff,
        "tolerance": run.tolerance,
        "within_tolerance": run.max_manual_autograd_diff <= run.tolerance,
    }


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


def trace_dict(result: WorkedResult) -> dict[str, Any]:
    """trace.json: the run, its claims and their verdicts, and the standardised run if any."""
    trace = run_dict(result.run)
    trace["title"] = result.run.example.config.title
    trace["source"] = result.run.example.config.source
    # the signs the claims are written and judged in ([conventions])
    trace["conventions"] = result.run.example.config.conventions.model_dump()
    trace["claims"] = [claim.as_dict() for claim in result.audit]
    trace["claims_tolerance"] = AUDIT_LEGEND
    if result.standardised is not None:
        trace["standardised"] = run_dict(result.standardised)
    return trace


def metrics_dict(result: WorkedResult) -> dict[str, Any]:
    """metrics.json: the run's status, the two models' agreement, final losses, claims by verdict."""
    return {
        "status": run_dict(result.run)["status"],
        "agreement": {r.example.variant: agreement_dict(r) for r in result.runs()},
        "final_loss": {
            r.example.variant: (r.final.loss if r.final else None) for r in result.runs()
        },
        "claims": {
            "total": len(result.audit),
            "agree": sum(1 for c in result.audit if c.agrees),
            "wrong": sum(1 for c in result.audit if c.agrees is False),
            "not_reached": sum(1 for c in result.audit if c.agrees is None),
            # of the wrong ones, those a known slip reproduces (bpdemo.worked.diagnosis)
            "diagnosed": sum(1 for c in result.audit if c.agrees is False and c.diagnosis),
            "undiagnosed": sum(1 for c in result.audit if c.agrees is False and not c.diagnosis),
        },
    }
