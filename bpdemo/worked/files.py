"""What a worked example writes: config.toml, trace.json, metrics.json, steps.csv, network pictures.

trace.json holds every number of every kept step of each run, the claims and their verdicts;
metrics.json the run's status, the agreement of the two models, the final losses and the count of
claims by verdict; steps.csv one row per kept step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from bpdemo.config import dump_config
from bpdemo.errors import DivergenceError, RunError
from bpdemo.functional import LOSSES
from bpdemo.outputs import RunDir
from bpdemo.worked.audit import AUDIT_LEGEND
from bpdemo.worked.result import WorkedResult
from bpdemo.worked.schema import WorkedConfig
from bpdemo.worked.trace import StepValues, WorkedRun

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


def _array(tensor: Tensor):
    return tensor.double().cpu().numpy()


def picture_state(run: WorkedRun):
    """The network picture's numbers at the configured step (or the last step run before it)."""
    from bpdemo.plots.network import NetworkState, short  # matplotlib, only when drawing

    config = run.example.config
    wanted = min(config.picture.step, run.steps_run)
    values = run.step(wanted) or run.steps[-1]
    sample = config.picture.sample
    spec = run.example.spec
    classification = LOSSES[spec.loss].classification
    if classification:
        label = int(run.example.targets[sample])
        names = config.labels.outputs
        target = [f"target: class {label}" + (f" ({names[label]})" if names else "")]
    else:
        target = [f"y = {short(v)}" for v in run.example.targets[sample].tolist()]
    layers = range(spec.num_layers)
    return NetworkState(
        weights=[_array(values.params_before[f"layers.{i}.weight"]) for i in layers],
        biases=[_array(values.params_before[f"layers.{i}.bias"]) for i in layers],
        grad_weights=[_array(values.grads[f"layers.{i}.weight"]) for i in layers],
        grad_biases=[_array(values.grads[f"layers.{i}.bias"]) for i in layers],
        inputs=_array(run.example.inputs[sample]),
        pre_activations=[_array(z[sample]) for z in values.pre_activations],
        activations=[_array(a[sample]) for a in values.activations],
        activation_names=list(spec.activations),
        loss=values.loss,
        loss_name=spec.loss,
        targets=target,
        probabilities=(
            None if values.probabilities is None else _array(values.probabilities[sample])
        ),
        input_labels=config.labels.inputs,
        hidden_labels=config.labels.hidden,
        output_labels=config.labels.outputs,
        title=f"{config.title}"
        + (f" — {run.example.variant}" if config.data.standardise else "")
        + f", step {values.step}"
        + (f", sample {sample}" if len(run.example.inputs) > 1 else ""),
    )


def write_outputs(run_dir: RunDir, config: WorkedConfig, result: WorkedResult) -> list[Path]:
    """config.toml, trace.json, metrics.json, steps.csv and the network picture(s)."""
    from bpdemo.plots.network import network_picture  # matplotlib, only when drawing

    trace = trace_dict(result)
    written = [
        run_dir.write_text("config.toml", dump_config(config)),
        run_dir.write_json("trace.json", trace),
    ]
    metrics = {
        "status": trace["status"],
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
    for r, name in zip(result.runs(), ("network.png", "network_standardised.png"), strict=False):
        if r.steps:
            written.append(run_dir.save_figure(network_picture(picture_state(r)), name))
    return written


def raise_on_failure(result: WorkedResult, run_dir: RunDir) -> None:
    """After everything is written: divergence -> DivergenceError, Ctrl-C -> RunError (exit 1)."""
    for run in result.runs():
        if run.diverged_at_step is not None:
            which = f"{run.example.variant}: " if result.standardised is not None else ""
            raise DivergenceError(
                f"{which}the loss became inf or NaN at step {run.diverged_at_step}; "
                f"try a smaller learning rate (now {run.example.optimizer.lr:g}) or fewer steps; "
                f"the steps so far are in {run_dir.path / 'trace.json'}",
                run.diverged_at_step,
            )
    if result.run.interrupted:
        raise RunError(
            f"interrupted after step {result.run.steps_run}; partial results are in "
            f"{run_dir.path / 'trace.json'}"
        )
