"""`MLPSpec`: the one description of a network, from which both models are built.

Nothing about a network is written twice: sizes, activations, loss and the initial weights all come from
here, so the hand-written and the autograd model start from the very same numbers. A demo's `[model]`
table (`ModelSection`) builds one, and its names are checked by the same rules.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Annotated, Any

import torch
from pydantic import Field
from torch import Tensor

from bpdemo.conv import IMAGE_LAYER_KEYS, output_shape
from bpdemo.functional import ACTIVATIONS, LOSSES
from bpdemo.infra.config import PositiveFloat, Section, Width, check_name, one_of
from bpdemo.infra.errors import ConfigError
from bpdemo.infra.limits import MAX_DEPTH, MAX_PARAMETERS

DTYPES = {"float32": torch.float32, "float64": torch.float64}
DEFAULT_NORMAL_STD = 0.01


@dataclass(frozen=True)
class Init:
    """A random initialisation: how one layer's weight (out, in) is drawn, and how it is described.

    `draw(weight, scale, generator)` fills `weight` (float64) in place; `scale` is `init_scale` or
    None for the default.
    """

    name: str
    draw: Callable[[Tensor, float | None, torch.Generator], object]
    description: Callable[[float | None], str]


def _xavier(weight: Tensor, scale: float | None, generator: torch.Generator) -> None:
    torch.nn.init.xavier_uniform_(weight, gain=scale or 1.0, generator=generator)


def _he(weight: Tensor, scale: float | None, generator: torch.Generator) -> None:
    std = (scale or 1.0) * math.sqrt(2.0 / weight.shape[1])  # sqrt(2): relu zeroes half the units
    torch.nn.init.normal_(weight, 0.0, std, generator=generator)


def _normal(weight: Tensor, scale: float | None, generator: torch.Generator) -> None:
    torch.nn.init.normal_(weight, 0.0, scale or DEFAULT_NORMAL_STD, generator=generator)


def _uniform(weight: Tensor, scale: float | None, generator: torch.Generator) -> None:
    bound = scale or 1.0 / math.sqrt(weight.shape[1])
    torch.nn.init.uniform_(weight, -bound, bound, generator=generator)


INITS: dict[str, Init] = {
    init.name: init
    for init in [
        Init(
            "xavier",
            _xavier,
            lambda s: "xavier (Glorot uniform)" + (f", gain {s:g}" if s else ""),
        ),
        Init("he", _he, lambda s: "he (Kaiming normal)" + (f", gain {s:g}" if s else "")),
        Init("normal", _normal, lambda s: f"normal, std {s or DEFAULT_NORMAL_STD:g}"),
        Init("uniform", _uniform, lambda s: f"uniform ±{s:g}" if s else "uniform ±1/√fan_in"),
    ]
}
EXPLICIT = "explicit"  # not drawn: the weights are given

# Names a config may give, each checked against its registry when the config is read; `check_name`
# checks a description built from Python by the same rule.
ActivationName = Annotated[str, one_of(ACTIVATIONS)]
LossName = Annotated[str, one_of(LOSSES)]
InitName = Annotated[str, one_of(INITS)]
DtypeName = Annotated[str, one_of(DTYPES)]

# The kinds of layer a `NetworkSpec` may list, each with its keys and their defaults (None: required).
# `bpdemo.layers.LAYER_TYPES` builds each kind; the description needs only its keys.
LAYER_KEYS: dict[str, dict[str, object]] = {
    "linear": {"units": None, "activation": "identity"},
    "batchnorm": {"eps": 1e-5, "momentum": 0.1},
    "layernorm": {"eps": 1e-5},
    "dropout": {"p": None},
    "activation": {"name": None},
    **IMAGE_LAYER_KEYS,  # conv2d, maxpool2d, avgpool2d, flatten: `bpdemo.conv`
}
FLAT_ONLY = ("linear", "batchnorm", "layernorm")  # kinds that take (N, features)
LAYER_CLASSES: dict[str, type] = {}  # kinds added by `bpdemo.register.register_layer`


def parameter_names(num_layers: int, bias: bool = True) -> list[str]:
    """`layers.0.weight`, `layers.0.bias`, `layers.1.weight`, ... as `torch.nn.Linear` in a ModuleList
    (without the biases for `nn.Linear(bias=False)`)."""
    kinds = ("weight", "bias") if bias else ("weight",)
    return [f"layers.{i}.{kind}" for i in range(num_layers) for kind in kinds]


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype.removeprefix("torch.") in DTYPES:
        return DTYPES[dtype.removeprefix("torch.")]
    raise ConfigError(f"dtype {dtype!r} is not supported; use {' or '.join(DTYPES)}")


def resolve_device(device: torch.device | str) -> torch.device:
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ConfigError(f"device {device!r} is not a device name; use cpu or cuda") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device cuda was asked for, but no CUDA GPU is available; use --device cpu"
        )
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {device.type!r} is not supported; use cpu or cuda")
    return device


@dataclass
class MLPSpec:
    """A fully connected network: sizes, activations, loss and initial weights.

    Args:
        sizes: layer widths, input first, e.g. [3, 2, 1].
        activations: one name per layer after the input (see `bpdemo.functional.ACTIVATIONS`).
        loss: a name from `bpdemo.functional.LOSSES`.
        init: `xavier` (Glorot uniform), `he` (Kaiming normal, fan-in), `normal` (N(0, scale²),
            scale 0.01 unless `init_scale`), `uniform` (U(-scale, scale), scale 1/sqrt(fan_in) unless
            `init_scale`), or `explicit` (take `weights` and `biases`). Random inits draw every
            weight from a generator seeded with `seed`, in float64, then cast to `dtype`; biases start
            at zero.
        init_scale: multiplies the gain of xavier/he; the std of normal; the bound of uniform.
        weights: explicit weights, one (out, in) matrix per layer (nested lists or tensors).
        biases: explicit biases, one list per layer (zeros if omitted with explicit weights).
        bias: False for layers without biases (torch's `nn.Linear(bias=False)`): no bias parameter.
        seed, dtype, device: as named; dtype float32 or float64.
    """

    sizes: Sequence[int]
    activations: Sequence[str]
    loss: str = "mse"
    init: str = "xavier"
    seed: int = 0
    dtype: torch.dtype | str = torch.float32
    device: torch.device | str = "cpu"
    init_scale: float | None = None
    weights: Sequence | None = field(default=None, repr=False)
    biases: Sequence | None = field(default=None, repr=False)
    bias: bool = True

    def __post_init__(self) -> None:
        self.sizes = [int(s) for s in self.sizes]
        self.activations = list(self.activations)
        self.dtype = resolve_dtype(self.dtype)
        self.device = resolve_device(self.device)
        if self.weights is not None and self.init == "xavier":
            self.init = EXPLICIT
        self._validate()

    @property
    def num_layers(self) -> int:
        return len(self.sizes) - 1

    @property
    def inputs(self) -> int:
        """The width of the input (as `NetworkSpec.inputs`)."""
        return self.sizes[0]

    @property
    def outputs(self) -> int:
        """The width of the output (as `NetworkSpec.outputs`)."""
        return self.sizes[-1]

    @property
    def parameter_names(self) -> list[str]:
        return parameter_names(self.num_layers, self.bias)

    def _validate(self) -> None:
        if len(self.sizes) < 2:
            raise ConfigError(f"sizes {self.sizes} needs at least an input and an output width")
        if any(s < 1 for s in self.sizes):
            raise ConfigError(f"sizes {self.sizes}: every layer width must be at least 1")
        if len(self.activations) != self.num_layers:
            raise ConfigError(
                f"activations: {len(self.activations)} given for {self.num_layers} layers "
                f"(sizes {self.sizes}); give one per layer after the input"
            )
        for name in self.activations:
            check_name(ACTIVATIONS, name, "activation")
        check_name(LOSSES, self.loss, "loss")
        if LOSSES[self.loss].targets == "probabilities" and self.activations[-1] != "sigmoid":
            raise ConfigError(
                f"loss {self.loss} needs outputs in (0, 1): make the last activation sigmoid"
            )
        if LOSSES[self.loss].classification and self.sizes[-1] < 2:
            raise ConfigError(f"loss {self.loss} needs at least 2 outputs (one logit per class)")
        check_name([*INITS, EXPLICIT], self.init, "init")
        if self.init == EXPLICIT and self.weights is None:
            raise ConfigError("init 'explicit' needs weights (one (out, in) matrix per layer)")
        if self.init_scale is not None and not (
            math.isfinite(self.init_scale) and self.init_scale > 0
        ):
            raise ConfigError(f"init_scale must be a positive number, got {self.init_scale}")
        if self.init == EXPLICIT:
            self._explicit_parameters()  # raises on a shape mismatch

    def with_parameters(self, parameters: Mapping[str, Tensor], **changes) -> MLPSpec:
        """This network with `parameters` (a state dict, by parameter name) as explicit initial
        weights; `changes` replace other fields (e.g. `dtype=torch.float64`)."""
        return replace(
            self,
            init=EXPLICIT,
            init_scale=None,
            weights=[parameters[f"layers.{i}.weight"] for i in range(self.num_layers)],
            biases=(
                [parameters[f"layers.{i}.bias"] for i in range(self.num_layers)]
                if self.bias
                else None
            ),
            **changes,
        )

    def initial_parameters(self) -> OrderedDict[str, Tensor]:
        """Fresh copies of the initial weights and biases, by parameter name, in `dtype` on `device`."""
        explicit = self.init == EXPLICIT
        params = self._explicit_parameters() if explicit else self._random_parameters()
        return OrderedDict(
            (name, t.to(dtype=self.dtype, device=self.device)) for name, t in params.items()
        )

    def _random_parameters(self) -> OrderedDict[str, Tensor]:
        generator = torch.Generator().manual_seed(self.seed)
        params: OrderedDict[str, Tensor] = OrderedDict()
        for i, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True)):
            weight = torch.empty(fan_out, fan_in, dtype=torch.float64)
            INITS[self.init].draw(weight, self.init_scale, generator)
            params[f"layers.{i}.weight"] = weight
            if self.bias:
                params[f"layers.{i}.bias"] = torch.zeros(fan_out, dtype=torch.float64)
        return params

    def _explicit_parameters(self) -> OrderedDict[str, Tensor]:
        weights = list(self.weights or [])
        biases = list(self.biases) if self.biases is not None else None
        if len(weights) != self.num_layers:
            raise ConfigError(
                f"weights: {len(weights)} matrices given for {self.num_layers} layers "
                f"(sizes {self.sizes}); give one (out, in) matrix per layer"
            )
        if biases is not None and not self.bias:
            raise ConfigError("biases are given for a network without biases (bias = false)")
        if biases is not None and len(biases) != self.num_layers:
            raise ConfigError(
                f"biases: {len(biases)} lists given for {self.num_layers} layers; give one per layer"
            )
        params: OrderedDict[str, Tensor] = OrderedDict()
        for i, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True)):
            weight = _as_tensor(weights[i], f"weights[{i}]")
            if tuple(weight.shape) != (fan_out, fan_in):
                raise ConfigError(
                    f"weights[{i}] has shape {tuple(weight.shape)}, but layer {i} maps "
                    f"{fan_in} inputs to {fan_out} outputs: it needs shape ({fan_out}, {fan_in}) "
                    "(one row per output neuron)"
                )
            if biases is None:
                bias = torch.zeros(fan_out, dtype=torch.float64)
            else:
                bias = _as_tensor(biases[i], f"biases[{i}]")
                if tuple(bias.shape) != (fan_out,):
                    raise ConfigError(
                        f"biases[{i}] has shape {tuple(bias.shape)}, but layer {i} has "
                        f"{fan_out} outputs: it needs {fan_out} values"
                    )
            params[f"layers.{i}.weight"] = weight
            if self.bias:
                params[f"layers.{i}.bias"] = bias
        return params


def _as_tensor(value, where: str) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().to(torch.float64).clone()
    try:
        tensor = torch.tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ConfigError(f"{where} is not a rectangular list of numbers: {error}") from error
    if not torch.isfinite(tensor).all():
        raise ConfigError(f"{where} holds a value that is not finite (inf or NaN)")
    return tensor


@dataclass
class NetworkSpec:
    """A stack of layers of any kind `bpdemo.layers` knows, and a loss: the description a
    `ManualSequential` and its autograd twin are both built from.

    Args:
        inputs: the width of the input.
        layers: one dict per layer, with a `type` and that type's keys, e.g.
            `{"type": "linear", "units": 64, "activation": "relu"}`, `{"type": "batchnorm"}`,
            `{"type": "layernorm"}`, `{"type": "dropout", "p": 0.2}`,
            `{"type": "activation", "name": "relu"}` (see `LAYER_KEYS`).
        loss, init, init_scale, seed, dtype, device: as for `MLPSpec`; `init` draws the linear
            and convolution layers' weights in layer order (a kernel as the (out, C·kh·kw) matrix
            it is multiplied as), normalisations start at γ = 1, β = 0, and dropout layer i draws
            its masks from seed + i.
        input_shape: (channels, height, width) for images, whose C·H·W = `inputs` pixels come as
            rows (N, inputs), channel by channel, and go through the layers as (N, C, H, W); then
            `conv2d`, `maxpool2d`, `avgpool2d` and `flatten` layers may come first (`bpdemo.conv`).
            A network whose first layer to need a shape is a linear or normalisation layer takes
            the rows as they are, and its `input_shape` is None.
    """

    inputs: int
    layers: Sequence[Mapping]
    loss: str = "mse"
    init: str = "xavier"
    init_scale: float | None = None
    seed: int = 0
    dtype: torch.dtype | str = torch.float32
    device: torch.device | str = "cpu"
    input_shape: Sequence[int] | None = None

    def __post_init__(self) -> None:
        self.inputs = int(self.inputs)
        if self.input_shape is not None:
            self.input_shape = tuple(int(size) for size in self.input_shape)
            if len(self.input_shape) != 3 or math.prod(self.input_shape) != self.inputs:
                raise ConfigError(
                    f"input_shape {self.input_shape} must be (channels, height, width) of "
                    f"{self.inputs} inputs in all"
                )
        self.dtype = resolve_dtype(self.dtype)
        self.device = resolve_device(self.device)
        if self.inputs < 1:
            raise ConfigError(f"inputs must be at least 1, got {self.inputs}")
        if not self.layers:
            raise ConfigError("layers: give at least one layer")
        entries = []
        for i, entry in enumerate(self.layers):
            kind = entry.get("type")
            check_name(LAYER_KEYS, kind, "type", where=f"layers[{i}]: ")
            keys = LAYER_KEYS[kind]
            unknown = sorted(set(entry) - set(keys) - {"type"})
            if unknown:
                raise ConfigError(
                    f"layers[{i}] ({kind}): unknown key {unknown[0]!r} (valid keys: "
                    f"{', '.join(keys)})"
                )
            missing = [key for key, default in keys.items() if default is None and key not in entry]
            if missing:
                raise ConfigError(f"layers[{i}] ({kind}): {missing[0]!r} is missing")
            entries.append({"type": kind, **{k: entry.get(k, d) for k, d in keys.items()}})
        self.layers = entries
        kinds = [entry["type"] for entry in entries]
        first_image = next((i for i, k in enumerate(kinds) if k in IMAGE_LAYER_KEYS), len(kinds))
        first_flat = next((i for i, k in enumerate(kinds) if k in FLAT_ONLY), len(kinds))
        if first_image >= first_flat:  # nothing sees the image as an image: rows stay rows
            self.input_shape = None
        self._validate()

    def _validate(self) -> None:
        for i, entry in enumerate(self.layers):
            name = entry.get("activation", entry.get("name"))
            if name is not None:
                check_name(ACTIVATIONS, name, "activation", where=f"layers[{i}]: ")
            if entry["type"] == "linear" and not (
                isinstance(entry["units"], int) and entry["units"] > 0
            ):
                raise ConfigError(f"layers[{i}] (linear): units must be a whole number above 0")
            if entry["type"] == "dropout" and not 0 <= entry["p"] < 1:
                raise ConfigError(f"layers[{i}] (dropout): p must be in [0, 1), got {entry['p']}")
        check_name(LOSSES, self.loss, "loss")
        check_name(INITS, self.init, "init")
        self.shapes = self._shapes()

    def _shapes(self) -> list[tuple[int, ...]]:
        """Each layer's input shape, then the output's: (features,) or (C, H, W)."""
        shapes = [self.input_shape or (self.inputs,)]
        for i, entry in enumerate(self.layers):
            kind, shape = entry["type"], shapes[-1]
            where = f"layers[{i}] ({kind}): "
            if kind in FLAT_ONLY and len(shape) != 1:
                raise ConfigError(
                    f"{where}takes features, but gets images {'×'.join(map(str, shape))}: "
                    "put a flatten layer before it"
                )
            if kind in IMAGE_LAYER_KEYS:
                try:
                    shape = output_shape(entry, shape, where)
                except ValueError as error:
                    raise ConfigError(str(error)) from None
            elif kind == "linear":
                shape = (entry["units"],)
            elif hasattr(LAYER_CLASSES.get(kind), "output_shape"):  # a registered kind
                keys = {k: v for k, v in entry.items() if k != "type"}
                shape = tuple(LAYER_CLASSES[kind].output_shape(shape, **keys))
            shapes.append(shape)
        return shapes

    @property
    def outputs(self) -> int:
        """The width of the last layer's output."""
        return math.prod(self.shapes[-1])


