"""Property-based tests (hypothesis): random networks agree three ways; random TOML never crashes.

The examples are derandomised, so CI runs the same ones every time.
"""

import tomllib

import tomli_w
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpdemo import AutogradMLP, ManualMLP, MLPSpec, finite_difference_grads, rel_diff
from bpdemo.agreement import FINITE_DIFFERENCE_TOLERANCE, TOLERANCES
from bpdemo.functional import ACTIVATIONS, LOSSES
from bpdemo.infra.config import load_config
from bpdemo.infra.errors import ConfigError
from tests.conftest import suited_to, targets_for
from tests.test_config_and_outputs import DemoConfig

PROPERTY_SETTINGS = settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def networks(draw):
    """A random float64 spec with data for it: what the fixed grid of tests/test_gradients_match.py
    does not hold. Each layer draws its own activation (the grid uses one throughout), widths go down
    to 1, the batch is any size, and weights, biases and data are drawn anew. Small (depth 1-4,
    widths 1-6, batch 1-8), so finite differences on every example stay cheap."""
    depth = draw(st.integers(1, 4))
    loss = draw(st.sampled_from(list(LOSSES)))
    sizes = [draw(st.integers(1, 6)) for _ in range(depth + 1)]
    activations = [draw(st.sampled_from(list(ACTIVATIONS))) for _ in range(depth)]
    sizes, activations = suited_to(loss, sizes, activations)
    seed = draw(st.integers(0, 2**31 - 1))
    batch = draw(st.integers(1, 8))
    generator = torch.Generator().manual_seed(seed)

    def uniform(*shape):  # weights and biases in (-1, 1): biases keep relu's kink out of reach
        return torch.rand(*shape, generator=generator, dtype=torch.float64) * 2 - 1

    shapes = list(zip(sizes[1:], sizes[:-1], strict=True))
    spec = MLPSpec(
        sizes,
        activations,
        loss=loss,
        weights=[uniform(out, inp) for out, inp in shapes],
        biases=[uniform(out) for out, _ in shapes],
        dtype=torch.float64,
    )
    x = torch.randn(batch, sizes[0], generator=generator, dtype=torch.float64)
    return spec, x, targets_for(loss, batch, sizes[-1], generator)


@settings(PROPERTY_SETTINGS, max_examples=40)
@given(networks())
def test_hand_written_autograd_and_finite_differences_agree(network):
    spec, x, y = network
    tolerance = TOLERANCES[torch.float64]
    loss_m, grads_m = ManualMLP(spec).loss_and_grads(x, y)
    loss_a, grads_a = AutogradMLP(spec).loss_and_grads(x, y)
    numeric = finite_difference_grads(spec, spec.initial_parameters(), x, y)
    assert abs(float(loss_m) - float(loss_a)) <= tolerance * max(1.0, abs(float(loss_a)))
    for name in grads_a:
        assert rel_diff(grads_m[name], grads_a[name]) <= tolerance, name
        # finite differences: exact to about 1e-9 of the gradient's scale; the bound leaves room
        # for the loss's own size (the absolute error is about 1e-16 * |L| / h)
        scale = float(grads_a[name].abs().max())
        room_for_the_loss = 1e-9 * max(1.0, abs(float(loss_a))) / max(scale, 1e-12)
        bound = FINITE_DIFFERENCE_TOLERANCE + room_for_the_loss
        assert rel_diff(numeric[name], grads_a[name]) <= bound or scale < 1e-9, name


KEYS = st.sampled_from(
    [
        "seed",
        "model",
        "optimizer",
        "train",
        "hidden",
        "activation",
        "loss",
        "lr",
        "epochs",
        "batch_size",
        "name",
        "momentum",
        "betas",
        "dtype",
        "device",
        "init",
        "extra",
        "ß",
    ]
)
SCALARS = (
    st.integers(-5, 100)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.text(max_size=8)
    | st.sampled_from(["sgd", "adam", "relu", "swish", "float64", "cpu", "cuda", "mse"])
)
TOML_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=12,
)


@PROPERTY_SETTINGS
@given(st.dictionaries(KEYS, TOML_VALUES, max_size=5))
def test_random_toml_is_accepted_or_refused_with_the_project_error(tmp_path_factory, document):
    try:
        text = tomli_w.dumps(document)
    except (TypeError, ValueError):  # not representable in TOML (e.g. a list mixing types)
        return
    path = tmp_path_factory.mktemp("toml") / "random.toml"
    path.write_text(text, encoding="utf-8")
    try:
        config = load_config(DemoConfig, path)
    except ConfigError as error:
        assert "\n" not in str(error)
    else:
        assert config.train.epochs > 0 and config.optimizer.lr > 0


@settings(max_examples=100, derandomize=True, deadline=None)
@given(st.text(max_size=60))
def test_random_text_is_valid_toml_or_a_one_line_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("text") / "random.toml"
    path.write_text(text, encoding="utf-8")
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        try:
            load_config(DemoConfig, path)
        except ConfigError as error:
            assert "not valid TOML" in str(error)
        else:
            raise AssertionError("invalid TOML was accepted")
