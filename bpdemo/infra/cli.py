"""The command line shared by every demo: common flags, config loading, and the one error path.

User mistakes (`UsageError`) print one line on stderr and exit 2; faults at run time (`RunError`, a disk
that is full, too little memory) print one line and exit 1; an interruption (Ctrl-C, SIGTERM) keeps what
the run finished, prints one line and exits 130 or 143 (`bpdemo.infra.interruption`). Library warnings never
reach the terminal: what matters in them is said in the project's own words. Under torchrun only rank 0
prints (`bpdemo.infra.ranks`). `--debug` shows the traceback and the warnings instead. A command's run
itself, from the claim of its folder to the line that says what it wrote, is `bpdemo.infra.command`.

A command is named as the user typed it: `python -m demos.house_prices`, or `bpdemo house-prices`
through the console script (`bpdemo.__main__`, which names it with `typed_as`). `--config` takes a
file or the name of a shipped config (`bpdemo.infra.shipped`); `--write-config FILE` copies that
config to edit, and runs nothing.
"""

from __future__ import annotations

import argparse
import contextvars
import logging
import os
import shlex
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bpdemo.infra import interruption, outputs
from bpdemo.infra.command import kept_line
from bpdemo.infra.config import Override, SchemaT, load_config
from bpdemo.infra.errors import ConfigError, RunError, UsageError
from bpdemo.infra.limits import MAX_DPI, MAX_SEED, MAX_THREADS, MIN_DPI
from bpdemo.infra.outputs import FIGURE_FORMATS, FigureFormat
from bpdemo.infra.processes import ProcessLost, lost_process
from bpdemo.infra.ranks import is_rank_zero
from bpdemo.infra.shipped import CONFIG_DIR, config_file

__all__ = ["CONFIG_DIR"]  # the shipped configs' folder, as notebooks and pages import it from here

# How the command being run was typed, when not `python -m MODULE` (the console script sets it).
_typed_as: contextvars.ContextVar[str | None] = contextvars.ContextVar("typed_as", default=None)
# The flags that a copy of the config (`--write-config`) goes with: all others would be ignored.
_WITH_WRITE_CONFIG = {"help", "config", "write_config", "quiet", "debug"}


