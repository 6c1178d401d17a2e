"""A worked example stepped in the browser: the run, step by step, and the claims of its file.

The numbers are the worked-example code's own (`bpdemo.worked.run_example`: the hand-written model
step by step, each step taken again by autograd from the same parameters, every number kept), so
the page shows what trace.json holds, with autograd's value and the difference beside each number.

The run is kept for every step reached so far; going further re-runs it to at least twice the
length (a run is a few milliseconds), so stepping forward one step at a time stays quick. An edit
changes the example's starting values (as editing its TOML file would) and starts again; the
source's claims stay judged on the file's values, which are the numbers the source wrote about.
"""

from __future__ import annotations

from typing import Any

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


def with_steps(config: WorkedConfig, steps: int) -> WorkedConfig:
    """The same example run for `steps` steps, every one of them kept (and drawn at most there)."""
    train = config.train.model_copy(update={"steps": steps, "max_trace_steps": steps})
    picture = config.picture.model_copy(update={"step": min(config.picture.step, steps)})
    return config.model_copy(update={"train": train, "picture": picture})


class WorkedStepper:
    """One page's worked example: its config (edited or not), its run as far as reached, and the
    claims of its file."""

    def __init__(self, config: WorkedConfig, source: str, first_steps: int = FIRST_RUN_STEPS):
        self.original = config
        self.source = source
        self.first_steps = first_steps  # a playground point: its one step first, quickly
        self.audit: list[ClaimResult] | None = None  # of the file's values, whatever is edited
        self.load(config)

    def load(self, config: WorkedConfig) -> None:
        """Check `config` (ConfigError, one line) and forget the runs of the previous one."""
        example = WorkedExample.from_config(config, source=self.source)
        check_worked_size(example.spec.sizes, len(example.inputs), self.source)
        self.config, self.example = config, example
        self.run: WorkedRun | None = None

    def reset(self) -> None:
        self.load(self.original)

    # -- the runs --------------------------------------------------------------------------------
    def reach(self, step: int) -> int:
        """Run far enough to show `step`; returns the step shown (the last one run, if fewer)."""
        run = self.run
        short = run is None or (step > run.steps_run and run.diverged_at_step is None)
        if short and (run is None or run.steps_run < MAX_STEP):
            done = 0 if run is None else run.steps_run
            steps = min(MAX_STEP, max(step, 2 * done, self.first_steps))
            example = WorkedExample.from_config(with_steps(self.config, steps), self.source)
            self.run = run_example(example)
        return min(step, self.run.steps_run)

    @property
    def edited(self) -> bool:
        return self.config != self.original

    def claims(self) -> list[ClaimResult]:
        """The claims audited on the file's values (its own number of steps, within limits): a
        source's claims are about its numbers, never about an edit of them."""
        if self.audit is None:
            steps = min(self.original.train.steps, MAX_STEP)
            example = WorkedExample.from_config(with_steps(self.original, steps), self.source)
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
        return worked_view(self.run, self.run.step(shown), sample, self.claims(), self.edited)

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
