"""The command line shared by every demo: common flags, config loading, and the one error path.

User mistakes (`UsageError`) print one line on stderr and exit 2; faults at run time (`RunError`, a disk
that is full) print one line and exit 1. `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from bpdemo.config import Override, SchemaT, load_config
from bpdemo.errors import RunError, UsageError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see python -m {self.prog} --help)\n")


def common_parser(
    demo: str,
    description: str,
    epilog: str | None = None,
    *,
    config: Path | None = None,
    epochs_key: str = "train.epochs",
    model_section: str = "model",
) -> ArgumentParser:
    """The flags every demo accepts; a demo adds its own on the returned parser.

    config: the default `--config` (configs/<demo>.toml if None). `epochs_key` and `model_section`
    name where the demo's config keeps the epochs and the dtype and device: the flags set them there.
    """
    config = CONFIG_DIR / f"{demo}.toml" if config is None else config
    parser = ArgumentParser(
        prog=f"demos.{demo}",
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(epochs_key=epochs_key, model_section=model_section)
    common = parser.add_argument_group("common options")
    common.add_argument(
        "--config",
        type=Path,
        default=config,
        help=f"TOML config file (default: {_shown(config)})",
    )
    common.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value, e.g. --set optimizer.lr=0.05 (repeatable)",
    )
    common.add_argument(
        "--out", metavar="DIR", help=f"output folder (default: runs/{demo}/<timestamp>)"
    )
    common.add_argument("--force", action="store_true", help="write into a non-empty --out folder")
    common.add_argument("--seed", type=int, help="random seed (config key: seed)")
    common.add_argument("--epochs", type=int, help=f"number of epochs (config key: {epochs_key})")
    common.add_argument(
        "--threads", type=int, metavar="N", help="torch CPU threads (config key: train.threads)"
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


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the project folder when inside it."""
    try:
        return str(path.relative_to(CONFIG_DIR.parent))
    except ValueError:
        return str(path)


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
    from bpdemo.extend import import_extensions

    import_extensions(getattr(args, "imports", []))  # what they register may be named in the config
    overrides = common_overrides(args) + list(extra_overrides)
    return load_config(schema, args.config, overrides)


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run torch on `count` CPU threads inside the block (None: torch's default), then restore.

    Small networks run faster on one: their matrices are too small to share out, and on a busy
    machine the threads wait for each other.
    """
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def printer(quiet: bool) -> Callable[..., None]:
    """`say(text)`: print a line now (flushed, so it interleaves with progress), or nothing if quiet."""

    def say(text: str = "") -> None:
        if not quiet:
            print(text, flush=True)

    return say


def run_main(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run a demo's `main(argv)` and turn the project's errors into one line and an exit status."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        return main(args) or 0
    except (UsageError, RunError) as error:
        if debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return error.exit_status
    except OSError as error:  # a disk that is full, a file that vanished mid-run
        if debug:
            raise
        print(
            f"error: {error.strerror or error}: {error.filename or ''}".rstrip(": "),
            file=sys.stderr,
        )
        return 1
