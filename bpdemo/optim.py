"""Hand-written update rules, and the matching `torch.optim` optimizer built from the same settings.

Each rule is written as in the `torch.optim` documentation, so both trajectories agree to rounding:

    SGD        g <- g + wd * p;  v <- mu * v + g (v = g on the first step);
               g <- g + mu * v (Nesterov) or g <- v (momentum);  p <- p - lr * g
    Adam       g <- g + wd * p;  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
               p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

Plain gradient descent is SGD with momentum 0: p <- p - lr * dL/dp, the seed documents' update rule.

Each line of a rule updates every parameter at once with a `torch._foreach_*` operation (the ones
`torch.optim` uses for its multi-tensor path): one call into torch for the whole list instead of one
per tensor, and the very same arithmetic per tensor, in place. For `ManualMLP`, whose parameters lie
end to end in one flat tensor, that list is the one flat tensor: one kernel per line for the whole
network. A number that multiplies or divides a tensor (SGD's momentum, Adam's b2 and sqrt(1 - b2^t))
is a 0-dim tensor of the parameters' dtype, made once: a Python number would be converted into one,
for every parameter, at every step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from bpdemo.errors import ConfigError

OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class OptimizerSpec:
    """One description of an optimizer, for the hand-written and the torch.optim side alike.

    Args:
        name: `sgd` (plain gradient descent, or momentum / Nesterov) or `adam`.
        lr: learning rate, > 0.
        momentum, nesterov: for sgd.
        weight_decay: L2 penalty coefficient, added to the gradient (as torch.optim does).
        betas, eps: for adam.
        train_biases: if False, biases are held fixed (some textbook examples do this).
        max_grad_norm: if set, gradients are clipped to this global L2 norm before each update.
    """

    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    train_biases: bool = True
    max_grad_norm: float | None = None

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ConfigError(
                f"unknown optimizer {self.name!r}; choose one of {', '.join(OPTIMIZERS)}"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"learning rate must be a positive number, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.nesterov and self.momentum == 0:
            raise ConfigError("nesterov needs a momentum above 0")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be at least 0, got {self.weight_decay}")
        if not all(0 <= b < 1 for b in self.betas) or len(self.betas) != 2:
            raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ConfigError(f"max_grad_norm must be positive, got {self.max_grad_norm}")

    def trained_names(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if self.train_biases or not n.endswith(".bias")]

    def manual(self, model) -> ManualOptimizer:
        """The hand-written optimizer for a `ManualMLP`."""
        names = self.trained_names(name for name, _ in model.named_parameters())
        params = dict(model.named_parameters())
        grads = dict(model.named_grads())
        cls = SGD if self.name == "sgd" else Adam
        return cls(self, [params[n] for n in names], [grads[n] for n in names])

    def torch(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        """The `torch.optim` optimizer with the same settings for an `AutogradMLP`."""
        named = dict(model.named_parameters())
        params = [named[n] for n in self.trained_names(named)]
        if self.name == "sgd":
            return torch.optim.SGD(
                params,
                lr=self.lr,
                momentum=self.momentum,
                nesterov=self.nesterov,
                weight_decay=self.weight_decay,
            )
        return torch.optim.Adam(
            params, lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay
        )


class ManualOptimizer:
    """Updates `params` in place from `grads` (the model's gradient buffers, read at each step).

    When the parameters are consecutive pieces of one flat tensor, and the gradients of another (as
    `ManualMLP` lays them out), the rule runs on those two flat tensors: one operation per line for
    the whole network, the same arithmetic for every entry. `state` holds one dict per tensor the
    rule runs on (`velocity` for SGD with momentum, `m` and `v` for Adam), created at the first step.
    """

    def __init__(self, spec: OptimizerSpec, params: list[Tensor], grads: list[Tensor]):
        self.spec = spec
        self.params = params
        self.grads = grads
        self.step_count = 0
        flat_params, flat_grads = consecutive(params), consecutive(grads)
        if flat_params is None or flat_grads is None or flat_params.shape != flat_grads.shape:
            self._params, self._grads = params, grads
        else:
            self._params, self._grads = [flat_params], [flat_grads]
        self.state: list[dict[str, Tensor]] = [{} for _ in self._params]

    def clip_grad_norm(self) -> float:
        """Clip the gradients to `spec.max_grad_norm` (if set); returns their norm before clipping."""
        return clip_grad_norm(self.grads, self.spec.max_grad_norm)

    @torch.no_grad()
    def step(self) -> None:
        self.step_count += 1
        if not self.params:
            return
        grads = self._grads
        if self.spec.weight_decay:  # g <- g + wd * p, in new tensors: the model's grads stay dL/dp
            grads = torch._foreach_add(grads, self._params, alpha=self.spec.weight_decay)
        self._update(grads)

    def _state_list(self, key: str) -> list[Tensor]:
        return [state[key] for state in self.state]

    def _update(self, grads: list[Tensor]) -> None:
        raise NotImplementedError


class SGD(ManualOptimizer):
    def _update(self, grads: list[Tensor]) -> None:
        mu = self.spec.momentum
        if mu:
            if "velocity" not in self.state[0]:  # first step: v <- g
                for state, grad in zip(self.state, grads, strict=True):
                    state["velocity"] = grad.clone()
                velocity = self._state_list("velocity")
                self._momentum = self._params[0].new_tensor(mu)  # 0-dim, the parameters' dtype
            else:
                velocity = self._state_list("velocity")
                torch._foreach_mul_(velocity, self._momentum)  # v <- mu v + g
                torch._foreach_add_(velocity, grads)
            # g <- g + mu v (Nesterov) or g <- v
            grads = (
                torch._foreach_add(grads, velocity, alpha=mu) if self.spec.nesterov else velocity
            )
        torch._foreach_add_(self._params, grads, alpha=-self.spec.lr)  # p <- p - lr * g


class Adam(ManualOptimizer):
    def _update(self, grads: list[Tensor]) -> None:
        beta1, beta2 = self.spec.betas
        if "m" not in self.state[0]:
            for state, param in zip(self.state, self._params, strict=True):
                state["m"] = torch.zeros_like(param)
                state["v"] = torch.zeros_like(param)
            like = self._params[0]
            self._beta2 = like.new_tensor(beta2)  # 0-dim, the parameters' dtype
            self._bias_correction2_sqrt = like.new_zeros(())
        m, v, t = self._state_list("m"), self._state_list("v"), self.step_count
        torch._foreach_lerp_(m, grads, 1 - beta1)  # m <- b1 m + (1 - b1) g
        torch._foreach_mul_(v, self._beta2)  # v <- b2 v + (1 - b2) g^2
        torch._foreach_addcmul_(v, grads, grads, value=1 - beta2)
        step_size = self.spec.lr / (1 - beta1**t)
        denominator = torch._foreach_sqrt(v)  # sqrt(v) / sqrt(1 - b2^t) + eps
        torch._foreach_div_(denominator, self._bias_correction2_sqrt.fill_(math.sqrt(1 - beta2**t)))
        torch._foreach_add_(denominator, self.spec.eps)
        torch._foreach_addcdiv_(self._params, m, denominator, value=-step_size)


def consecutive(tensors: list[Tensor]) -> Tensor | None:
    """One 1-D view over all of `tensors`, if they are contiguous and laid end to end in one storage
    (in this order); else None."""
    if not tensors:
        return None
    first = tensors[0]
    storage, start = first.untyped_storage().data_ptr(), first.storage_offset()
    end = start
    for tensor in tensors:
        if (
            tensor.untyped_storage().data_ptr() != storage
            or tensor.dtype != first.dtype
            or not tensor.is_contiguous()
            or tensor.storage_offset() != end
        ):
            return None
        end += tensor.numel()
    return first.as_strided((end - start,), (1,))


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
