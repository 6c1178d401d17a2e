"""Configuration: TOML files in `configs/`, validated by pydantic schemas, overridable with `--set`.

Every demo's schema is a `Section` (unknown keys refused, no silent type conversion). The sections
shared by the training demos, `[model]`, `[optimizer]` and `[train]`, are defined here once. Errors come
out as one `ConfigError` line naming the file, the key, and what is expected.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import tomli_w
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bpdemo.errors import ConfigError
from bpdemo.optim import OptimizerSpec
from bpdemo.spec import MLPSpec

ActivationName = Literal["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softplus"]
LossName = Literal["mse", "half_sse", "sse", "cross_entropy", "bce"]
InitName = Literal["xavier", "he", "normal", "uniform"]
DtypeName = Literal["float32", "float64"]
OptimizerName = Literal["sgd", "adam"]
Fraction = Annotated[float, Field(ge=0, lt=1)]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Section(BaseModel):
    """A config table: unknown keys are refused and values keep the type TOML gave them."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ModelSection(Section):
    """[model]: the network between the data's inputs and outputs."""

    hidden: list[PositiveInt] = Field(default_factory=lambda: [16])
    activation: ActivationName = "tanh"
    output_activation: ActivationName = "identity"
    loss: LossName = "mse"
    init: InitName = "xavier"
    init_scale: PositiveFloat | None = None
    dtype: DtypeName = "float32"
    device: str = "cpu"

    def spec(self, n_inputs: int, n_outputs: int, seed: int) -> MLPSpec:
        return MLPSpec(
            sizes=[n_inputs, *self.hidden, n_outputs],
            activations=[self.activation] * len(self.hidden) + [self.output_activation],
            loss=self.loss,
            init=self.init,
            init_scale=self.init_scale,
            seed=seed,
            dtype=self.dtype,
            device=self.device,
        )


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

    epochs: PositiveInt = 50
    batch_size: PositiveInt = 32
    # torch's CPU threads; None leaves torch's default (one per core). Small networks run faster on
    # one: their matrices are too small to share out, and idle threads spin on a busy machine.
    threads: PositiveInt | None = None

    def apply_threads(self) -> None:
        apply_threads(self.threads)


def apply_threads(threads: int | None) -> None:
    """Set torch's CPU threads; None leaves torch's default."""
    if threads is not None:
        torch.set_num_threads(threads)


SchemaT = TypeVar("SchemaT", bound=Section)


def parse_override(text: str) -> tuple[list[str], Any]:
    """`section.key=value` -> (["section", "key"], value); the value is read as TOML, else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. --set train.epochs=5")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return [part.strip() for part in key.split(".")], value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        table = data
        for part in path[:-1]:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise ConfigError(f"--set {text!r}: {part!r} is a value, not a section")
        table[path[-1]] = value
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
    schema: type[SchemaT], path: Path | None, overrides: list[str] | None = None
) -> SchemaT:
    """Read `path` (or start from the defaults), apply `--set` overrides, validate against `schema`."""
    data = read_toml(path) if path is not None else {}
    return validate(
        schema, apply_overrides(data, list(overrides or [])), source=str(path or "config")
    )


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
        return f"{source}: unknown key {key!r} in {where or 'the top level '}(valid keys: {valid})"
    value = first.get("input")
    shown = f" (got {value!r})" if not isinstance(value, dict) else ""
    return f"{source}: {where}{key}: {first['msg']}{shown}"


def _fields_at(schema: type[BaseModel], path: list[str]) -> list[str]:
    for part in path:
        annotation = schema.model_fields[part].annotation if part in schema.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        schema = annotation
    return list(schema.model_fields)


def dump_config(config: Section) -> str:
    """The resolved configuration as TOML (what `config.toml` in a run folder holds)."""
    return tomli_w.dumps(config.model_dump(exclude_none=True))