# -- a demo's [model] table ---------------------------------------------------------------------------
class ModelSection(Section):
    """[model]: the network between the data's inputs and outputs (at most `MAX_PARAMETERS`), as a
    demo's config gives it; `spec` builds the `MLPSpec` (or `NetworkSpec`) it describes."""

    hidden: Annotated[list[Width], Field(max_length=MAX_DEPTH)] = Field(
        default_factory=lambda: [16]
    )
    activation: ActivationName = "tanh"
    output_activation: ActivationName = "identity"
    loss: LossName = "mse"
    init: InitName = "xavier"
    init_scale: PositiveFloat | None = None
    dtype: DtypeName = "float32"
    device: str = "cpu"
    # Instead of hidden and the activations (which it replaces): any stack of layers, e.g.
    # [{type = "linear", units = 64}, {type = "batchnorm"}, {type = "activation", name = "relu"},
    #  {type = "dropout", p = 0.1}, {type = "linear"}]; the last linear layer's units default to
    # the data's outputs.
    layers: list[dict[str, Any]] | None = None

    def spec(
        self, n_inputs: int, n_outputs: int, seed: int, input_shape: Sequence[int] | None = None
    ) -> MLPSpec | NetworkSpec:
        """input_shape: (C, H, W) of images, which a layer list may convolve."""
        if self.layers is not None:
            return self._network_spec(n_inputs, n_outputs, seed, input_shape)
        check_size([n_inputs, *self.hidden, n_outputs])
        return MLPSpec(
            sizes=[n_inputs, *self.hidden, n_outputs],
            activations=[self.activation] * len(self.hidden) + [self.output_activation],
            **self._training(seed),
        )

    def _training(self, seed: int) -> dict[str, Any]:
        """What both kinds of description take alike: the loss, the initial weights, the dtype."""
        keys = ("loss", "init", "init_scale", "dtype", "device")
        return {"seed": seed, **{key: getattr(self, key) for key in keys}}

    @property
    def hidden_activation(self) -> str:
        """The activation of the hidden layers (of the first one that has one, for a layer list)."""
        if self.layers is None:
            return self.activation
        for entry in self.layers:
            name = (
                entry.get("name") if entry.get("type") == "activation" else entry.get("activation")
            )
            if name not in (None, "identity"):
                return name
        return "identity"

    def layer_text(self) -> str | None:
        """The layer list in a few words (None without one): 'linear 12 relu, batchnorm, ...'."""
        if self.layers is None:
            return None
        words = []
        for entry in self.layers:
            details = [str(v) for k, v in entry.items() if k != "type" and v != "identity"]
            if entry.get("type") in IMAGE_LAYER_KEYS:  # sizes by name: 'conv2d kernel_size=3 ...'
                details = [f"{k}={v}" for k, v in entry.items() if k != "type"]
            words.append(" ".join([entry.get("type", "?"), *details]))
        return ", ".join(words)

    @property
    def hidden_sizes(self) -> list[int]:
        """The widths of the hidden linear layers (all but the output layer)."""
        if self.layers is None:
            return list(self.hidden)
        return [entry.get("units") for entry in self.layers if entry.get("type") == "linear"][:-1]

    def _network_spec(self, n_inputs, n_outputs, seed, input_shape) -> NetworkSpec:
        entries = [dict(entry) for entry in self.layers]
        linear = [entry for entry in entries if entry.get("type") == "linear"]
        if not linear:
            raise ConfigError("[model] layers: the last linear layer makes the outputs; give one")
        units = linear[-1].setdefault("units", n_outputs)
        if units != n_outputs:
            raise ConfigError(
                f"[model] layers: the last linear layer has {units} units, but the data has "
                f"{n_outputs} outputs; leave its units out"
            )
        widths = [entry.get("units") for entry in linear]
        if all(isinstance(width, int) for width in widths):  # else NetworkSpec says what is wrong
            check_size([n_inputs, *widths])
        try:
            spec = NetworkSpec(n_inputs, entries, **self._training(seed), input_shape=input_shape)
        except ConfigError as error:
            raise ConfigError(f"[model] {error}") from None
        if spec.input_shape is not None:  # a linear layer after a flatten has the maps' fan-in
            check_count(spec)
        return spec


