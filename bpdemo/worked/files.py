"""What a worked example writes: config.toml, trace.json, metrics.json, steps.csv, network pictures.

trace.json holds every number of every kept step of each run, the claims and their verdicts;
metrics.json the run's status, the agreement of the two models, the final losses and the count of
claims by verdict; steps.csv one row per kept step.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor

from bpdemo import interruption
from bpdemo.config import dump_config
from bpdemo.errors import DivergenceError
from bpdemo.outputs import RunDir
from bpdemo.worked.audit import AUDIT_LEGEND
from bpdemo.worked.picture import network_figure, picture_name, quiet_numerics
from bpdemo.worked.schema import WorkedConfig
from bpdemo.worked.trace import StepValues, WorkedRun

if TYPE_CHECKING:
    from bpdemo.worked.result import WorkedResult

AGREEMENT_MEASURE = (
    "the largest relative difference between hand-written and autograd over every z, a, the loss, "
    "every gradient and updated parameter: a gradient's max |hand-written − autograd| / max S, S "
    "the sum of the absolute terms it adds up (as bpdemo.compare measures it); every other tensor's "
    "max |hand-written − autograd| / max |autograd|"
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


def trace_dict(result: WorkedResult) -> dict[str, Any]:
    """trace.json: the run, its claims and their verdicts, and the standardised run if any."""
    trace = run_dict(result.run)
    trace["title"] = result.run.example.config.title
    trace["source"] = result.run.example.config.source
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
        },
    }


def write_outputs(run_dir: RunDir, config: WorkedConfig, result: WorkedResult) -> list[Path]:
    """config.toml, trace.json, metrics.json, steps.csv and the network pictures, one per phase."""
    trace = trace_dict(result)
    written = [
        run_dir.write_text("config.toml", dump_config(config)),
        run_dir.write_json("trace.json", trace),
    ]
    metrics = metrics_dict(result)
    written.append(run_dir.write_json("metrics.json", metrics))
    written.append(
        run_dir.write_csv(
            "steps.csv",
            (
                {
                    "variant": r.example.variant,
                    "step": s.step,
                    "loss": s.loss,
                    "max_manual_autograd_diff": s.max_manual_autograd_diff,
                    "max_manual_autograd_abs_diff": s.max_manual_autograd_abs_diff,
                }
                for r in result.runs()
                for s in r.steps
            ),
        )
    )
    for run, standardised in zip(result.runs(), (False, True), strict=False):
        for phase in dict.fromkeys(config.picture.phases) if run.steps else ():
            with quiet_numerics():
                figure = network_figure(run, phase=phase)
                written.append(run_dir.save_figure(figure, picture_name(phase, standardised)))
    return written


def raise_on_failure(result: WorkedResult, run_dir: RunDir) -> None:
    """After everything is written: divergence -> DivergenceError (exit 1); Ctrl-C or SIGTERM ->
    the interruption, which the command line ends with exit 130 / 143."""
    for run in result.runs():
        if run.diverged_at_step is not None:
            which = f"{run.example.variant}: " if result.standardised is not None else ""
            raise DivergenceError(
                f"{which}the loss became inf or NaN at step {run.diverged_at_step}; "
                f"try a smaller learning rate (now {run.example.optimizer.lr:g}) or fewer steps; "
                f"the steps so far are in {run_dir.path / 'trace.json'}",
                run.diverged_at_step,
            )
    if result.run.interrupted:  # exit 130/143, and metrics.json marked as interrupted
        raise interruption.stopped(f"after step {result.run.steps_run}")
