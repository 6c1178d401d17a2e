"""The hand-written path never builds an autograd graph.

`torch.autograd.graph.saved_tensors_hooks` calls its pack hook whenever autograd records a tensor for a
backward pass, that is, whenever a graph node is built. Made to raise, it turns any graph building into
an error; the same hook firing for the autograd model shows the check is live.
"""

import pytest
import torch

from bpdemo import AutogradMLP, ManualMLP, MLPSpec, OptimizerSpec
from tests.conftest import make_data


class GraphBuilt(Exception):
    pass


def refuse(tensor):
    raise GraphBuilt("autograd saved a tensor for backward")


SPEC = MLPSpec([5, 4, 3], ["sigmoid", "identity"], loss="cross_entropy", seed=1)


def test_hand_written_training_step_builds_no_graph_even_with_grad_enabled():
    model = ManualMLP(SPEC)
    optimizers = [
        OptimizerSpec(name="adam", lr=0.01, weight_decay=0.1, max_grad_norm=1.0).manual(model),
        OptimizerSpec(name="sgd", lr=0.1, momentum=0.9, nesterov=True).manual(model),
    ]
    x, y = make_data(SPEC, batch=6)
    x.requires_grad_(True)  # an input that asks for gradients must not lure the model into a graph
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(refuse, lambda t: t):
        for optimizer in optimizers:
            loss, grads = model.loss_and_grads(x, y)
            optimizer.clip_grad_norm()
            optimizer.step()
    for tensor in [loss, *grads.values(), *model.parameters()]:
        assert tensor.grad_fn is None and not tensor.requires_grad
    for layer in model.layers:
        for cached in (layer.pre_activation, layer.output, layer.delta):
            assert cached.grad_fn is None


def test_the_same_check_catches_the_autograd_model():
    x, y = make_data(SPEC, batch=6)
    hooks = torch.autograd.graph.saved_tensors_hooks(refuse, lambda t: t)
    with torch.enable_grad(), hooks, pytest.raises(GraphBuilt):
        AutogradMLP(SPEC).loss_and_grads(x, y)


def test_hand_written_parameters_never_require_grad():
    model = ManualMLP(SPEC)
    assert all(not p.requires_grad for p in model.parameters())
    assert all(not g.requires_grad for _, g in model.named_grads())
