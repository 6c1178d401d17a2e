"""Configuration: TOML files in `configs/`, validated by pydantic schemas, overridable with `--set`.

Every table is a `Section` (unknown keys refused, no silent type conversion). A table that is also a
library object built from Python is a `Spec`, so each setting has one default and one check, whether it
comes from Python, a file or `--set`: `[optimizer]` is `bpdemo.optim.OptimizerSpec`, `[model]` stands
beside the description it builds (`bpdemo.spec.ModelSection`), and `[train]` is here. A table a file
gives in part keeps the demo's defaults for the rest. Errors come out as one `ConfigError` line naming
the file, the key, and what is expected.
"""

from __future__ import annotations

import sys
import tomllib
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import tomli_w
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from bpdemo.infra.errors import ConfigError
from bpdemo.infra.limits import MAX_BATCH, MAX_EPOCHS, MAX_NAME, MAX_SEED, MAX_THREADS, MAX_WIDTH


# -- the types of a value ------------------------------------------------------------------------------
def _name_check(registry: Mapping[str, Any] | Iterable[str]):
    def check(name: str) -> str:
        if name not in registry:
            names = [repr(key) for key in registry]
            listed = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
            raise PydanticCustomError("unknown_name", f"Input should be {listed}")
        return name

    return check


def one_of(registry: Mapping[str, Any] | Iterable[str]) -> AfterValidator:
    """A name that must be a key of `registry`, checked when a config is read (so that a name
    registered after import counts too)."""
    return AfterValidator(_name_check(registry))


def check_name(
    registry: Mapping[str, Any] | Iterable[str], name: str, what: str, where: str = ""
) -> str:
    """`name` checked as `one_of(registry)` checks it in a config, for a description built from
    Python: one ConfigError line if `registry` has no such name ("unknown loss 'hinge': ..."),
    after `where` ("layers[2]: ")."""
    try:
        return _name_check(registry)(name)
    except PydanticCustomError as error:
        raise ConfigError(f"{where}unknown {what} {name!r}: {error.message()}") from None


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


Fraction = Annotated[float, Field(ge=0, lt=1)]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Seed = Annotated[int, in_range(0, MAX_SEED)]
Width = at_most(MAX_WIDTH)
Name = Annotated[str, Field(max_length=MAX_NAME)]


# -- sections ------------------------------------------------------------------------------------------
class Section(BaseModel):
    """A config table: unknown keys are refused and values keep the type TOML gave them."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Spec(Section):
    """A section that is also a library object built from Python, such as `OptimizerSpec`.

    It is frozen (hashable), takes positional arguments in field order as a dataclass does
    (`OptimizerSpec("sgd", lr=0.1)`), and refuses a mistake with the one line a config file gets,
    the class named where a file would be: `OptimizerSpec: eps: Input should be greater than 0 (got -1)`.
    """

    model_config = ConfigDict(frozen=True)

    def __init__(self, *args: Any, **values: Any) -> None:
        cls = type(self)
        names = list(cls.model_fields)
        if len(args) > len(names):
            raise TypeError(f"{cls.__name__} takes at most {len(names)} positional arguments")
        for name, value in zip(names, args, strict=False):
            if name in values:
                raise TypeError(f"{cls.__name__} got two values for {name!r}")
            values[name] = value
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise ConfigError(describe_error(cls, error, cls.__name__, top="")) from None

    # Only a call from Python comes through here: a table read from a config is validated by
    # pydantic itself, its mistakes located in the file (pydantic's RootModel does the same).
    __init__.__pydantic_base_init__ = True

    def replace(self, **changes: Any) -> Spec:
        """A copy with `changes`, checked as the original was (as `dataclasses.replace`)."""
        current = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self)(**{**current, **changes})


def same_as(section: type[BaseModel], key: str) -> Any:
    """The type, checks and default of `section`'s `key`, for a table that shows the same setting
    under a name of its own; a default assigned there replaces the section's."""
    info = section.model_fields[key]
    return Annotated[(info.annotation, *info.metadata, Field(default=info.default))]


class TrainSection(Section):
    """[train]: how long and in what batches."""

    epochs: at_most(MAX_EPOCHS) = 50
    batch_size: at_most(MAX_BATCH) = 32
    # torch's CPU threads; None leaves torch's default (one per core). Small networks run faster on
    # one: their matrices are too small to share out, and idle threads spin on a busy machine.
    threads: at_most(MAX_THREADS) | None = None


SchemaT = TypeVar("SchemaT", bound=Section)


