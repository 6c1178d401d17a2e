"""Hand-written update rules, and the matching `torch.optim` optimizer built from the same settings.

Each rule is written as in the `torch.optim` documentation, one line of code a line of the rule, so
both trajectories agree to rounding:

    SGD        g <- g + wd * p;  v <- mu * v + g (v = g on the first step);
               g <- g + mu * v (Nesterov) or g <- v (momentum);  p <- p - lr * g
    Adam       g <- g + wd * p;  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
               p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

Plain gradient descent is SGD with momentum 0: p <- p - lr * dL/dp, the update of every worked example.
With `max_grad_norm`, both optimizers first scale the gradients to at most that global L2 norm.

A rule runs on (parameter, gradient) pairs of tensors. For a `ManualMLP` training all its parameters
there is one pair, the model's flat parameter and gradient tensors: one tensor operation per line of
the rule for the whole network.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Annotated

import torch
from pydantic import BeforeValidator, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from torch import Tensor

from bpdemo.infra.config import Fraction, NonNegativeFloat, PositiveFloat, Spec, one_of

OPTIMIZERS = ("sgd", "adam")  # MANUAL_OPTIMIZERS below, and torch.optim in `torch()`
OptimizerName = Annotated[str, one_of(OPTIMIZERS)]


def _pair(value):
    """A list as a tuple: TOML has arrays, not tuples, and a pair read from a file is the same pair."""
    return tuple(value) if isinstance(value, list) else value


Betas = Annotated[tuple[Fraction, Fraction], BeforeValidator(_pair)]


class OptimizerSpec(Spec):
    """One description of an optimizer, for the hand-written and the torch.optim side alike: also
    the `[optimizer]` table of a demo's config, with the same defaults and checks.

    `OptimizerSpec()` is plain gradient descent at lr 0.1, p <- p - 0.1 * dL/dp: the update every
    worked example and the gradient-health study use, and the one a learner checks by hand.

    Args:
        name: `sgd` (plain gradient descent, or momentum / Nesterov) or `adam`.
        lr: learning rate, > 0.
        momentum, nesterov: for sgd; nesterov needs a momentum above 0.
        weight_decay: L2 penalty coefficient, added to the gradient (as torch.optim does).
        betas, eps: for adam.
        train_biases: if False, biases are held fixed (some textbook examples do this).
        max_grad_norm: if set, gradients are clipped to this global L2 norm before each update.
    """

    name: OptimizerName = "sgd"
    lr: PositiveFloat = 0.1
    momentum: Fraction = 0.0
    nesterov: bool = False
    weight_decay: NonNegativeFloat = 0.0
    betas: Betas = (0.9, 0.999)
    eps: PositiveFloat = 1e-8
    train_biases: bool = True
    max_grad_norm: PositiveFloat | None = None

    @field_validator("nesterov")
    @classmethod
    def _nesterov_needs_momentum(cls, nesterov: bool, info: ValidationInfo) -> bool:
        if nesterov and info.data.get("momentum") == 0:
            raise PydanticCustomError("nesterov", "needs a momentum above 0")
        return nesterov

    def trained_names(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if self.train_biases or not n.endswith(".bias")]

    def manual(self, model) -> ManualOptimizer:
        """The hand-written optimizer for a `ManualMLP`."""
        params, grads = dict(model.named_parameters()), dict(model.named_grads())
        names = self.trained_names(params)
        return MANUAL_OPTIMIZERS[self.name](
            self,
            [params[n] for n in names],
            [grads[n] for n in names],
            # the whole network in two flat tensors, when every parameter is trained
            flat=(model.flat_parameters, model.flat_grads) if len(names) == len(params) else None,
        )

    def torch(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        """The `torch.optim` optimizer with the same settings for an `AutogradMLP`.

        With `max_grad_norm`, it clips with `torch.nn.utils.clip_grad_norm_` before each step.
        """
        named = dict(model.named_parameters())
        params = [named[n] for n in self.trained_names(named)]
        if self.name == "sgd":
            optimizer = torch.optim.SGD(
                params,
                lr=self.lr,
                momentum=self.momentum,
                nesterov=self.nesterov,
                weight_decay=self.weight_decay,
            )
        else:
            optimizer = torch.optim.Adam(
                params, lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay
            )
        if self.max_grad_norm is not None:
            max_norm = self.max_grad_norm

            def clip(optimizer, args, kwargs) -> None:
                torch.nn.utils.clip_grad_norm_(params, max_norm)

            optimizer.register_step_pre_hook(clip)
        return optimizer


class ManualOptimizer:
    """Updates `params` in place from `grads` (the model's gradient buffers, read at each step).

    `flat`: the same parameters and gradients as two flat tensors, if the model keeps them so; the
    rule then runs once on those. `state` holds one dict per tensor the rule runs on (`velocity` for
    SGD with momentum, `m` and `v` for Adam), filled at the first step.
    """

    def __init__(
        self,
        spec: OptimizerSpec,
        params: list[Tensor],
        grads: list[Tensor],
        flat: tuple[Tensor, Tensor] | None = None,
    ):
        self.spec = spec
        self.params = params
        self.grads = grads
        self.step_count = 0
        self._pairs = [flat] if flat is not None else list(zip(params, grads, strict=True))
        self.state: list[dict[str, Tensor]] = [{} for _ in self._pairs]

    def clip_grad_norm(self) -> float:
        """Clip the gradients to `spec.max_grad_norm` (if set); returns their norm before clipping."""
        return clip_grad_norm(self.grads, self.spec.max_grad_norm)

    @torch.no_grad()
    def step(self) -> None:
        self.step_count += 1
        if self.spec.max_grad_norm is not None:
            self.clip_grad_norm()
        for (param, grad), state in zip(self._pairs, self.state, strict=True):
            if self.spec.weight_decay:  # a new tensor: the model's gradient stays dL/dp
                grad = grad.add(param, alpha=self.spec.weight_decay)  # g <- g + wd * p
            self.update(param, grad, state)

    def update(self, param: Tensor, grad: Tensor, state: dict[str, Tensor]) -> None:
        raise NotImplementedError


class SGD(ManualOptimizer):
    def update(self, param: Tensor, grad: Tensor, state: dict[str, Tensor]) -> None:
        mu = self.spec.momentum
        if mu:
            velocity = state.get("velocity")
            if velocity is None:
                velocity = state["velocity"] = grad.clone()  # v <- g on the first step
            else:
                velocity.mul_(mu).add_(grad)  # v <- mu v + g
            grad = grad.add(velocity, alpha=mu) if self.spec.nesterov else velocity
        param.add_(grad, alpha=-self.spec.lr)  # p <- p - lr * g


class Adam(ManualOptimizer):
    def update(self, param: Tensor, grad: Tensor, state: dict[str, Tensor]) -> None:
        beta1, beta2 = self.spec.betas
        t = self.step_count
        if "m" not in state:
            state["m"], state["v"] = torch.zeros_like(param), torch.zeros_like(param)
        m, v = state["m"], state["v"]
        m.lerp_(grad, 1 - beta1)  # m <- b1 m + (1 - b1) g
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)  # v <- b2 v + (1 - b2) g^2
        step_size = self.spec.lr / (1 - beta1**t)
        denominator = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(self.spec.eps)
        param.addcdiv_(m, denominator, value=-step_size)  # p <- p - step_size * m / denominator


MANUAL_OPTIMIZERS: dict[str, type[ManualOptimizer]] = {"sgd": SGD, "adam": Adam}


@torch.no_grad()
def clip_grad_norm(grads: list[Tensor], max_norm: float | None) -> float:
    """Scale `grads` in place so that their global L2 norm is at most `max_norm`.

    As `torch.nn.utils.clip_grad_norm_`: coefficient max_norm / (norm + 1e-6), capped at 1.
    Returns the norm before clipping (also when `max_norm` is None, which clips nothing).
    """
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    if max_norm is not None:
        coefficient = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for g in grads:
            g.mul_(coefficient)
    return float(total)
