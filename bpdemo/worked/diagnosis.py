"""Why a claim disagrees: the slips sources make, each tried on the true numbers of the step.

For a claim that backpropagation does not reproduce, each slip below is computed from the step's
true numbers, and every one that gives the claimed value (within the claim's tolerance; the
rounding and digit slips exactly, at the precision the claim was written with) is named, in order:

    updated_weights     the hidden δ computed with the already-updated weights of the layer above
                        (and the gradients and updates that follow from it)
    opposite_sign       a δ or an error in the other sign convention (δ = ∂E/∂z against −∂E/∂z,
                        t − y against y − t)
    negated             any other number with the opposite sign
    truncated           the value truncated to the digits written instead of rounded
    twice, half         a factor 2 or ½ (a ½ dropped or added, as between half_sse and sse)
    mean, sum           a mean over the samples where the loss sums them (`Loss.reduction`), or a
                        sum where it averages
    transposed          the same number at the transposed weight index, W[j,i] for W[i,j]
    wrong_sign_update   the update applied with the wrong sign, p + lr·∂L/∂p
    digit_*             one digit changed, dropped, or two neighbours swapped

A claim that agrees is never diagnosed; one whose step the run did not reach neither.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, localcontext

from bpdemo.equations import is_plain_descent
from bpdemo.functional import ACTIVATIONS, LOSSES
from bpdemo.worked.claims import Claim, agrees, claimed_number
from bpdemo.worked.trace import StepValues, WorkedRun, read_quantity

# Each slip's sentence, as the audit, trace.json and the explorer show it.
SLIPS: dict[str, str] = {
    "updated_weights": "matches the hidden δ computed with the updated weights above",
    "opposite_sign": "matches the opposite sign (the other convention: δ = ∂E/∂z or −∂E/∂z, "
    "error t − y or y − t)",
    "negated": "matches the value with the opposite sign",
    "truncated": "matches the value truncated instead of rounded",
    "twice": "matches twice the value (a factor 2)",
    "half": "matches half the value (a factor ½)",
    "mean": "matches a mean over the samples instead of a sum",
    "sum": "matches a sum over the samples instead of a mean",
    "transposed": "matches the same number at the transposed weight index (W[j,i] for W[i,j])",
    "wrong_sign_update": "matches the update applied with the wrong sign (p + lr·∂L/∂p)",
    "digit_changed": "matches the value with one digit changed",
    "digit_dropped": "matches the value with one digit dropped",
    "digit_swapped": "matches the value with two neighbouring digits swapped",
}
SCALED_KINDS = ("loss", "dloss", "delta", "grad")  # what a factor 2 or a mean changes
CONVENTION_KINDS = ("delta", "error")  # what `[conventions]` gives a sign (`trace.read_quantity`)
MIN_TYPO_DIGITS = 3  # digits a value needs for a changed, dropped or swapped one to be a typo


def diagnose(claim: Claim, true_value: float | None, run: WorkedRun) -> list[str]:
    """The sentences of `SLIPS` whose slip reproduces the claim; [] when it agrees or is unreached."""
    if true_value is None or agrees(claim.claimed, true_value, claim.tolerance):
        return []
    found: list[str] = []

    def near(value: float | None) -> bool:
        return value is not None and agrees(claim.claimed, value, claim.tolerance)

    values = None if claim.quantity.final else run.step(claim.step)
    kind, samples = claim.quantity.kind, _samples(claim, run)
    reduction = LOSSES[run.example.spec.loss].reduction
    sign = "opposite_sign" if kind in CONVENTION_KINDS else "negated"
    tries: list[tuple[str, Callable[[], bool]]] = [
        ("updated_weights", lambda: near(_with_updated_weights(claim, values, run))),
        (sign, lambda: true_value != 0 and near(-true_value)),
        ("truncated", lambda: _truncated(claim, true_value)),
        ("twice", lambda: kind in SCALED_KINDS and near(2 * true_value)),
        ("half", lambda: kind in SCALED_KINDS and near(true_value / 2)),
        ("mean", lambda: reduction == "sum" and samples > 1 and near(true_value / samples)),
        ("sum", lambda: reduction == "mean" and samples > 1 and near(true_value * samples)),
        ("transposed", lambda: near(_transposed(claim, values, run))),
        ("wrong_sign_update", lambda: near(_wrong_sign_update(claim, values))),
    ]
    for slip, reproduces in tries:
        if reproduces():
            found.append(SLIPS[slip])
    digit = _digit_slip(claim, true_value)
    if digit is not None:
        found.append(SLIPS[digit])
    return found


def _samples(claim: Claim, run: WorkedRun) -> int:
    return len(run.example.inputs) if claim.quantity.kind in SCALED_KINDS else 0


def _with_updated_weights(claim: Claim, values: StepValues | None, run: WorkedRun) -> float | None:
    """The claim's quantity when every hidden δ is computed with the updated weights of the layer
    above (as a source does that updates the output layer first), and what follows from it."""
    quantity, spec = claim.quantity, run.example.spec
    last = spec.num_layers - 1
    if values is None or quantity.layer is None or quantity.layer >= last:
        return None
    if quantity.kind not in ("delta", "grad", "param_after"):
        return None  # forward values (hidden, hidden_pre) do not depend on the backward pass
    deltas = list(values.deltas)
    grads = dict(values.grads)
    for layer in range(last - 1, -1, -1):
        z, a = values.pre_activations[layer], values.activations[layer]
        derivative = ACTIVATIONS[spec.activations[layer]].derivative(z, a)
        above = values.params_after[f"layers.{layer + 1}.weight"]
        deltas[layer] = (deltas[layer + 1] @ above) * derivative  # BP2 with the new weights
        a_prev = run.example.inputs if layer == 0 else values.activations[layer - 1]
        grads[f"layers.{layer}.weight"] = deltas[layer].t() @ a_prev.to(deltas[layer].dtype)
        if spec.bias:
            grads[f"layers.{layer}.bias"] = deltas[layer].sum(dim=0)
    params_after = dict(values.params_after)
    if quantity.kind == "param_after":
        optimizer = run.example.optimizer
        if not is_plain_descent(optimizer):
            return None
        name = quantity.parameter
        if name.endswith(".bias") and not optimizer.train_biases:
            return None
        params_after[name] = values.params_before[name] - optimizer.lr * grads[name]
    changed = replace(values, deltas=deltas, grads=grads, params_after=params_after)
    return read_quantity(claim, changed, run.example.targets, run.example.config.conventions)


def _transposed(claim: Claim, values: StepValues | None, run: WorkedRun) -> float | None:
    """The same kind of number at the weight's transposed index, W[i,j] for W[j,i]."""
    quantity = claim.quantity
    if values is None or quantity.parameter is None or not quantity.parameter.endswith("weight"):
        return None
    j, i = quantity.index
    tensors = {"grad": values.grads, "param_before": values.params_before}
    tensor = tensors.get(quantity.kind, values.params_after)[quantity.parameter]
    if i == j or i >= tensor.shape[0] or j >= tensor.shape[1]:
        return None
    swapped = replace(quantity, index=(i, j))
    return read_quantity(
        replace(claim, quantity=swapped),
        values,
        run.example.targets,
        run.example.config.conventions,
    )