# -- reading -------------------------------------------------------------------------------------------
def _too_many_digits(where: str) -> ConfigError:
    """Python turns at most `sys.get_int_max_str_digits()` digits into a whole number (or back)."""
    return ConfigError(
        f"{where}: a whole number with more than {sys.get_int_max_str_digits():,} digits; "
        "give a smaller number"
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
        except ValueError:  # digits beyond Python's limit: the text is too long to show
            raise _too_many_digits(f"--set {key.strip()}=...") from None
        return cls(tuple(part.strip() for part in key.split(".")), value, f"--set {text!r}")


def apply_overrides(data: dict[str, Any], overrides: Sequence[Override]) -> dict[str, Any]:
    """Set each override's value in `data` (later ones win)."""
    for override in overrides:
        table = data
        for part in override.path[:-1]:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise ConfigError(f"{override.origin}: {part!r} is a value, not a section")
        table[override.path[-1]] = override.value
    return data


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """TOML text as a dict; a mistake in it is one ConfigError line naming `source`."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML: {error}") from None
    except ValueError:  # digits beyond Python's limit for a whole number
        raise _too_many_digits(source) from None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = Path(path).read_bytes().decode()
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} not found; pass an existing file to --config"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot be read: {error}") from None
    return parse_toml(text, str(path))


def load_config(
    schema: type[SchemaT], path: Path | None, overrides: Sequence[Override | str] = ()
) -> SchemaT:
    """Read `path` (or start from the defaults), apply `--set` overrides, validate against `schema`."""
    data = read_toml(path) if path is not None else {}
    return validate(schema, data, str(path or "config"), overrides)


def validate(
    schema: type[SchemaT],
    data: dict[str, Any],
    source: str = "config",
    overrides: Sequence[Override | str] = (),
) -> SchemaT:
    """`data` (a config's tables), with `overrides` set in it (a string is read as `--set` reads
    it), as `schema`: a table given in part keeps the schema's default for the rest of it; any
    mistake is one ConfigError line naming the key, what is wrong, and where the value came from:
    the override that set it (`--epochs -1`), else `source`."""
    overrides = [Override.parse(o) if isinstance(o, str) else o for o in overrides]
    data = apply_overrides(data, overrides)
    _check_digits(data, [], source)
    try:
        return schema.model_validate(with_defaults(schema, data))
    except ValidationError as error:
        raise ConfigError(describe_error(schema, error, source, overrides=overrides)) from None


def with_defaults(schema: type[BaseModel], data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with each table it gives completed from the schema's default for that table, so that
    a house config giving only `[optimizer] lr` keeps the house demo's other [optimizer] settings
    rather than the ones `OptimizerSpec` has when nothing is said."""
    return _completed(data, {name: info.default for name, info in schema.model_fields.items()})


def _completed(given: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    completed = dict(given)
    for name, value in given.items():
        default = defaults.get(name)
        if isinstance(value, Mapping) and isinstance(default, BaseModel):
            inner = {key: getattr(default, key) for key in type(default).model_fields}
            completed[name] = {**inner, **_completed(value, inner)}
    return completed


def _check_digits(value: Any, path: list[str], source: str) -> None:
    """Refuse a whole number too long to be written out (a config built in Python can hold one;
    TOML text cannot): every message and config.toml would fail on it."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_digits(item, [*path, str(key)], source)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_digits(item, path, source)
    elif isinstance(value, int) and not _writable(value):
        where = f"[{'.'.join(path[:-1])}] " if len(path) > 1 else ""
        raise _too_many_digits(f"{source}: {where}{path[-1] if path else 'value'}")


def _writable(number: int) -> bool:
    try:
        str(number)
    except ValueError:
        return False
    return True


def describe_error(
    schema: type[BaseModel],
    error: ValidationError,
    source: str,
    top: str = "the top level",
    overrides: Sequence[Override] = (),
) -> str:
    """One line for the first problem: where it came from, where it is, what is wrong, what would
    be right. A value an override set (or a section it set whole) is blamed on the override, in the
    user's words, not on the file that does not hold it."""
    first = error.errors()[0]
    loc = [part for part in first["loc"] if isinstance(part, str)]
    setters = [o for o in overrides if tuple(loc[: len(o.path)]) == o.path]
    source = setters[-1].origin if setters else source  # the last one given is the one that stands
    section, key = ".".join(loc[:-1]), loc[-1] if loc else ""
    where = f"[{section}] " if section else ""
    if first["type"] == "extra_forbidden":
        valid = ", ".join(_fields_at(schema, loc[:-1]))
        listed = f" (valid keys: {valid})" if valid else ""
        place = f" in {where.rstrip() or top}" if where or top else ""
        return f"{source}: unknown key {key!r}{place}{listed}"
    value = first.get("input")
    shown = f" (got {_shown(value)})" if not isinstance(value, dict) else ""
    return f"{source}: {where}{key}: {first['msg']}{shown}"


def _shown(value: Any) -> str:
    """The value as the message shows it: its repr, cut short if it is long."""
    text = repr(value) if _writable_everywhere(value) else "a whole number too long to show"
    return text if len(text) <= 120 else f"{text[:100]}..."


def _writable_everywhere(value: Any) -> bool:
    if isinstance(value, list | tuple):
        return all(_writable_everywhere(item) for item in value)
    return not isinstance(value, int) or _writable(value)


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
