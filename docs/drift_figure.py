"""The figure of docs/agreement.md: two runs that drift apart, and a check that holds at every step.

The playground's spiral with its default network (2-8-8-1, tanh, Adam at 0.03, float64) trained for
5,000 steps exactly as the explorer trains it, then `bpdemo.plots.training.gradient_difference` of
its steps: the gradient check, both gradients at the hand-written weights, and the drift of the two
runs, each trained on its own. Prints the run's two agreement lines, as the training demos do.

    python -m docs.drift_figure --out FOLDER [--force]      (`make docs` runs it)
"""

from __future__ import annotations

import sys
from argparse import ArgumentParser

from bpdemo.explore.playground import Playground
from bpdemo.explore.schemas import PlaygroundSettings
from bpdemo.infra.cli import run_main
from bpdemo.infra.outputs import RunDir
from bpdemo.plots.training import gradient_difference
from bpdemo.report import agreement_line
from bpdemo.train import History, run_epochs, torch_threads

STEPS = 5000
SETTINGS = PlaygroundSettings(dataset="spiral", activation="tanh", optimizer="adam", lr=0.03)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m docs.drift_figure", description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="the output folder (default: a new folder under runs/)")
    parser.add_argument("--force", action="store_true", help="write into a folder that has files")
    args = parser.parse_args(argv)
    run = RunDir.prepare(args.out, "drift_figure", args.force)
    playground = Playground(SETTINGS)
    with torch_threads(1):  # as the explorer trains it
        loop = run_epochs(
            playground.pair.step,
            playground.x,
            playground.y,
            epochs=STEPS // SETTINGS.steps_per_epoch(),
            batch_size=SETTINGS.batch_size,
            generator=playground.generator,
        )
    pair = playground.pair
    print(
        f"the playground's spiral, sizes {'-'.join(map(str, pair.spec.sizes))}, "
        f"{SETTINGS.activation}, {SETTINGS.optimizer} {SETTINGS.lr:g}, {SETTINGS.dtype}:"
    )
    print(agreement_line(pair))
    history = History(steps=loop.records)
    agreement = pair.agreement
    run.save_figures(
        {"drift.png": lambda: gradient_difference(history, agreement.tolerance, agreement.dtype)}
    )
    run.close()
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
