"""The benchmark: speed and memory of the hand-written model against autograd and scikit-learn.

    python -m bpdemo.bench [--out DIR] [--quick] [--threads N] [--ames CSV]

Measures, prints the table, writes `bench.json` and `scaling.png` into the output folder (default
`runs/bench/<timestamp>/`).

The Ames CSV is read and checked, once the output folder is claimed, before anything is measured or
written. An interrupted benchmark keeps what it measured in bench.json, marked `"interrupted": true`.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

from bpdemo import bench
from bpdemo.bench import FULL, QUICK, end_to_end, print_progress, summary
from bpdemo.infra.cli import ArgumentParser, output_arguments, run_main, whole_number
from bpdemo.infra.command import run_command
from bpdemo.infra.errors import UsageError
from bpdemo.infra.limits import MAX_THREADS
from bpdemo.train import torch_threads

DEFAULT_THREADS = 1


def parser() -> ArgumentParser:
    parser = ArgumentParser(
        "bpdemo.bench",
        description="Speed and memory of the hand-written model against autograd and scikit-learn.",
    )
    output_arguments(parser, "bench")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: fewer repeats and points"
    )
    parser.add_argument(
        "--threads",
        type=whole_number(1, MAX_THREADS),
        default=DEFAULT_THREADS,
        metavar="N",
        help=(
            f"torch threads, 1 to {MAX_THREADS} (default 1: on a machine shared with other work, a "
            "second thread that the system pauses stalls every parallel operation; try the core "
            "count on a quiet machine)"
        ),
    )
    parser.add_argument(
        "--ames",
        type=Path,
        metavar="CSV",
        help=(
            f"the Ames sales CSV for the regression race (default: ${end_to_end.AMES_ENV}; "
            "without either, the race is skipped)"
        ),
    )
    parser.add_argument(
        "--quiet", action="store_true", help="print nothing (the results are in bench.json)"
    )
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    ames = args.ames or end_to_end.ames_csv_from_environment()
    if ames is not None and not ames.is_file():
        given = "--ames" if args.ames is not None else end_to_end.AMES_ENV
        raise UsageError(f"{given} {ames}: no such file")
    with torch_threads(args.threads), run_command("bench", args, summary="bench.json") as run:
        houses = None if ames is None else end_to_end.ames_problem(ames)  # a bad file: refused now
        results = bench.run(
            QUICK if args.quick else FULL,
            ames_csv=houses,
            progress=None if args.quiet else print_progress,
            results=run.folder.progress,
        )
        from bpdemo.plots.bench import scaling_figure

        run.folder.write_json("bench.json", results)
        run.folder.save_figures(
            {"scaling.png": partial(scaling_figure, results["scaling"], results["threads"])}
        )
        if not args.quiet:  # the table reads every measurement: only made to be printed
            run.say(summary.table(results))
        run.finish(after=f" ({results['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