def check_size(sizes: Sequence[int]) -> None:
    """Refuse a network of more than `MAX_PARAMETERS` weights and biases, before it is allocated."""
    count = sum((fan_in + 1) * fan_out for fan_in, fan_out in pairwise(sizes))
    if count > MAX_PARAMETERS:
        raise ConfigError(
            f"[model] layer sizes {list(sizes)} make {count:,} weights and biases; the range is 1 "
            f"to {MAX_PARAMETERS:,} (each is kept about 8 times: two models, their gradients and "
            "optimizer states): choose smaller hidden layers or smaller inputs"
        )


def check_count(spec: NetworkSpec) -> None:
    """`check_size` for a network with image layers: a kernel has C·kh·kw + 1 numbers per output
    channel, a linear layer (fan-in + 1) per unit."""
    count = 0
    for entry, shape in zip(spec.layers, spec.shapes, strict=False):
        if entry["type"] == "linear":
            count += (math.prod(shape) + 1) * entry["units"]
        elif entry["type"] == "conv2d":
            kernel = entry["kernel_size"]
            area = math.prod(kernel) if isinstance(kernel, list) else kernel * kernel
            count += entry["out_channels"] * (shape[0] * area + 1)
    if count > MAX_PARAMETERS:
        raise ConfigError(
            f"[model] layers make {count:,} weights and biases; the range is 1 to "
            f"{MAX_PARAMETERS:,}: choose fewer channels, or pool before the linear layer"
        )


