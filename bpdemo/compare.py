"""The comparison engine: both models trained on the same mini-batches, compared at every step.

Each step answers two questions, never mixed (`bpdemo.agreement`, docs/agreement.md):

- The verdict: does the hand-written backward compute autograd's gradient? Both gradients are taken
  at the same parameters, the hand-written model's: the autograd run's own gradient while its
  parameters are bitwise the hand-written ones, otherwise that of a third model, `reference`, loaded
  with the hand-written parameters, buffers and dropout generators before the step. For a correct
  model it holds at every step of any run, however long or chaotic.
- The drift: how far have the two runs, each trained on its own, drifted apart? The autograd run is
  never re-synchronised, so its gradient, loss and parameters show how rounding differences grow.

How the differences are measured, and the tolerances: `bpdemo.agreement`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor

from bpdemo.agreement import (
    TOLERANCES,
    Agreement,
    StepRecord,
    max_abs_diff,
    relative_to,
    summand_scales,
)
from bpdemo.autograd_mlp import AutogradNetwork, twin_of
from bpdemo.manual import ManualMLP, ManualNetwork
from bpdemo.optim import OptimizerSpec
from bpdemo.spec import MLPSpec, NetworkSpec


@dataclass
class Evaluation:
    """Both models on one data set, without training: outputs (N, out) and losses."""

    output_manual: Tensor
    output_autograd: Tensor
    loss_manual: float
    loss_autograd: float


@dataclass
class SideBySide:
    """A hand-written model and its autograd twin, with their optimizers, stepped together.

    Attributes:
        manual, autograd: the two runs, each trained on its own.
        reference: the autograd model the verdict evaluates at the hand-written parameters, made at
            the first step the two runs are no longer bitwise identical (None until then).
        agreement: both questions over every step so far (`bpdemo.agreement.Agreement`).
    """

    spec: MLPSpec | NetworkSpec
    optimizer: OptimizerSpec
    manual: ManualNetwork = field(init=False)
    autograd: AutogradNetwork = field(init=False)

    def __post_init__(self) -> None:
        self.manual = manual_model(self.spec)
        self.autograd = twin_of(self.manual)
        self.manual_optimizer = self.optimizer.manual(self.manual)
        self.torch_optimizer = self.optimizer.torch(self.autograd)
        self.agreement = Agreement(
            dtype=str(self.spec.dtype).removeprefix("torch."), tolerance=TOLERANCES[self.spec.dtype]
        )
        self.reference: AutogradNetwork | None = None
        self._with_autograd = _state_pairs(self.manual, self.autograd)
        self._with_reference: tuple[list, list] = ([], [])
        self.steps_done = 0
        self.seconds_manual = 0.0  # time in each model's passes and updates only
        self.seconds_autograd = 0.0
        self.seconds_reference = 0.0  # the verdict's own passes, after the runs parted

    def gradients(self, x: Tensor, target: Tensor) -> tuple[Tensor, dict, Tensor, dict]:
        """Loss and gradients of both models on one batch: (loss_m, grads_m, loss_a, grads_a)."""
        start = time.perf_counter()
        loss_m, grads_m = self.manual.loss_and_grads(x, target)
        middle = time.perf_counter()
        loss_a, grads_a = self.autograd.loss_and_grads(x, target)
        self.seconds_manual += middle - start
        self.seconds_autograd += time.perf_counter() - middle
        return loss_m, grads_m, loss_a, grads_a

    def runs_identical(self) -> bool:
        """Whether the autograd run's parameters, buffers and dropout generators are bitwise the
        hand-written run's: then its gradient is autograd's at the hand-written parameters."""
        tensors, generators = self._with_autograd
        return all(torch.equal(m, a) for m, a in tensors) and all(
            torch.equal(m.get_state(), a.get_state()) for m, a in generators
        )

    @torch.no_grad()
    def load_reference(self) -> None:
        """Copy the hand-written parameters, buffers and dropout generators into `reference`.

        Called before the step's passes: a training forward moves the running statistics and the
        generators, and the reference must start where the hand-written model starts.
        """
        if self.reference is None:
            self.reference = twin_of(self.manual)
            self._with_reference = _state_pairs(self.manual, self.reference)
        tensors, generators = self._with_reference
        for source, target in tensors:
            target.copy_(source)
        for source, target in generators:
            target.set_state(source.get_state())
        self.reference.train(self.manual.training)

    def reference_gradients(self, x: Tensor, target: Tensor) -> tuple[Tensor, dict]:
        """Loss and gradients of `reference` (loaded by `load_reference`) on one batch.

        Its gradient tensors are zeroed and filled again, not made anew at every step.
        """
        reference = self.reference
        reference.zero_grad(set_to_none=False)
        loss = reference.loss(reference(x), target)
        loss.backward()
        return loss.detach(), {name: p.grad for name, p in reference.named_parameters()}

    def step(self, x: Tensor, target: Tensor) -> StepRecord:
        """One forward, backward and update of both models on the same batch, and both questions."""
        identical = self.runs_identical()
        if not identical:
            self.load_reference()
        loss_m, grads_m, loss_a, grads_a = self.gradients(x, target)
        names = list(grads_m)
        scales = self.gradient_scales()
        if identical:  # the autograd run's gradient is autograd's at the hand-written parameters
            loss_r, grads_r = loss_a, grads_a
        else:
            start = time.perf_counter()
            loss_r, grads_r = self.reference_gradients(x, target)
            self.seconds_reference += time.perf_counter() - start
        grad_abs = {n: max_abs_diff(grads_m[n], grads_r[n]) for n in names}
        grad_rel = {n: relative_to(grad_abs[n], scales[n]) for n in names}
        drift_abs, drift_rel = grad_abs, grad_rel
        if not identical:
            drift_abs = {n: max_abs_diff(grads_m[n], grads_a[n]) for n in names}
            drift_rel = {n: relative_to(drift_abs[n], scales[n]) for n in names}
        norm_m = {n: float(torch.linalg.vector_norm(grads_m[n])) for n in names}
        norm_a = {n: float(torch.linalg.vector_norm(grads_a[n])) for n in names}

        start = time.perf_counter()
        self.manual_optimizer.step()  # each clips first if the optimizer spec says so
        middle = time.perf_counter()
        self.torch_optimizer.step()
        self.seconds_manual += middle - start
        self.seconds_autograd += time.perf_counter() - middle

        params_a = dict(self.autograd.named_parameters())
        param_abs = {
            n: max_abs_diff(p, params_a[n].detach()) for n, p in self.manual.named_parameters()
        }
        self.steps_done += 1
        record = StepRecord(
            step=self.steps_done,
            loss_manual=float(loss_m),
            loss_autograd=float(loss_a),
            grad_abs_diff=grad_abs,
            grad_rel_diff=grad_rel,
            param_abs_diff=param_abs,
            grad_norm_manual=norm_m,
            grad_norm_autograd=norm_a,
            loss_abs_diff=abs(float(loss_m) - float(loss_r)),
            drift_grad_abs_diff=drift_abs,
            drift_grad_rel_diff=drift_rel,
            same_parameters=identical,
        )
        self.agreement.add(record)
        return record

    @torch.no_grad()
    def gradient_scales(self) -> dict[str, Tensor]:
        """S of every parameter for the last `gradients` call (see the module docstring)."""
        return summand_scales(self.manual)

    @torch.no_grad()
    def predict(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Both models' outputs for x, in evaluation mode (running statistics, no dropout)."""
        modes = self.manual.training, self.autograd.training
        self.manual.eval()
        self.autograd.eval()
        try:
            return self.manual.forward(x), self.autograd(x)
        finally:
            self.manual.train(modes[0])
            self.autograd.train(modes[1])

    @torch.no_grad()
    def evaluate(self, x: Tensor, target: Tensor) -> Evaluation:
        """Both models on (x, target) in evaluation mode: outputs and losses."""
        output_m, output_a = self.predict(x)
        return Evaluation(
            output_manual=output_m,
            output_autograd=output_a,
            loss_manual=float(self.manual.loss(output_m, target)),
            loss_autograd=float(self.autograd.loss(output_a, target)),
        )


def _state_pairs(manual: ManualNetwork, twin: AutogradNetwork) -> tuple[list, list]:
    """([(hand-written tensor, twin's tensor)] for every parameter and buffer, by name;
    [(hand-written generator, twin's generator)] for every dropout layer), made once."""
    own = {**dict(twin.named_parameters()), **dict(twin.named_buffers())}
    named = [*manual.named_parameters(), *manual.named_buffers()]
    tensors = [(tensor, own[name].detach()) for name, tensor in named]
    generators = [
        (layer.generator, module.generator)
        for layer, module in zip(manual.layers, twin.layers, strict=True)
        if hasattr(layer, "generator")
    ]
    return tensors, generators


def manual_model(spec: MLPSpec | NetworkSpec) -> ManualNetwork:
    """The hand-written model a description makes: a `ManualMLP`, or a `ManualSequential`."""
    if isinstance(spec, MLPSpec):
        return ManualMLP(spec)
    from bpdemo.layers import ManualSequential  # the layer kinds build on the core

    return ManualSequential(spec)
