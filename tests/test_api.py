"""The public API: one spec, two models with the same names, shapes and weights."""

import math

import pytest
import torch
from torch.overrides import TorchFunctionMode

from bpdemo import AutogradMLP, ManualMLP, MLPSpec, OptimizerSpec, SideBySide
from bpdemo.infra.errors import ConfigError

SPEC = MLPSpec(sizes=[3, 5, 4, 2], activations=["relu", "tanh", "identity"], loss="mse", seed=7)


def test_both_models_name_parameters_as_torch_does_with_linear_shapes():
    expected = [
        ("layers.0.weight", (5, 3)),
        ("layers.0.bias", (5,)),
        ("layers.1.weight", (4, 5)),
        ("layers.1.bias", (4,)),
        ("layers.2.weight", (2, 4)),
        ("layers.2.bias", (2,)),
    ]
    for model in (ManualMLP(SPEC), AutogradMLP(SPEC)):
        assert [(n, tuple(p.shape)) for n, p in model.named_parameters()] == expected
        assert all(p.dtype == torch.float32 for p in model.parameters())


def test_both_models_start_from_the_same_weights_and_compute_the_same_function():
    manual, autograd = ManualMLP(SPEC), AutogradMLP(SPEC)
    for (name, a), (_, b) in zip(
        manual.named_parameters(), autograd.named_parameters(), strict=True
    ):
        assert torch.equal(a, b.detach()), name
    x = torch.randn(6, 3)
    assert torch.allclose(manual(x), autograd(x), atol=1e-6)


def test_from_manual_copies_the_current_weights():
    manual = ManualMLP(SPEC)
    manual.layers[1].weight.fill_(0.25)
    twin = AutogradMLP.from_manual(manual)
    assert torch.equal(twin.layers[1].weight.detach(), torch.full((4, 5), 0.25))
    manual.layers[1].weight.fill_(0.5)  # a copy, not shared storage
    assert torch.equal(twin.layers[1].weight.detach(), torch.full((4, 5), 0.25))


def test_state_dict_moves_weights_both_ways():
    other = MLPSpec(sizes=[3, 5, 4, 2], activations=["relu", "tanh", "identity"], seed=8)
    manual, autograd = ManualMLP(SPEC), AutogradMLP(other)
    manual.load_state_dict(autograd.state_dict())
    x = torch.randn(4, 3)
    assert torch.allclose(manual(x), autograd(x), atol=1e-6)
    autograd.load_state_dict(ManualMLP(SPEC).state_dict())
    assert torch.equal(autograd.layers[0].weight.detach(), ManualMLP(SPEC).layers[0].weight)


def test_load_state_dict_refuses_a_wrong_shape():
    state = ManualMLP(SPEC).state_dict()
    state["layers.0.weight"] = torch.zeros(3, 5)
    with pytest.raises(ValueError, match=r"layers.0.weight: shape \(3, 5\) given, \(5, 3\) needed"):
        ManualMLP(SPEC).load_state_dict(state)


def test_same_seed_same_weights_other_seed_other_weights():
    first, again = SPEC.initial_parameters(), SPEC.initial_parameters()
    other = MLPSpec(sizes=[3, 5, 4, 2], activations=["relu", "tanh", "identity"], seed=8)
    assert all(torch.equal(first[n], again[n]) for n in first)
    assert not torch.equal(first["layers.0.weight"], other.initial_parameters()["layers.0.weight"])


def test_float32_weights_are_the_float64_weights_rounded():
    spec64 = MLPSpec(
        sizes=[3, 5, 4, 2], activations=["relu", "tanh", "identity"], seed=7, dtype="float64"
    )
    w32, w64 = (
        SPEC.initial_parameters()["layers.0.weight"],
        spec64.initial_parameters()["layers.0.weight"],
    )
    assert torch.equal(w32, w64.float())


