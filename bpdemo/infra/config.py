"""Configuration: TOML files in `configs/`, validated by pydantic schemas, overridable with `--set`.

Every demo's schema is a `Section` (unknown keys refused, no silent type conversion). The sections
shared by the training demos, `[model]`, `[optimizer]` and `[train]`, are defined here once. Errors come
out as one `ConfigError` line naming the file, the key, and what is expected.
"""

from __future__ import annotations

import tomllib
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, TypeVar

import tomli_w
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from bpdemo.functional import ACTIVATIONS, LOSSES
from bpdemo.infra.errors import ConfigError
from bpdemo.infra.limits import (
    MAX_BATCH,
    MAX_DEPTH,
    MAX_EPOCHS,
    MAX_NAME,
    MAX_PARAMETERS,
    MAX_SEED,
    MAX_THREADS,
    MAX_WIDTH,
)
from bpdemo.optim import OPTIMIZERS, OptimizerSpec
from bpdemo.spec import DTYPES, INITS, MLPSpec, NetworkSpec


def one_of(registry: Mapping[str, Any] | Iterable[str]) -> AfterValidator:
    """A name that must be a key of `registry`, checked when a config is read (so that a name
    registered after import counts too)."""

    def check(name: str) -> str:
        if name not in registry:
            names = [repr(key) for key in registry]
            listed = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
            raise PydanticCustomError("unknown_name", f"Input should be {listed}")
        return name

    return AfterValidator(check)


ActivationName = Annotated[str, one_of(ACTIVATIONS)]
LossName = Annotated[str, one_of(LOSSES)]
InitName = Annotated[str, one_of(INITS)]
DtypeName = Annotated[str, one_of(DTYPES)]
OptimizerName = Annotated[str, one_of(OPTIMIZERS)]
Fraction = Annotated[float, Field(ge=0, lt=1)]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


def in_range(low: int, high: int) -> AfterValidator:
    """A whole number from `low` to `high` (`bpdemo.infra.limits`); the message gives the range."""

    def check(value: int) -> int:
        if not low <= value <= high:
            raise PydanticCustomError("range", f"Input should be from {low:,} to {high:,}")
        return value

    return AfterValidator(check)


def at_most(high: int) -> type[int]:
    """A whole number from 1 to `high`: 0 says "greater than 0", as every positive count does."""
    return Annotated[int, Field(gt=0), in_range(1, high)]


Seed = Annotated[int, in_range(0, MAX_SEED)]
Width = at_most(MAX_WIDTH)
Name = Annotated[str, Field(max_length=MAX_NAME)]


class Section(BaseModel):
    """A config table: unknown keys are refused and values keep the type TOML gave them."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ModelSection(Section):
    """[model]: the network between the data's inputs and outputs (at most `MAX_PARAMETERS`)."""

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

    def spec(self, n_inputs: int, n_outputs: int, seed: int) -> MLPSpec | NetworkSpec:
        if self.layers is not None:
            return self._network_spec(n_inputs, n_outputs, seed)
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
            words.append(" ".join([entry.get("type", "?"), *details]))
        return ", ".join(words)

    @property
    def hidden_sizes(self) -> list[int]:
        """The widths of the hidden linear layers (all but the output layer)."""
        if self.layers is None:
            return list(self.hidden)
        return [entry.get("units") for entry in self.layers if entry.get("type") == "linear"][:-1]

    def _network_spec(self, n_inputs: int, n_outputs: int, seed: int) -> NetworkSpec:
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
            return NetworkSpec(n_inputs, entries, **self._training(seed))
        except ConfigError as error:
            raise ConfigError(f"[model] {error}") from None


class OptimizerSection(Section):
    """[optimizer]: the update rule, the same for both models (see `bpdemo.optim`)."""

    name: OptimizerName = "adam"
    lr: PositiveFloat = 0.01
    momentum: Fraction = 0.0
    nesterov: bool = False
    weight_decay: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    betas: Annotated[list[Fraction], Field(min_length=2, max_length=2)] = Field(
        default_factory=lambda: [0.9, 0.999]
    )
    eps: PositiveFloat = 1e-8
    train_biases: bool = True
    max_grad_norm: PositiveFloat | None = None

    def spec(self) -> OptimizerSpec:
        fields = self.model_dump()
        fields["betas"] = tuple(fields["betas"])
        return OptimizerSpec(**fields)


