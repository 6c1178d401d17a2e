"""`bpdemo <command> [options]`: every command of bpdemo under one name, as an installed tool has it.

    bpdemo house-prices --epochs 5          is   python -m demos.house_prices --epochs 5
    bpdemo worked-example --config worked_xor
    bpdemo --help | --version

Each command is its module's `main` (`COMMANDS`), run as `python -m` runs it: the same flags, the
same help (its usage line names the command as typed here), the same errors and exit statuses.
`python -m bpdemo <command>` is the same as `bpdemo <command>`.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys
import textwrap
from importlib import metadata

from bpdemo.infra.cli import ArgumentParser, run_main, typed_as
from bpdemo.infra.shipped import shipped_configs

PROG = "bpdemo"
# Each command, and the module whose `main(argv)` it runs (also `python -m MODULE`).
COMMANDS = {
    "house-prices": "demos.house_prices",
    "images": "demos.images",
    "worked-example": "demos.worked_example",
    "gradients": "demos.gradients",
    "explore": "demos.explore",
    "bench": "bpdemo.bench.__main__",
}


def summary(module: str) -> str:
    """The first line of `module`'s docstring, read without importing it (a command's imports take
    seconds; `bpdemo --help` should not)."""
    spec = importlib.util.find_spec(module)
    with open(spec.origin, encoding="utf-8") as file:
        docstring = ast.get_docstring(ast.parse(file.read())) or ""
    return docstring.strip().splitlines()[0] if docstring.strip() else ""


def version() -> str:
    """bpdemo's version, as installed (pyproject.toml gives it)."""
    try:
        return metadata.version("bpdemo")
    except metadata.PackageNotFoundError:  # a checkout run in place, never installed
        return "unknown (not installed)"


def commands_text() -> str:
    lines = ["commands:"]
    for name, module in COMMANDS.items():
        text = textwrap.fill(
            f"{summary(module)} (python -m {module.removesuffix('.__main__')})",
            width=100,
            initial_indent=f"  {name:<16}",
            subsequent_indent=" " * 18,
        )
        lines.append(text)
    shipped = textwrap.fill(
        ", ".join(shipped_configs()), width=100, initial_indent="  ", subsequent_indent="  "
    )
    return "\n".join(
        [
            *lines,
            "",
            "shipped configs (--config NAME uses one; --write-config FILE copies it, to edit):",
            shipped,
            "",
            f"{PROG} COMMAND --help shows a command's flags.",
        ]
    )


def parser() -> ArgumentParser:
    parser = ArgumentParser(
        "bpdemo",
        prog=PROG,
        description="Backpropagation made visible and checkable: a hand-written network beside\n"
        "its torch.autograd twin, every number compared.",
        epilog=commands_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help="see below")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the command's options")
    parser.add_argument("--version", action="version", version=f"{PROG} {version()}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `bpdemo COMMAND [options]` (argv: the words after `bpdemo`); returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        name, options = argv[0], argv[1:]
    elif not argv:
        parser().error(f"name a command: {', '.join(COMMANDS)}")
    else:  # --help, --version and a mistake end here
        args = parser().parse_args(argv)
        name, options = args.command, args.options
    command = importlib.import_module(COMMANDS[name])
    with typed_as(f"{PROG} {name}"):
        return run_main(command.main, options)


if __name__ == "__main__":
    sys.exit(main())
