"""The answer of a worked-example request: one step, its items by phase, and the audited claims.

`worked_view` puts together what the page shows at one step: the network and its settings, the step
exactly as trace.json holds it (`trace`), the items of each phase (`bpdemo.explore.chain`), how far
the hand-written step is from autograd's from the same parameters, what the marks on the edges
mean, and the source's claims with their verdicts (always on the file's own values) and where each
is drawn.
"""

from __future__ import annotations

from typing import Any

from bpdemo.equations import EDGE_MARKS, update_rule
from bpdemo.explore.chain import StepView
from bpdemo.functional import LOSSES
from bpdemo.spec import MLPSpec
from bpdemo.worked import (
    AUDIT_LEGEND,
    ClaimResult,
    StepValues,
    WorkedRun,
    fmt,
    parse_quantity,
    step_dict,
)
from bpdemo.worked.names import Names


def claim_target(name: str, spec: MLPSpec, names: Names | None = None) -> dict[str, Any] | None:
    """Where a claim's quantity is drawn: the element and the phase that show it (`names`: the
    example's [labels], which claims may use)."""
    try:
        quantity = parse_quantity(name, spec, names)
    except ValueError:
        return None
    kind, layer, index = quantity.kind, quantity.layer, quantity.index
    if kind == "loss":
        return {"element": "loss", "phase": "loss"}
    if kind in ("output", "output_pre", "prob", "hidden", "hidden_pre", "error", "dloss", "delta"):
        phase = {"error": "loss", "prob": "loss", "dloss": "backward", "delta": "backward"}
        return {"element": f"n{layer + 1}_{index[0]}", "phase": phase.get(kind, "forward")}
    parameter = quantity.parameter or ""
    kind_letter = "w" if parameter.endswith("weight") else "b"
    element = f"{kind_letter}{layer}_" + "_".join(map(str, index))
    phase = {"grad": "backward", "param_before": "forward", "param_after": "update"}[kind]
    return {"element": element, "phase": phase}


def claim_row(result: ClaimResult, spec: MLPSpec, names: Names | None = None) -> dict[str, Any]:
    """A claim as trace.json holds it (its diagnosis too), where it is drawn, and its numbers as
    the audit prints them."""
    claim = result.claim
    digits = max(6, claim.significant_digits + 2)  # two more than written, so a difference shows

    def verdict(agrees: bool | None) -> str:
        return "–" if agrees is None else ("agrees" if agrees else "WRONG")

    formula, true = claim.formula_value, result.true_value
    return {
        **result.as_dict(),
        "target": claim_target(claim.quantity.name, spec, names),
        "text": {
            "formula_value": "–" if formula is None else fmt(formula, digits),
            "true_value": "not reached" if true is None else fmt(true, digits),
            "verdict": verdict(result.agrees),
            "formula_verdict": verdict(result.formula_agrees),
        },
    }


CLAIMS_NOTE = (
    "the claims are about the example as its file states it: their verdicts are the file's, "
    "not judged against your edit (reset brings the file's values back)"
)
PAGE_PHASES = ("forward", "loss", "backward", "update")


def worked_view(
    run: WorkedRun,
    values: StepValues,
    sample: int,
    claims: list[ClaimResult],
    edited: bool = False,
) -> dict[str, Any]:
    """The answer of /api/worked/step and /api/worked/edit (docs/explore.md lists its fields).

    `claims` are audited on the file's values; `edited` says the example shown is not those.
    """
    example, spec = run.example, run.example.spec
    optimizer, config = example.optimizer, example.config
    diverged = run.diverged_at_step
    within = values.max_manual_autograd_diff <= run.tolerance
    return {
        "title": config.title,
        "source": config.source,
        "step": values.step,
        "last_step": run.steps_run,
        "diverged_at_step": diverged,
        "message": (
            f"the loss became inf or NaN at step {diverged}: lower the learning rate "
            f"(now {optimizer.lr:g}) and step again"
            if diverged is not None
            else ""
        ),
        "sample": sample,
        "samples": len(example.inputs),
        "network": {
            "sizes": spec.sizes,
            "activations": spec.activations,
            "loss": spec.loss,
            "loss_formula": LOSSES[spec.loss].formula,
            "dtype": str(spec.dtype).removeprefix("torch."),
            "labels": config.labels.model_dump(),
            "bias": spec.bias,
        },
        "lr": optimizer.lr,
        "update_rule": update_rule(optimizer),
        "inputs": example.inputs.tolist(),
        "targets": example.targets.tolist(),
        "agreement": {
            "max_manual_autograd_diff": values.max_manual_autograd_diff,
            "tolerance": run.tolerance,
            "within_tolerance": within,
            "text": (
                f"step {values.step}: hand-written vs autograd from the same parameters, largest "
                f"relative difference {values.max_manual_autograd_diff:.1e} over every z, a, the "
                f"loss, ∂L/∂a, δ, every gradient and updated parameter "
                f"({'within' if within else 'OUTSIDE'} the tolerance {run.tolerance:g})"
            ),
        },
        "trace": step_dict(values),
        "phases": StepView(run, values, sample).phases(),
        "legend": {
            phase: [{"mark": mark, "text": text} for mark, text in EDGE_MARKS[phase]]
            for phase in PAGE_PHASES
        },
        "edited": edited,
        "claims": [claim_row(claim, spec, example.names) for claim in claims],
        "claims_legend": AUDIT_LEGEND,
        "claims_note": CLAIMS_NOTE if edited and claims else "",
    }