@pytest.mark.parametrize(
    ("init", "check"),
    [
        ("xavier", lambda w, fan_in, fan_out: w.abs().max() <= math.sqrt(6 / (fan_in + fan_out))),
        ("uniform", lambda w, fan_in, fan_out: w.abs().max() <= 1 / math.sqrt(fan_in)),
        (
            "he",
            lambda w, fan_in, fan_out: (
                abs(w.std() - math.sqrt(2 / fan_in)) < 0.05 * math.sqrt(2 / fan_in)
            ),
        ),
        ("normal", lambda w, fan_in, fan_out: abs(w.std() - 0.01) < 0.0005),
    ],
)
def test_random_initialisations_have_their_documented_scale(init, check):
    spec = MLPSpec(sizes=[400, 300], activations=["identity"], init=init, dtype="float64")
    params = spec.initial_parameters()
    assert check(params["layers.0.weight"], 400, 300)
    assert torch.equal(params["layers.0.bias"], torch.zeros(300, dtype=torch.float64))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sizes": [3], "activations": []}, "needs at least an input and an output width"),
        (
            {"sizes": [3, 0, 1], "activations": ["relu", "identity"]},
            "every layer width must be at least 1",
        ),
        ({"sizes": [3, 2, 1], "activations": ["relu"]}, "1 given for 2 layers"),
        ({"sizes": [3, 1], "activations": ["swish"]}, "unknown activation 'swish'"),
        ({"sizes": [3, 1], "activations": ["relu"], "loss": "hinge"}, "unknown loss 'hinge'"),
        (
            {"sizes": [3, 1], "activations": ["relu"], "loss": "bce"},
            "make the last activation sigmoid",
        ),
        (
            {"sizes": [3, 1], "activations": ["relu"], "init": "orthogonal"},
            "unknown init 'orthogonal'",
        ),
        (
            {"sizes": [3, 1], "activations": ["relu"], "dtype": "float16"},
            "dtype 'float16' is not supported",
        ),
        (
            {"sizes": [3, 1], "activations": ["relu"], "weights": [[[1.0, 2.0]]]},
            "needs shape (1, 3)",
        ),
        (
            {
                "sizes": [2, 1],
                "activations": ["relu"],
                "weights": [[[1.0, 2.0]]],
                "biases": [[1.0, 2.0]],
            },
            "it needs 1 values",
        ),
        (
            {"sizes": [2, 1], "activations": ["relu"], "weights": [[[1.0], [2.0, 3.0]]]},
            "not a rectangular",
        ),
    ],
)
def test_a_bad_spec_is_refused_with_a_message_that_says_what_to_do(kwargs, message):
    with pytest.raises(ConfigError) as error:
        MLPSpec(**kwargs)
    assert message in str(error.value)


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="this machine has a GPU, so cuda is valid here"
)
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ConfigError, match="no CUDA GPU is available; use --device cpu"):
        MLPSpec(sizes=[3, 1], activations=["relu"], device="cuda")


def test_a_target_that_would_broadcast_is_refused():
    model = ManualMLP(SPEC)
    with pytest.raises(ValueError, match="does not match output shape"):
        model.loss_and_grads(torch.randn(4, 3), torch.randn(4))


SPEC64 = MLPSpec([3, 4, 1], ["tanh", "identity"], dtype="float64")


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (
            torch.randn(5, 3),
            "got float32 of shape (5, 3) on cpu: convert it with .to(torch.float64)",
        ),
        (torch.randn(3, dtype=torch.float64), "got float64 of shape (3,)"),
        (torch.ones(5, 3, dtype=torch.long), "got int64 of shape (5, 3)"),
        (torch.randn(5, 4, dtype=torch.float64), "got float64 of shape (5, 4)"),
        ([[1.0, 2.0, 3.0]], "got a list: make it a tensor"),
    ],
    ids=["float32", "one-dimensional", "integer", "wrong-width", "list"],
)
def test_inputs_a_model_cannot_take_are_refused_with_what_it_takes(x, message):
    y = torch.zeros(5, 1, dtype=torch.float64)
    models = [ManualMLP(SPEC64).forward, AutogradMLP(SPEC64).forward]
    models += [lambda x: ManualMLP(SPEC64).loss_and_grads(x, y)]
    models += [lambda x: AutogradMLP(SPEC64).loss_and_grads(x, y)]
    models += [lambda x: SideBySide(SPEC64, OptimizerSpec("sgd", lr=0.1)).step(x, y)]
    for call in models:
        with pytest.raises(ValueError) as error:
            call(x)
        text = str(error.value)
        assert text.startswith("this model takes float64 inputs of shape (N, 3) on cpu; ")
        assert message in text


def test_labels_of_the_wrong_type_are_refused_with_what_the_loss_takes():
    spec = MLPSpec([3, 4], ["identity"], loss="cross_entropy", dtype="float64")
    x = torch.randn(5, 3, dtype=torch.float64)
    for labels in (torch.zeros(5, dtype=torch.float64), torch.zeros(5, 1, dtype=torch.long)):
        for model in (ManualMLP(spec), AutogradMLP(spec)):
            with pytest.raises(ValueError, match=r"takes one class label per row: torch.long"):
                model.loss_and_grads(x, labels)
    with pytest.raises(ValueError, match="takes float64 targets of shape \\(5, 1\\)"):
        ManualMLP(SPEC64).loss_and_grads(x, torch.zeros(5, 1))


class TorchCalls(TorchFunctionMode):
    """Every torch function called while active, by name (a property read by its attribute's name)."""

    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        read = getattr(func, "__self__", None) if func.__name__ == "__get__" else None
        self.names.append(read.__name__ if read is not None else func.__name__)
        return func(*args, **(kwargs or {}))


def test_the_input_check_reads_the_tensors_description_and_never_its_values():
    # the step's cost: a few attribute comparisons, however many rows the batch has
    from bpdemo.spec import check_input

    x = torch.randn(1000, 3, dtype=torch.float64)
    with TorchCalls() as calls:
        check_input(SPEC64, x)
    assert calls.names and set(calls.names) <= {"dtype", "ndim", "shape", "device", "size", "dim"}
    with TorchCalls() as control:  # the trap sees a computation on the values
        x.isfinite().all()
    assert control.names == ["isfinite", "all"]
