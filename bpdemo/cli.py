"""The command line shared by every demo: common flags, config loading, and the one error path.

User mistakes (`UsageError`) print one line on stderr and exit 2; faults at run time (`RunError`, a disk
that is full) print one line and exit 1. `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bpdemo.config import SchemaT, load_config
from bpdemo.errors import RunError, UsageError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see python -m {self.prog} --help)\n")


def common_parser(demo: str, description: str, epilog: str | None = None) -> ArgumentParser:
    """The flags every demo accepts; a demo adds its own on the returned parser."""
    parser = ArgumentParser(
        prog=f"demos.{demo}",
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = parser.add_argument_group("common options")
    common.add_argument(
        "--config",
        type=Path,
        default=CONFIG_DIR / f"{demo}.toml",
        help="TOML config file (default: configs/%(prog)s.toml)".replace("%(prog)s", demo),
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
    common.add_argument("--epochs", type=int, help="number of epochs (config key: train.epochs)")
    common.add_argument(
        "--threads", type=int, metavar="N", help="torch CPU threads (config key: train.threads)"
    )
    common.add_argument(
        "--dtype", choices=["float32", "float64"], help="floating-point type (model.dtype)"
    )
    common.add_argument("--device", help="cpu or cuda (model.device)")
    common.add_argument("--quiet", action="store_true", help="no progress output")
    common.add_argument("--debug", action="store_true", help="show a traceback on errors")
    return parser


def common_overrides(
    args: argparse.Namespace, epochs_key: str = "train.epochs", model_section: str = "model"
) -> list[str]:
    """The common flags as `--set` overrides; they are applied after `--set`, so they win.

    `epochs_key` and `model_section` name where a demo keeps the epochs and the dtype and device.
    """
    overrides = list(args.set)
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    if args.epochs is not None:
        overrides.append(f"{epochs_key}={args.epochs}")
    if getattr(args, "threads", None) is not None:
        overrides.append(f"train.threads={args.threads}")
    if args.dtype is not None:
        overrides.append(f'{model_section}.dtype="{args.dtype}"')
    if args.device is not None:
        overrides.append(f'{model_section}.device="{args.device}"')
    return overrides


def set_override(key: str, value: Any) -> str:
    """`key=value` as `--set` takes it, the value written as TOML (JSON strings, lists and booleans
    are TOML too), so a name with spaces or quotes survives."""
    return f"{key}={json.dumps(value, ensure_ascii=False)}"


def comma_list(text: str) -> list[str]:
    """`"A, B,,C"` -> `["A", "B", "C"]`: a flag's comma-separated names, spaces inside kept."""
    return [name.strip() for name in text.split(",") if name.strip()]


def load_demo_config(
    schema: type[SchemaT], args: argparse.Namespace, extra_overrides: Sequence[str] = ()
) -> SchemaT:
    overrides = common_overrides(args) + list(extra_overrides)
    return load_config(schema, args.config, overrides)


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