class TrainSection(Section):
    """[train]: how long and in what batches."""

    epochs: at_most(MAX_EPOCHS) = 50
    batch_size: at_most(MAX_BATCH) = 32
    # torch's CPU threads; None leaves torch's default (one per core). Small networks run faster on
    # one: their matrices are too small to share out, and idle threads spin on a busy machine.
    threads: at_most(MAX_THREADS) | None = None


SchemaT = TypeVar("SchemaT", bound=Section)


def check_size(sizes: Sequence[int]) -> None:
    """Refuse a network of more than `MAX_PARAMETERS` weights and biases, before it is allocated."""
    count = sum((fan_in + 1) * fan_out for fan_in, fan_out in pairwise(sizes))
    if count > MAX_PARAMETERS:
        raise ConfigError(
            f"[model] layer sizes {list(sizes)} make {count:,} weights and biases; the range is 1 "
            f"to {MAX_PARAMETERS:,} (each is kept about 8 times: two models, their gradients and "
            "optimizer states): choose smaller hidden layers or smaller inputs"
        )


@dataclass(frozen=True)
class Override:
    """One config value given on the command line: where it goes, the value, how it was written.

    `origin` is the user's own words (`--set train.epochs=5`, `--epochs 5`), for error messages.
    """

    path: tuple[str, ...]
    value: Any
    origin: str

    @classmethod
    def parse(cls, text: str) -> Override:
        """`section.key=value`, as `--set` takes it; the value is read as TOML, else as a string."""
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"--set {text!r}: expected section.key=value, e.g. --set train.epochs=5"
            )
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        return cls(tuple(part.strip() for part in key.split(".")), value, f"--set {text!r}")


def apply_overrides(data: dict[str, Any], overrides: Sequence[Override | str]) -> dict[str, Any]:
    """Set each override's value in `data` (later ones win); a string is read as `--set` reads it."""
    for override in overrides:
        if isinstance(override, str):
            override = Override.parse(override)
        table = data
        for part in override.path[:-1]:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise ConfigError(f"{override.origin}: {part!r} is a value, not a section")
        table[override.path[-1]] = override.value
    return data


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} not found; pass an existing file to --config"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot be read: {error}") from None


def load_config(
    schema: type[SchemaT], path: Path | None, overrides: Sequence[Override | str] = ()
) -> SchemaT:
    """Read `path` (or start from the defaults), apply `--set` overrides, validate against `schema`."""
    data = read_toml(path) if path is not None else {}
    return validate(schema, apply_overrides(data, overrides), source=str(path or "config"))


def validate(schema: type[SchemaT], data: dict[str, Any], source: str = "config") -> SchemaT:
    try:
        return schema.model_validate(data)
    except ValidationError as error:
        raise ConfigError(describe_error(schema, error, source)) from None


def describe_error(schema: type[Section], error: ValidationError, source: str) -> str:
    """One line for the first problem: where it is, what is wrong, what would be right."""
    first = error.errors()[0]
    loc = [part for part in first["loc"] if isinstance(part, str)]
    section, key = ".".join(loc[:-1]), loc[-1] if loc else ""
    where = f"[{section}] " if section else ""
    if first["type"] == "extra_forbidden":
        valid = ", ".join(_fields_at(schema, loc[:-1]))
        listed = f" (valid keys: {valid})" if valid else ""
        return f"{source}: unknown key {key!r} in {where.rstrip() or 'the top level'}{listed}"
    value = first.get("input")
    shown = f" (got {value!r})" if not isinstance(value, dict) else ""
    return f"{source}: {where}{key}: {first['msg']}{shown}"


def _fields_at(schema: type[BaseModel], path: list[str]) -> list[str]:
    """The keys of the section at `path` (through lists and optional sections); [] if unknown."""
    for part in path:
        annotation = schema.model_fields[part].annotation if part in schema.model_fields else None
        schema = _section_in(annotation)
        if schema is None:
            return []
    return list(schema.model_fields)


def _section_in(annotation: Any) -> type[BaseModel] | None:
    """The section class an annotation holds: `Sec`, `Sec | None`, `list[Sec]`, ...; else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _section_in(argument)
        if found is not None:
            return found
    return None


def dump_config(config: Section) -> str:
    """The resolved configuration as TOML (what `config.toml` in a run folder holds)."""
    return tomli_w.dumps(config.model_dump(exclude_none=True))
