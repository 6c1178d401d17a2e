"""Ctrl-C (SIGINT) and SIGTERM sent from outside, at several points of every command, as a user sends
them; and two runs started together into one folder.

Each command runs as its own process on small data (`python -m ...`), all of them at once; a signal
goes to each when its point is reached: while Python is still starting, a moment after a given file
appeared in the output folder, or at once when it appeared. Every one must end with a non-zero status
(130 for SIGINT, 143 for SIGTERM), exactly one line on stderr and no traceback; every file it leaves
is complete and parses, and its metrics.json (the benchmark's bench.json) says it was interrupted.
"""

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import complete_files

ROOT = Path(__file__).resolve().parent.parent
SMALL_HOUSES = ["demos.house_prices", "--set", "data.houses=300", "--quiet"]
SMALL_IMAGES = [
    "demos.images",
    "--set",
    "data.per_class=20",
    "--set",
    "model.hidden=[16]",
    "--quiet",
]
SMALL_GRID = [
    "demos.gradients",
    "--set",
    "data.rows=64",
    "--set",
    'grid.inits=["he"]',
    "--set",
    "grid.depths=[2,3]",
    "--set",
    "report.focus_depth=2",
    "--epochs",
    "1",
    "--quiet",
]
WORKED = ["demos.worked_example", "--config", "configs/worked_321.toml", "--quiet"]


@dataclass
class Case:
    """A command, the signal, and when it is sent: `delay` seconds after `after` (a file in the
    output folder) appeared, or after the start if `after` is None."""

    name: str
    argv: list[str]
    signum: int
    after: str | None
    delay: float = 0.0
    summary: str = "metrics.json"


CASES = [
    Case("houses while starting", [*SMALL_HOUSES, "--epochs", "100000"], signal.SIGINT, None, 0.8),
    Case(
        "houses training", [*SMALL_HOUSES, "--epochs", "100000"], signal.SIGTERM, "config.toml", 0.3
    ),
    Case("houses figures", [*SMALL_HOUSES, "--epochs", "3"], signal.SIGINT, "loss.png"),
    Case("images training", [*SMALL_IMAGES, "--epochs", "5000"], signal.SIGINT, "config.toml", 0.5),
    Case("images after training", [*SMALL_IMAGES, "--epochs", "2"], signal.SIGTERM, "history.csv"),
    Case("gradients study", ["demos.gradients", "--quiet"], signal.SIGINT, "config.toml", 0.5),
    Case("gradients figures", SMALL_GRID, signal.SIGTERM, "settings.csv"),
    Case(
        "bench measuring",
        ["bpdemo.bench", "--quick", "--quiet"],
        signal.SIGINT,
        ".bpdemo-lock",
        1.0,
        summary="bench.json",
    ),
    Case(
        "bench later",
        ["bpdemo.bench", "--quick", "--quiet"],
        signal.SIGTERM,
        ".bpdemo-lock",
        4.0,
        summary="bench.json",
    ),
    Case("worked while starting", WORKED, signal.SIGTERM, None, 0.8),
    Case(
        "worked stepping",
        [*WORKED, "--steps", "20000"],
        signal.SIGINT,
        ".bpdemo-lock",
        1.0,
    ),
]
TIMEOUT = 90  # seconds for one command, however busy the machine


def catches(pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler of its own for `signum` (Linux's /proc says so)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) >> (signum - 1) & 1)


def interrupt(case: Case, out: Path) -> tuple[int, str, str, bool]:
    """Run the case's command into `out`, send its signal at its point; (status, stdout, stderr,
    whether the signal was sent before the command ended)."""
    command = [sys.executable, "-m", case.argv[0], *case.argv[1:], "--out", str(out)]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    start = time.monotonic()
    # "while starting" means once the command's first module has taken over the signal: before that
    # the interpreter itself is starting, and a signal has Python's own effect, which bpdemo cannot
    # change (a busy machine can take longer than the case's delay to get there).
    while case.after is None and not catches(process.pid, case.signum):
        if process.poll() is not None or time.monotonic() - start > TIMEOUT:
            break
        time.sleep(0.01)
    while case.after is not None and not (out / case.after).exists():
        if process.poll() is not None or time.monotonic() - start > TIMEOUT:
            break
        time.sleep(0.01)
    time.sleep(case.delay)
    sent = process.poll() is None
    if sent:
        process.send_signal(case.signum)
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:  # it went on after its signal: stop it, the test reports it
        process.kill()
        stdout, stderr = process.communicate()
    return process.returncode, stdout, stderr, sent


def interrupted_mark(summary: dict) -> bool:
    """metrics.json says the run was interrupted (the worked example keeps it in its status)."""
    return (
        summary.get("interrupted") is True or summary.get("status", {}).get("interrupted") is True
    )


def test_every_command_interrupted_at_several_points_keeps_what_it_finished(tmp_path):
    with ThreadPoolExecutor(max_workers=len(CASES)) as pool:
        runs = {
            case.name: pool.submit(interrupt, case, tmp_path / case.name.replace(" ", "-"))
            for case in CASES
        }
        results = {name: future.result() for name, future in runs.items()}

    for case in CASES:
        status, stdout, stderr, sent = results[case.name]
        out = tmp_path / case.name.replace(" ", "-")
        where = f"{case.name}: status {status}, stderr {stderr!r}"
        assert sent, f"{case.name} ended before its signal: {where}"
        assert status != -signal.SIGKILL, f"{case.name} went on after its signal: {where}"
        assert status != 0, where
        assert status == 128 + case.signum, where
        assert stderr.count("\n") == 1 and stderr.startswith("error: interrupted"), where
        assert "Traceback" not in stderr and stdout == "", where
        if not out.exists():  # interrupted before it wrote anything: it left no folder behind
            assert "nothing was written" in stderr, where
            continue
        names = complete_files(out)
        if case.after is not None:
            assert case.summary in names, where
        if case.summary in names:
            assert interrupted_mark(json.loads((out / case.summary).read_text())), where
        assert ".bpdemo-lock" not in names, where  # the folder was let go of
    assert os.path.exists(tmp_path / "houses-figures" / "loss.png")


def test_two_runs_started_together_into_one_folder_one_is_refused_and_nothing_mixes(tmp_path):
    out = tmp_path / "shared"
    commands = [
        [*WORKED, "--steps", "2000"],
        ["demos.worked_example", "--config", "configs/worked_image.toml", "--quiet"],
    ]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", *argv, "--out", str(out)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in commands
    ]
    finished = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
        finished.append((process.returncode, stdout, stderr))
    statuses = sorted(status for status, _, _ in finished)
    assert statuses == [0, 2], finished
    refused = next(stderr for status, _, stderr in finished if status == 2)
    assert refused.count("\n") == 1 and f"output folder {out} " in refused, refused
    assert "is in use by another run" in refused or "exists and is not empty" in refused
    winner = commands[next(i for i, (status, _, _) in enumerate(finished) if status == 0)]
    names = complete_files(out)
    manifest = json.loads((out / ".bpdemo-run.json").read_text())
    assert sorted(manifest["files"]) == [n for n in names if not n.startswith(".")]
    config = (out / "config.toml").read_text()
    assert ("3-2-1" in config) == ("configs/worked_321.toml" in winner), config[:200]
