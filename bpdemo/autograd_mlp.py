"""The reference model: the same network as `torch.nn.Linear` layers, gradients by `torch.autograd`."""

from __future__ import annotations

from torch import Tensor, nn

from bpdemo.functional import ACTIVATIONS, LOSSES
from bpdemo.manual import ManualMLP, check_target
from bpdemo.spec import MLPSpec


class AutogradMLP(nn.Module):
    """`nn.Linear` layers built from an `MLPSpec`, with the spec's initial weights."""

    def __init__(self, spec: MLPSpec):
        super().__init__()
        self.spec = spec
        self.layers = nn.ModuleList(
            nn.Linear(fan_in, fan_out, dtype=spec.dtype, device=spec.device)
            for fan_in, fan_out in zip(spec.sizes[:-1], spec.sizes[1:], strict=True)
        )
        self.activation_fns = [ACTIVATIONS[name].torch_fn for name in spec.activations]
        self.loss_fn = LOSSES[spec.loss].torch_fn
        self.load_state_dict(spec.initial_parameters())

    @classmethod
    def from_manual(cls, manual: ManualMLP) -> AutogradMLP:
        """The autograd twin of a hand-written model, with identical (copied) weights."""
        model = cls(manual.spec)
        model.load_state_dict(manual.state_dict())
        return model

    def forward(self, x: Tensor) -> Tensor:
        for layer, activation in zip(self.layers, self.activation_fns, strict=True):
            x = activation(layer(x))
        return x

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        check_target(self.spec, output, target)
        return self.loss_fn(output, target)

    def loss_and_grads(self, x: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """One forward and `loss.backward()`: (detached 0-dim loss, {parameter name: p.grad})."""
        self.zero_grad(set_to_none=True)
        loss = self.loss(self(x), target)
        loss.backward()
        return loss.detach(), {name: p.grad for name, p in self.named_parameters()}
