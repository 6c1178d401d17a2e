"""A worked example stepped in the browser: the hand-written run and autograd's own run, step by step.

The hand-written numbers are the worked-example code's own (`bpdemo.worked.run_example`: both
models side by side through `SideBySide`, every number of every step kept), so the page shows what
trace.json holds. Beside them runs the autograd model on its own, from the same starting weights with
torch's optimizer, keeping its own z, a, dL/da (`a.grad`), delta (`z.grad`), gradients and
parameters of every step: each number on the page has autograd's value and the difference beside it.

Both runs are kept for every step reached so far; going further re-runs them to at least twice the
length (the runs are a few milliseconds), so stepping forward one step at a time stays quick.
An edit changes the example's starting values (as editing its TOML file would) and starts again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from bpdemo.autograd_mlp import AutogradMLP
from bpdemo.explore.schemas import MAX_LR, MAX_STEP, EditRequest, check_worked_size
from bpdemo.explore.sessions import ExploreError
from bpdemo.explore.view import worked_view
from bpdemo.functional import LOSSES
from bpdemo.infra.config import validate
from bpdemo.infra.errors import ConfigError
from bpdemo.worked import (
    ClaimResult,
    WorkedConfig,
    WorkedExample,
    WorkedRun,
    audit_claims,
    run_example,
)

FIRST_RUN_STEPS = 8  # steps run at first; each time the page goes past the end, at least twice more


@dataclass
class AutogradStep:
    """One step of the autograd model alone: per layer (N, out) tensors, parameters by name."""

    loss: float
    pre_activations: list[Tensor]
    activations: list[Tensor]
    grad_activations: list[Tensor]  # a.grad: dL/da
    deltas: list[Tensor]  # z.grad: dL/dz
    grads: dict[str, Tensor]
    params_before: dict[str, Tensor]
    params_after: dict[str, Tensor]


def autograd_run(example: WorkedExample, steps: int) -> list[AutogradStep]:
    """Train the autograd model alone for `steps` full-batch steps (stops at an inf/NaN loss)."""
    model = AutogradMLP(example.spec)
    optimizer = example.optimizer.torch(model)
    x, target = example.inputs, example.targets
    kept: list[AutogradStep] = []
    for _ in range(steps):
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        optimizer.zero_grad(set_to_none=True)
        zs, activations, a = [], [], x
        for layer, activation in zip(model.layers, model.activation_fns, strict=True):
            z = layer(a)
            z.retain_grad()  # keep dL/dz, which autograd would otherwise free
            a = activation(z)
            a.retain_grad()
            zs.append(z)
            activations.append(a)
        loss = model.loss(a, target)
        loss.backward()
        optimizer.step()
        kept.append(
            AutogradStep(
                loss=float(loss.detach()),
                pre_activations=[z.detach().clone() for z in zs],
                activations=[a.detach().clone() for a in activations],
                grad_activations=[a.grad.clone() for a in activations],
                deltas=[z.grad.clone() for z in zs],
                grads={name: p.grad.clone() for name, p in model.named_parameters()},
                params_before=before,
                params_after={name: p.detach().clone() for name, p in model.named_parameters()},
            )
        )
        if not math.isfinite(kept[-1].loss):
            break
    return kept


def with_steps(config: WorkedConfig, steps: int) -> WorkedConfig:
    """The same example run for `steps` steps, every one of them kept."""
    train = config.train.model_copy(update={"steps": steps, "max_trace_steps": steps})
    return config.model_copy(update={"train": train})


class WorkedStepper:
    """One page's worked example: its config (edited or not), and both runs as far as reached."""

    def __init__(self, config: WorkedConfig, source: str):
        self.original = config
        self.source = source
        self.load(config)

    def load(self, config: WorkedConfig) -> None:
        """Check `config` (ConfigError, one line) and forget the runs of the previous one."""
        example = WorkedExample.from_config(config, source=self.source)
        check_worked_size(example.spec.sizes, len(example.inputs), self.source)
        self.config, self.example = config, example
        self.run: WorkedRun | None = None
        self.autograd: list[AutogradStep] = []
        self.audit: list[ClaimResult] | None = None

    def reset(self) -> None:
        self.load(self.original)

    # -- the runs --------------------------------------------------------------------------------
    def reach(self, step: int) -> int:
        """Run far enough to show `step`; returns the step shown (the last one run, if fewer)."""
        run = self.run
        short = run is None or (step > run.steps_run and run.diverged_at_step is None)
        if short and (run is None or run.steps_run < MAX_STEP):
            done = 0 if run is None else run.steps_run
            steps = min(MAX_STEP, max(step, 2 * done, FIRST_RUN_STEPS))
            example = WorkedExample.from_config(with_steps(self.config, steps), self.source)
            self.run = run_example(example)
            self.autograd = autograd_run(example, steps)
        return min(step, self.run.steps_run)

    def claims(self) -> list[ClaimResult]:
        """The claims audited as the config states them (its own number of steps, within limits)."""
        if self.audit is None:
            steps = min(self.config.train.steps, MAX_STEP)
            example = WorkedExample.from_config(with_steps(self.config, steps), self.source)
            self.audit = audit_claims(run_example(example)) if example.claims else []
        return self.audit

    def view(self, step: int, sample: int) -> dict[str, Any]:
        """Everything the page shows at `step` for `sample` (see `bpdemo.explore.view`)."""
        if sample >= len(self.example.inputs):
            raise ExploreError(
                422, f"sample {sample} does not exist: the example has {len(self.example.inputs)}"
            )
        shown = self.reach(step)
        assert self.run is not None
        values = self.run.step(shown)
        twin = self.autograd[shown - 1] if shown <= len(self.autograd) else None
        return worked_view(self.run, values, twin, sample, self.claims())

    # -- edits -----------------------------------------------------------------------------------
    def edit(self, request: EditRequest) -> None:
        """Change one starting value: an input, a target, a weight, a bias or the learning rate."""
        data = self.config.model_dump()
        sizes = self.example.spec.sizes
        what, layer, row, column, value = (
            request.what,
            request.layer,
            request.row,
            request.column,
            request.value,
        )
        if what == "input":
            rows = data["data"]["inputs"]
            _check_index(row, len(rows), "sample")
            _check_index(column, sizes[0], "input")
            rows[row][column] = value
        elif what == "target":
            targets = data["data"]["targets"]
            _check_index(row, len(targets), "sample")
            if LOSSES[self.example.spec.loss].classification:
                if value != int(value):
                    raise ExploreError(422, f"a target here is a class, 0 to {sizes[-1] - 1}")
                targets[row] = int(value)
            else:
                _check_index(column, sizes[-1], "output")
                targets[row][column] = value
        elif what in ("weight", "bias"):
            _check_index(layer, len(sizes) - 1, "layer")
            _check_index(row, sizes[layer + 1], f"layers.{layer} neuron")
            if what == "weight":
                _check_index(column, sizes[layer], f"layers.{layer} input")
                data["init"]["weights"][layer][row][column] = value
            else:
                if data["init"].get("biases") is None:
                    data["init"]["biases"] = [[0.0] * width for width in sizes[1:]]
                data["init"]["biases"][layer][row] = value
        else:
            if not 0 < value <= MAX_LR:
                raise ExploreError(422, f"the learning rate must be above 0 and at most {MAX_LR:g}")
            data["train"]["lr"] = value
        try:
            self.load(validate(WorkedConfig, data, source="edit"))
        except ConfigError as error:
            raise ExploreError(422, str(error)) from None


def _check_index(index: int, count: int, what: str) -> None:
    if index >= count:
        raise ExploreError(422, f"{what} {index} does not exist ({what}s are 0 to {count - 1})")