@contextmanager
def typed_as(command: str) -> Iterator[None]:
    """Within the block, a command's parser names it `command` (`bpdemo house-prices`) in its usage
    line and its error lines, instead of `python -m MODULE`."""
    token = _typed_as.set(command)
    try:
        yield
    finally:
        _typed_as.reset(token)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line and exit status 2, flags are not abbreviated, and
    the command is named as it was typed: `python -m MODULE`, or as `typed_as` says.

    Where the parser has `--config` (`config_arguments`), `parse_args` returns the file it names (a
    path, or a shipped config's name resolved), and answers `--write-config FILE` itself, as it
    answers `--help`: it writes the copy, says so, and ends the command.
    """

    def __init__(self, module: str, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # `--deb` is not `--debug`: a typo stays an error
        kwargs["prog"] = kwargs.get("prog") or _typed_as.get() or f"python -m {module}"
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        if is_rank_zero():
            sys.stderr.write(f"error: {message} (see {self.prog} --help)\n")
        self.exit(2)

    def parse_args(self, args=None, namespace=None) -> argparse.Namespace:
        parsed = super().parse_args(args, namespace)
        if getattr(parsed, "config", None) is not None:
            parsed.config = config_file(parsed.config)
        if getattr(parsed, "write_config", None) is not None:
            self._write_config(parsed)
            self.exit(0)
        return parsed

    def _write_config(self, args: argparse.Namespace) -> None:
        """A copy of the `--config` file at `--write-config`, as it is (comments and all)."""
        given = [
            action.option_strings[0]
            for action in self._actions
            if action.option_strings
            and action.dest not in _WITH_WRITE_CONFIG
            and getattr(args, action.dest, action.default) != action.default
        ]
        if given:
            raise UsageError(
                f"--write-config copies the config to edit and runs nothing, so "
                f"{' and '.join(given)} would change nothing: leave them out, and set their "
                "values in the copy"
            )
        target = args.write_config
        try:
            data = args.config.read_bytes()
        except OSError as error:
            raise ConfigError(f"{args.config}: cannot be read: {error.strerror}") from None
        if not target.parent.is_dir():
            raise UsageError(f"--write-config {target}: there is no folder {target.parent}")
        try:
            outputs.write_new(target, data)
        except FileExistsError:
            raise UsageError(
                f"--write-config {target}: that name is taken, and --write-config never writes "
                "over anything: choose another name, or move it away"
            ) from None
        except OSError as error:
            raise UsageError(
                f"--write-config {target}: cannot be written ({error.strerror or error})"
            ) from None
        if not args.quiet:
            shipped = args.config.parent == CONFIG_DIR and args.config.suffix == ".toml"
            source = f"the shipped config {args.config.stem}" if shipped else str(args.config)
            print(
                f"wrote {target}, a copy of {source}, to edit; then run it with: "
                f"{self.prog} --config {shlex.quote(str(target))}",
                flush=True,
            )


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse `type`: a whole number from `low` to `high`, else a usage error that says so."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is outside the range {low:,} to {high:,}")
        return value

    return parse


def common_parser(
    demo: str,
    description: str,
    epilog: str | None = None,
    *,
    config: str | None = None,
    epochs_key: str = "train.epochs",
    model_section: str = "model",
) -> ArgumentParser:
    """The flags every demo accepts; a demo adds its own on the returned parser.

    config: the name of the shipped config `--config` defaults to (the demo's own if None).
    `epochs_key` and `model_section` name where the demo's config keeps the epochs and the dtype and
    device: the flags set them there.
    """
    parser = ArgumentParser(
        f"demos.{demo}",
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(epochs_key=epochs_key, model_section=model_section)
    common = parser.add_argument_group("common options")
    config_arguments(common, config or demo)
    common.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value, e.g. --set optimizer.lr=0.05 (repeatable)",
    )
    output_arguments(common, demo)
    common.add_argument(
        "--seed",
        type=whole_number(0, MAX_SEED),
        help=f"random seed, 0 to {MAX_SEED:,} (config key: seed)",
    )
    common.add_argument("--epochs", type=int, help=f"number of epochs (config key: {epochs_key})")
    common.add_argument(
        "--threads",
        type=whole_number(1, MAX_THREADS),
        metavar="N",
        help=f"torch CPU threads, 1 to {MAX_THREADS} (config key: train.threads)",
    )
    common.add_argument(
        "--dtype",
        choices=["float32", "float64"],
        help=f"floating-point type ({model_section}.dtype)",
    )
    common.add_argument("--device", help=f"cpu or cuda ({model_section}.device)")
    common.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="a Python module or .py file to run first, e.g. one that registers an activation "
        "(repeatable; see bpdemo.register_activation)",
    )
    common.add_argument("--quiet", action="store_true", help="no progress output")
    common.add_argument("--debug", action="store_true", help="show a traceback on errors")
    return parser


def config_arguments(group, default: str, what: str = "TOML config") -> None:
    """`--config` (a file, or the name of a shipped config; `default` names the one used without
    it) and `--write-config FILE`, which the parser answers itself (`ArgumentParser.parse_args`)."""
    group.add_argument(
        "--config",
        default=CONFIG_DIR / f"{default}.toml",
        metavar="FILE",
        help=f"{what} file, or the name of a shipped config (default: {default})",
    )
    group.add_argument(
        "--write-config",
        type=Path,
        metavar="FILE",
        help="write a copy of the config (--config, comments and all) to the new file FILE, to "
        "edit, and run nothing",
    )


def output_arguments(group, command: str) -> None:
    """`--out`, `--force`, `--format` and `--dpi`, as every command that writes a run folder takes
    them (`bpdemo.infra.command.run_command` reads them)."""
    group.add_argument(
        "--out", metavar="DIR", help=f"output folder (default: runs/{command}/<timestamp>)"
    )
    group.add_argument(
        "--force",
        action="store_true",
        help="reuse an --out folder: the files its last run wrote are replaced, others kept",
    )
    group.add_argument(
        "--format",
        choices=FIGURE_FORMATS,
        default="png",
        help="figure files: png (default), or svg / pdf for slides and print",
    )
    group.add_argument(
        "--dpi",
        type=whole_number(MIN_DPI, MAX_DPI),
        default=FigureFormat.dpi,
        metavar="N",
        help=f"resolution of png figures ({MIN_DPI} to {MAX_DPI}, default {FigureFormat.dpi})",
    )


def common_overrides(
    args: argparse.Namespace, epochs_key: str | None = None, model_section: str | None = None
) -> list[Override]:
    """`--set` and the common flags as overrides; the flags come after `--set`, so they win.

    `epochs_key` and `model_section` (by default those `common_parser` was given) name where a demo
    keeps the epochs and the dtype and device.
    """
    epochs_key = epochs_key or getattr(args, "epochs_key", "train.epochs")
    model_section = model_section or getattr(args, "model_section", "model")
    overrides = [Override.parse(text) for text in args.set]
    flags = {
        "seed": ("seed", args.seed),
        "epochs": (epochs_key, args.epochs),
        "threads": ("train.threads", getattr(args, "threads", None)),
        "dtype": (f"{model_section}.dtype", args.dtype),
        "device": (f"{model_section}.device", args.device),
    }
    for flag, (key, value) in flags.items():
        if value is not None:
            overrides.append(flag_override(key, value, f"--{flag}"))
    return overrides


def flag_override(key: str, value: Any, flag: str) -> Override:
    """A flag's value set at `key` (`section.key`) of the config."""
    return Override(tuple(key.split(".")), value, f"{flag} {value}")


def comma_list(text: str) -> list[str]:
    """`"A, B,,C"` -> `["A", "B", "C"]`: a flag's comma-separated names, spaces inside kept."""
    return [name.strip() for name in text.split(",") if name.strip()]


def load_demo_config(
    schema: type[SchemaT], args: argparse.Namespace, extra_overrides: Sequence[Override] = ()
) -> SchemaT:
    from bpdemo.register import import_extensions

    import_extensions(getattr(args, "imports", []))  # what they register may be named in the config
    overrides = common_overrides(args) + list(extra_overrides)
    return load_config(schema, args.config, overrides)


def report_error(line: str) -> None:
    """Print one `error:` line on stderr (under torchrun, on rank 0 only)."""
    if is_rank_zero():
        print(f"error: {line}", file=sys.stderr, flush=True)


@contextmanager
def quiet_libraries(debug: bool) -> Iterator[None]:
    """numpy, torch, matplotlib and scikit-learn warnings and log lines stay off the terminal."""
    if debug:
        yield
        return
    logger = logging.getLogger("matplotlib")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def out_of_memory(error: BaseException) -> bool:
    """Whether `error` says that memory ran out (numpy, torch on the CPU or a GPU)."""
    if isinstance(error, MemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(
        words in text for words in ("can't allocate memory", "out of memory", "not enough memory")
    )


def run_main(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run a demo's `main(argv)` and turn the project's errors into one line and an exit status.

    The output folders the command claimed are let go of at the end, whatever happened; after an
    interruption each first gets what the run finished (`bpdemo.infra.outputs.RunDir.close`). A signal
    that nothing raised (a library swallowed it, or it came as the run was closing) still ends the
    command with its status, never 0.
    """
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    held = outputs.open_runs()  # a caller's own folders are its to close
    try:
        with interruption.handlers(), quiet_libraries(debug):
            try:
                status = _run(main, args, debug, held)
            finally:
                with interruption.shielded():
                    outputs.close_runs(keep=held)
            late = interruption.received()
    except KeyboardInterrupt as error:  # in the instant between the run's end and the shield
        if debug:
            raise
        late = interruption.as_interrupted(error).signum
        status = 0
    if status == 0 and late is not None:
        report_error(
            f"interrupted ({interruption.SIGNALS[late]}) as the command ended; "
            "what it wrote is complete"
        )
        return 128 + late
    return status


def _run(main, args: list[str], debug: bool, held: Sequence[outputs.RunDir]) -> int:
    """`main(args)`, each of the project's errors made one line and an exit status."""
    try:
        return main(args) or 0
    except KeyboardInterrupt as error:
        return _stopped(interruption.as_interrupted(error), debug, held)
    except (UsageError, RunError) as error:
        if debug:
            raise
        report_error(str(error))
        return error.exit_status
    except BrokenPipeError:  # the reader stopped reading (`| head`): end quietly, as a pipe does
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (Python flushes it at exit: nothing to say)
        return 128 + 13  # SIGPIPE
    except OSError as error:  # a disk that is full, a file that vanished mid-run
        if debug:
            raise
        report_error(f"{error.strerror or error}: {error.filename or ''}".rstrip(": "))
        return 1
    except (MemoryError, RuntimeError) as error:
        if lost_process(error) and not debug:  # outside training, where the loop keeps its history
            return _stopped(ProcessLost(interruption.phase()), debug, held)
        if debug or not out_of_memory(error):
            raise
        report_error(
            "not enough memory for this run; choose a smaller model, fewer or smaller images, "
            "or smaller batches"
        )
        return 1


def _stopped(stop: interruption.Interrupted, debug: bool, held: Sequence[outputs.RunDir]) -> int:
    """A run stopped early (`stop`): each folder keeps what it finished, and one line says which."""
    with interruption.shielded():
        runs = outputs.close_runs(stop, keep=held)
    if debug:
        raise  # the exception being handled, with its traceback
    report_error(stop.describe() + kept_line(runs))
    return stop.exit_status
