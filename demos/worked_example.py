"""Worked examples: every number of a small network's steps, by hand-written backprop and by autograd.

    python -m demos.worked_example [--config worked_321] [--steps N] [--out DIR]

Prints the walk-through (every z and a, the loss, each gradient by the chain rule, each update), the
audit of the source's claims, and writes trace.json, metrics.json, steps.csv, config.toml and the
network pictures of step `[picture] step`: network.png (values and gradients), network_forward.png,
network_backward.png and network_update.png (and network_standardised*.png when the config asks for
standardised inputs), and the walk-through as a handout: walkthrough.txt, walkthrough.md (LaTeX
maths, the pictures linked) and walkthrough.tex (a LaTeX article for pdflatex). The library side is `bpdemo.worked` (also usable from Python: `run`); the
picture is `bpdemo.plots.network`.
"""

from __future__ import annotations

import argparse
import sys

from bpdemo.infra.cli import common_overrides, common_parser, flag_override, run_main
from bpdemo.infra.command import run_command
from bpdemo.infra.config import Override
from bpdemo.infra.errors import ConfigError
from bpdemo.register import import_extensions
from bpdemo.train import torch_threads
from bpdemo.worked import (
    WorkedExample,
    load_worked_config,
    raise_on_failure,
    run_worked_example,
    write_outputs,
)

DEMO = "worked_example"
EPILOG = """\
examples:
  python -m demos.worked_example                           the 3-2-1 example (worked_321), audited
  python -m demos.worked_example --config worked_house     the house example, raw vs standardised
  python -m demos.worked_example --config worked_image     the dog image example, softmax
  python -m demos.worked_example --config worked_xor       XOR, a textbook's rounded figures audited
  python -m demos.worked_example --config worked_textbook  no biases, a book's names and signs, and
                                                           the slip behind each wrong claim
  python -m demos.worked_example --steps 20 --set train.lr=0.02
  python -m demos.worked_example --config worked_template --write-config mine.toml
                                                           a commented template, to edit into your own

Every step uses all the inputs (full batch), so --epochs N is the same as --steps N. --seed is
refused: a worked example's weights are given in its config, so nothing is drawn at random.
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = common_parser(
        DEMO,
        "Reproduce a worked backpropagation example step by step, and audit a source's numbers.",
        epilog=EPILOG,
        config="worked_321",
        epochs_key="train.steps",  # a step uses all the inputs: a step is an epoch
        model_section="network",
    )
    parser.add_argument(
        "--steps", type=int, metavar="N", help="number of full-batch steps (config: train.steps)"
    )
    parser.add_argument(
        "--picture-step",
        type=int,
        metavar="N",
        help="the step the network pictures show (config: picture.step; default 1)",
    )
    return parser.parse_args(argv)


def command_line_overrides(args: argparse.Namespace) -> list[Override]:
    """`--set` and the flags as config overrides (the flags come after `--set`, so they win).

    `--epochs` is another name for `--steps`: every step uses all the inputs, so a step is an epoch.
    `--seed` is refused: a worked example's weights are given, so there is nothing to draw at random.
    """
    if args.seed is not None:
        raise ConfigError(
            f"--seed {args.seed}: a worked example starts from the weights its config gives "
            "([init]), so nothing is drawn at random; leave --seed out"
        )
    if args.steps is not None and args.epochs is not None and args.steps != args.epochs:
        raise ConfigError(
            f"--steps {args.steps} and --epochs {args.epochs} disagree; here one step uses all the "
            "inputs, so they are the same thing: give one of them"
        )
    overrides = common_overrides(args)
    if args.steps is not None and args.epochs is None:
        overrides.append(flag_override("train.steps", args.steps, "--steps"))
    if args.picture_step is not None:
        overrides.append(flag_override("picture.step", args.picture_step, "--picture-step"))
    return overrides


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import_extensions(args.imports)  # what they register may be named in the config
    config = load_worked_config(args.config, command_line_overrides(args))
    example = WorkedExample.from_config(config, source=str(args.config))
    with torch_threads(config.train.threads), run_command(DEMO, args, config) as run:
        run.phase("training")
        result = run_worked_example(example)
        text = result.text()
        run.say(text)
        run.write_config()
        write_outputs(run.folder, config, result, text=text)
        raise_on_failure(result, run.folder)
        run.finish()
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