# -- what a model is given, checked where it enters ------------------------------------------------
# A model calls `check_input` on every forward pass and `check_target` on every loss, so the passing
# case is a few comparisons; only a refusal builds a message (a `ValueError` that says what it takes,
# rather than an error deep inside torch).
def on_device(x: Tensor, device: torch.device) -> bool:
    """Whether `x` is on `device` ("cuda" without an index takes any GPU)."""
    where = x.device
    return where.type == device.type and (device.index is None or where.index == device.index)


def check_input(spec, x: Tensor) -> None:
    """Refuse inputs that are not `spec.dtype` numbers of shape (N, inputs) on `spec.device`."""
    if (
        isinstance(x, Tensor)
        and x.dtype is spec.dtype
        and x.ndim == 2
        and x.shape[1] == spec.inputs
        and (x.device == spec.device or on_device(x, spec.device))
    ):
        return
    expected = f"{_name(spec.dtype)} inputs of shape (N, {spec.inputs}) on {spec.device}"
    raise ValueError(f"this model takes {expected}; {_given(x, spec.dtype)}")


def check_target(spec, output: Tensor, target: Tensor) -> None:
    """Refuse a target of the wrong type, or of a shape that would silently broadcast."""
    loss = LOSSES[spec.loss]
    if loss.classification:
        if (
            isinstance(target, Tensor)
            and target.dtype is torch.long
            and target.ndim == 1
            and target.shape[0] == output.shape[0]
        ):
            return
        raise ValueError(
            f"this model ({spec.loss}) takes one class label per row: torch.long of shape "
            f"({output.shape[0]},), values 0 to {output.shape[1] - 1}; "
            f"{_given(target, torch.long)}"
        )
    if isinstance(target, Tensor) and target.shape == output.shape and target.dtype is output.dtype:
        return
    shape = tuple(output.shape)
    if isinstance(target, Tensor) and target.shape != output.shape:
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match output shape {shape}: this model "
            f"takes {_name(spec.dtype)} targets of shape {shape}"
        )
    raise ValueError(
        f"this model takes {_name(spec.dtype)} targets of shape {shape}; "
        f"{_given(target, spec.dtype)}"
    )


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _given(value, dtype: torch.dtype) -> str:
    """What was given instead, and how to convert it."""
    if not isinstance(value, Tensor):
        return (
            f"got a {type(value).__name__}: make it a tensor, e.g. "
            f"torch.as_tensor(values, dtype=torch.{_name(dtype)})"
        )
    given = f"got {_name(value.dtype)} of shape {tuple(value.shape)} on {value.device}"
    if value.dtype is not dtype:
        given += f": convert it with .to(torch.{_name(dtype)})"
    return given
