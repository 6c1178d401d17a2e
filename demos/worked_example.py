"""Worked examples: every number of a small network's steps, by hand-written backprop and by autograd.

    python -m demos.worked_example --config configs/worked_321.toml [--steps N] [--out DIR]

Prints the walk-through (every z and a, the loss, each gradient by the chain rule, each update), the
audit of the source's claims, and writes trace.json, metrics.json, steps.csv, config.toml and the
network picture (network.png; network_standardised.png too when the config asks for standardised
inputs). The library side is `bpdemo.worked`; the picture is `bpdemo.plots.network`.
"""

from __future__ import annotations

import sys

from bpdemo.cli import CONFIG_DIR, common_parser, run_main
from bpdemo.config import apply_threads
from bpdemo.outputs import RunDir
from bpdemo.worked import (
    WorkedExample,
    command_line_overrides,
    load_worked_config,
    raise_on_failure,
    run_worked_example,
    write_outputs,
)

DEMO = "worked_example"
DEFAULT_CONFIG = CONFIG_DIR / "worked_321.toml"
EPILOG = """\
examples:
  python -m demos.worked_example --config configs/worked_321.toml     seed 000's 3-2-1 network, audited
  python -m demos.worked_example --config configs/worked_house.toml   seed 003's house, raw vs standardised
  python -m demos.worked_example --config configs/worked_image.toml   seed 003's dog image, softmax
  python -m demos.worked_example --config configs/worked_321.toml --steps 20 --set train.lr=0.02

Every step uses all the inputs (full batch), so --epochs N is the same as --steps N. --seed is
accepted but changes nothing: a worked example's weights are explicit.
"""


def main(argv: list[str] | None = None) -> int:
    parser = common_parser(
        DEMO,
        "Reproduce a worked backpropagation example step by step, and audit a source's numbers.",
        epilog=EPILOG,
    )
    for action in parser._actions:  # the common default would be configs/worked_example.toml
        if action.dest == "config":
            action.default = DEFAULT_CONFIG
            action.help = "worked-example TOML file (default: configs/worked_321.toml)"
    parser.add_argument(
        "--steps", type=int, metavar="N", help="number of full-batch steps (config: train.steps)"
    )
    parser.add_argument(
        "--picture-step",
        type=int,
        metavar="N",
        help="the step the network picture shows (config: picture.step; default 1)",
    )
    args = parser.parse_args(argv)

    # Everything the user could get wrong is checked before the output folder is made.
    config = load_worked_config(args.config, command_line_overrides(args))
    apply_threads(config.train.threads)
    example = WorkedExample.from_config(config, source=str(args.config))
    run_dir = RunDir.prepare(args.out, DEMO, args.force)

    result = run_worked_example(example)
    print(result.text())
    write_outputs(run_dir, config, result)
    raise_on_failure(result, run_dir)
    if not args.quiet:
        print(
            f"\nwrote trace.json, metrics.json, steps.csv, config.toml and network.png to {run_dir.path}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
