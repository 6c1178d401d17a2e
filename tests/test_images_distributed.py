"""`demos.images --distributed` on 2 gloo processes gives the single-process run's test loss.

The same check as `torchrun --standalone --nproc_per_node=2 -m demos.images --distributed`, made
cheap: a small digits run, the processes meeting through a file in tmp_path, talking over the
loopback interface only, and no figures.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from bpdemo.plots import images as image_plots
from demos.images import main

ROOT = Path(__file__).resolve().parent.parent
SMALL_RUN = [
    "--epochs",
    "2",
    "--dtype",
    "float64",
    "--set",
    "data.per_class=20",
    "--set",
    "model.hidden=[16,12]",
    "--set",
    "train.batch_size=25",  # 150 training rows: 6 batches of 25 rows, 13 + 12 on the two ranks
    "--quiet",
]


def no_figures(*args, **kwargs) -> dict:
    """Stands in for `bpdemo.plots.images.figures`: the numbers are what this test compares."""
    return {}


def worker(rank: int, world_size: int, rendezvous: str, out: str) -> None:
    # What torchrun would set; the group itself is joined through a file instead of a TCP store.
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    dist.init_process_group(
        "gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world_size
    )
    image_plots.figures = no_figures
    status = main([*SMALL_RUN, "--distributed", "--out", out])
    if status != 0:
        raise SystemExit(status)


@pytest.fixture
def loopback(monkeypatch):
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")


def test_two_processes_give_the_single_process_test_loss(tmp_path, monkeypatch, loopback):
    monkeypatch.setattr(image_plots, "figures", no_figures)
    assert main([*SMALL_RUN, "--out", str(tmp_path / "single")]) == 0
    single = json.loads((tmp_path / "single" / "metrics.json").read_text())

    # Forked after the single run, the two processes start with everything it imported.
    distributed_out = tmp_path / "distributed"
    mp.start_processes(
        worker,
        args=(2, str(tmp_path / "rendezvous"), str(distributed_out)),
        nprocs=2,
        start_method="fork",
    )
    distributed = json.loads((distributed_out / "metrics.json").read_text())

    assert (
        distributed["distributed"]["world_size"] == 2 and single["distributed"]["world_size"] == 1
    )
    assert distributed["steps"] == single["steps"] == 12
    for model in ("manual", "autograd"):
        for split in ("train", "test"):
            assert distributed[model][split]["loss"] == pytest.approx(
                single[model][split]["loss"], rel=1e-12
            )
    assert distributed["walkthrough"]["probabilities"] == pytest.approx(
        single["walkthrough"]["probabilities"], rel=1e-10, abs=1e-15
    )
    # rank 0 alone wrote the results (and its manifest of them, .bpdemo-run.json)
    assert sorted(p.name for p in distributed_out.iterdir() if p.name[0] != ".") == [
        "config.toml",
        "history.csv",
        "metrics.json",
        "steps.csv",
    ]


def test_distributed_without_torchrun_is_a_usage_error_before_any_output(
    tmp_path, monkeypatch, capsys
):
    from bpdemo.infra.cli import run_main

    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "run"
    assert run_main(main, ["--distributed", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--distributed needs to be started by torchrun" in err
    assert not out.exists()


# -- --processes N: bpdemo starts the processes itself, so a mistake keeps its exit status ----------
def processes_run(argv: list[str], tmp_path) -> tuple[int, str, str]:
    command = [sys.executable, "-m", "demos.images", *argv]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout, done.stderr


def test_processes_gives_the_single_process_test_loss(tmp_path):
    small = [arg for arg in SMALL_RUN if arg != "--quiet"]
    single, distributed = tmp_path / "single", tmp_path / "distributed"
    assert main([*SMALL_RUN, "--out", str(single)]) == 0
    status, _, stderr = processes_run(
        [*small, "--processes", "2", "--quiet", "--out", str(distributed)], tmp_path
    )
    assert status == 0, stderr
    one, two = (json.loads((out / "metrics.json").read_text()) for out in (single, distributed))
    assert two["distributed"]["world_size"] == 2
    assert two["manual"]["test"]["loss"] == pytest.approx(one["manual"]["test"]["loss"], rel=1e-12)


def test_a_mistake_found_by_the_processes_is_one_line_and_exit_2(tmp_path):
    out = tmp_path / "run"
    status, stdout, stderr = processes_run(
        ["--processes", "2", "--root", str(tmp_path / "missing"), "--out", str(out)], tmp_path
    )
    assert status == 2 and stdout == ""
    assert stderr.count("\n") == 1 and "not found; check the path given to --root" in stderr
    assert not out.exists()


def test_a_config_mistake_with_processes_is_refused_before_any_process_starts(tmp_path, capsys):
    from bpdemo.infra.cli import run_main

    argv = ["--processes", "2", "--set", 'model.loss="mse"', "--out", str(tmp_path / "run")]
    assert run_main(main, argv) == 2
    assert "model.loss 'mse' is for numbers" in capsys.readouterr().err


def children_by_rank(pid: int) -> dict[int, int]:
    """The processes `pid` started, by the RANK it gave each (read from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environment = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue  # not a process, or one that has ended
        ranks = [int(item[5:]) for item in environment if item.startswith(b"RANK=")]
        if parent == pid and ranks:
            found[ranks[0]] = int(entry.name)
    return found


def test_a_process_killed_mid_run_ends_the_command_with_one_line_and_keeps_the_history(tmp_path):
    out = tmp_path / "run"
    small = [arg for arg in SMALL_RUN if arg != "--quiet"]
    small[small.index("--epochs") + 1] = "100000"  # still training when the process is killed
    command = [sys.executable, "-m", "demos.images", *small, "--processes", "2", "--out", str(out)]
    launcher = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for line in launcher.stdout:  # rank 0's progress: the first epoch is done
        if "epoch 1/100000" in line:
            break
    os.kill(children_by_rank(launcher.pid)[1], signal.SIGKILL)
    _, stderr = launcher.communicate(timeout=300)

    assert launcher.returncode == 1
    assert (
        stderr.count("\n") == 1 and "(another process of the run ended, during training)" in stderr
    )
    assert f"kept config.toml, metrics.json, history.csv and steps.csv in {out}" in stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["process_lost"] is True
    assert (
        metrics["epochs_completed"] >= 1
        and len(metrics["history"]) == metrics["epochs_completed"] + 1
    )
    history = (out / "history.csv").read_text().splitlines()
    assert len(history) == 1 + len(metrics["history"])  # a header, then every epoch finished
    assert not (out / ".bpdemo-lock").exists()