def _wrong_sign_update(claim: Claim, values: StepValues | None) -> float | None:
    """p + (p − p_after): the step taken uphill."""
    quantity = claim.quantity
    if values is None or quantity.kind != "param_after":
        return None
    before = float(values.params_before[quantity.parameter][quantity.index])
    after = float(values.params_after[quantity.parameter][quantity.index])
    return None if before == after else 2 * before - after


def _written(claim: Claim, true_value: float) -> tuple[Decimal, int] | None:
    """The claimed number as written and the exponent of its last written digit (-4 for 0.3127);
    None when it or the true value is not a finite number, which has no digits to compare."""
    written = claimed_number(claim.written)[1]
    exponent = written.as_tuple().exponent
    if not isinstance(exponent, int) or not math.isfinite(true_value):
        return None
    return written, exponent


def _at(value: float, exponent: int, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """`value` rounded (or cut off) to a multiple of 10**exponent, however many digits that takes."""
    exact = Decimal(repr(value))
    with localcontext() as context:
        context.prec = max(28, exact.adjusted() - exponent + 3)
        return exact.quantize(Decimal(1).scaleb(exponent), rounding=rounding)


def _truncated(claim: Claim, true_value: float) -> bool:
    """Whether the claim is the true value cut off after its last written digit, not rounded."""
    found = _written(claim, true_value)
    if found is None:
        return False
    written, exponent = found
    return _at(true_value, exponent, ROUND_DOWN) == written != _at(true_value, exponent)


def _digits(value: Decimal, exponent: int) -> str:
    """The digits of `value`, a multiple of 10**exponent, without a sign or leading zeros."""
    return str(abs(int(value.scaleb(-exponent))))


def _digit_slip(claim: Claim, true_value: float) -> str | None:
    """A digit changed (not a last digit off by one: that is rounding), dropped or swapped."""
    found = _written(claim, true_value)
    if found is None:
        return None
    written, exponent = found
    if (written < 0) != (true_value < 0):
        return None
    mine = _digits(written, exponent)
    right = _digits(_at(true_value, exponent), exponent)
    if len(mine) < MIN_TYPO_DIGITS:  # 0.9 for 0.6 is a wrong value, not a typing slip
        return None
    if len(mine) == len(right) and mine != right:
        differ = [k for k in range(len(mine)) if mine[k] != right[k]]
        if len(differ) == 1:
            k = differ[0]
            if k == len(mine) - 1 and abs(int(mine[k]) - int(right[k])) == 1:
                return None
            return "digit_changed"
        if len(differ) == 2 and differ[1] == differ[0] + 1:
            k = differ[0]
            if mine[k] == right[k + 1] and mine[k + 1] == right[k]:
                return "digit_swapped"
    # A digit dropped from inside the value (the last one dropped is truncation or rounding).
    full = _digits(_at(true_value, exponent - 1), exponent - 1)  # one digit more than written
    if (
        len(full) == len(mine) + 1
        and mine != full[:-1]
        and any(full[:k] + full[k + 1 :] == mine for k in range(len(full) - 1))
    ):
        return "digit_dropped"
    return None
