"""One command's run, from the claim of its output folder to the line that says what it wrote.

Every command that writes a run folder goes through `run_command`, once its config is checked:

    with run_command("house_prices", args, config) as run:
        houses = load_houses(...)   # phase "data": a mistake found here leaves the folder as it was
        run.write_config()          # the data is read: config.toml is the run's first file
        ...                         # the work, in phases (`run.phase`), printed with `run.say`
        run.finish()                # let go of the folder: "wrote config.toml, ... to runs/..."

The folder (`--out`, `--force`, `--format`, `--dpi`) is claimed as the block begins, before any data
is read: by rank 0 of a data-parallel run, the other ranks learning whether it could (and stopping
with it if not). An error or an interruption inside the block is the command line's to end
(`bpdemo.infra.cli.run_main`): it keeps what the run finished and says which files in one line. Both
that line and `finish`'s name the files the run wrote (`RunDir.written`), in the order a reader
opens them (`in_reading_order`).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bpdemo.infra import interruption
from bpdemo.infra.config import Section, dump_config
from bpdemo.infra.errors import UsageError
from bpdemo.infra.outputs import METRICS, FigureFormat, RunDir
from bpdemo.infra.processes import from_rank_zero, stopped_with_rank_zero
from bpdemo.infra.ranks import is_rank_zero

CONFIG_FILE = "config.toml"
# The order a reader opens a run's files in: the config, the summaries, the tables, then the figures.
_READING_ORDER = {".toml": 0, ".json": 1, ".csv": 2}


@dataclass
class Run:
    """One command's run: its name, its checked config, its output folder, and how it speaks.

    Attributes:
        config: the config the run uses (None for a command without one, the benchmark).
        folder: the output folder the run claimed; None on the ranks of a data-parallel run other
            than 0, which neither print nor write.
        quiet: `--quiet`: `say` prints nothing.
    """

    name: str
    config: Section | None
    folder: RunDir | None
    quiet: bool = False

    def say(self, text: str = "") -> None:
        """Print a line now (flushed, so that it interleaves with progress), on rank 0, unless quiet."""
        if not self.quiet and is_rank_zero():
            print(text, flush=True)

    def phase(self, name: str) -> None:
        """Mark what the run does from now on: an interruption says, and metrics.json keeps, where."""
        interruption.set_phase(name)

    def write_config(self) -> None:
        """config.toml, the config with every default filled in: written once the data is read, so
        that a mistake found in the data leaves the folder as it was."""
        if self.folder is not None and self.config is not None:
            self.folder.write_text(CONFIG_FILE, dump_config(self.config))

    def finish(self, before: str = "", after: str = "") -> None:
        """Let go of the folder, then say, after an empty line, what the run wrote into it:
        `{before}wrote a, b and c to FOLDER{after}`."""
        if self.folder is None:
            return
        self.folder.close()
        self.say(f"\n{before}{wrote_line(self.folder)}{after}")


@contextmanager
def run_command(
    name: str,
    args: argparse.Namespace,
    config: Section | None = None,
    *,
    summary: str = METRICS,
) -> Iterator[Run]:
    """The run of the command `name` with its checked `config`, in the folder `args` names.

    args: the command line, with `out`, `force`, `format`, `dpi` (`cli.output_arguments`) and
    `quiet`. summary: the file an interrupted run writes what it finished into.
    The folder is let go of when the block ends; an error inside leaves that to `cli.run_main`.
    """
    run = Run(name, config, _claim(name, args, summary), quiet=args.quiet)
    interruption.set_phase("data")
    yield run  # an error raised here passes on, the folder still held: run_main keeps what was done
    if run.folder is not None:
        run.folder.close()


def _claim(name: str, args: argparse.Namespace, summary: str = METRICS) -> RunDir | None:
    """The output folder `args` names, claimed (`RunDir.prepare`) by rank 0; None on the other ranks.

    If rank 0 cannot claim it, it raises the `UsageError` that says why, and the other ranks stop
    quietly with the same exit status.
    """
    folder, failure = None, None
    if is_rank_zero():
        figures = FigureFormat(args.format, args.dpi)
        try:
            folder = RunDir.prepare(args.out, name, args.force, summary=summary, figures=figures)
        except UsageError as error:
            failure = error
    status = from_rank_zero(None if failure is None else failure.exit_status)
    if failure is not None:
        raise failure
    if status is not None:
        raise stopped_with_rank_zero(status)
    return folder


# -- the files a run wrote, as a line says them -------------------------------------------------------
def in_reading_order(names: Sequence[str]) -> list[str]:
    """`names` as a reader opens them: config.toml, the JSON summaries, the CSV tables, then the
    figures, each kind in the order the run wrote it."""
    return sorted(
        names, key=lambda name: _READING_ORDER.get(Path(name).suffix, len(_READING_ORDER))
    )


def listed(names: Sequence[str]) -> str:
    """`a, b and c`."""
    if len(names) < 2:
        return "".join(names) or "nothing"
    return f"{', '.join(names[:-1])} and {names[-1]}"


def wrote_line(folder: RunDir) -> str:
    """`wrote config.toml, metrics.json and loss.png to runs/x`: what a finished run wrote, and where."""
    return f"wrote {listed(in_reading_order(folder.written))} to {folder.path}"


def kept_line(folders: Sequence[RunDir]) -> str:
    """`; kept config.toml and metrics.json in runs/x`, or `; nothing was written`: what a run that
    stopped early left in its folders."""
    names = list(dict.fromkeys(name for folder in folders for name in folder.written))
    if not names:
        return "; nothing was written"
    return f"; kept {listed(in_reading_order(names))} in {folders[0].path}"
