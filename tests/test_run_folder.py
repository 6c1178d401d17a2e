"""The run folder against a hostile or careless folder, for every command: a lock file that is a link
or not a lock, --force in a folder of the user's own files, a manifest of any shape, an interruption
at any moment of a write, and a refused run that leaves nothing behind.

Each command runs in-process through `run_main`, as `python -m ...` runs it, on small settings; the
benchmark's measurements are replaced by a tiny real one where it must write (the folder, not the
timing, is under test here).
"""

import hashlib
import json
import os
import signal
import tempfile
from pathlib import Path

import pytest

import bpdemo.bench.__main__ as bench_cli
from bpdemo import bench
from bpdemo.bench import steps
from bpdemo.infra import interruption, outputs
from bpdemo.infra.cli import run_main
from bpdemo.infra.errors import UsageError
from bpdemo.infra.outputs import LOCK, MANIFEST, RunDir, atomic_write
from demos.gradients import main as gradients_main
from demos.house_prices import main as houses_main
from demos.images import main as images_main
from demos.worked_example import main as worked_main

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {  # each command on small settings: (main, arguments, its summary file)
    "house_prices": (
        houses_main,
        ["--set", "data.houses=100", "--epochs", "1", "--quiet"],
        "metrics.json",
    ),
    "images": (
        images_main,
        ["--set", "data.per_class=10", "--set", "model.hidden=[8]", "--epochs", "1", "--quiet"],
        "metrics.json",
    ),
    "gradients": (
        gradients_main,
        [
            *("--set", "data.rows=64", "--set", 'grid.activations=["tanh"]'),
            *("--set", 'grid.inits=["he"]', "--set", "grid.depths=[2]"),
            *("--set", "report.focus_depth=2", "--set", "report.figures=false"),
            *("--epochs", "1", "--quiet"),
        ],
        "metrics.json",
    ),
    "worked_example": (
        worked_main,
        ["--config", str(ROOT / "configs" / "worked_321.toml"), "--quiet"],
        "metrics.json",
    ),
    "bench": (bench_cli.main, ["--quick", "--quiet"], "bench.json"),
}


class Hung(BaseException):
    """A command still running long after it should have ended (nothing in it catches this)."""


@pytest.fixture(autouse=True)
def never_hangs():
    """A command that hangs fails its test instead of holding up the suite: a guard, not a timing."""

    def expired(signum, frame):
        raise Hung("the command was still running after 120 s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def tiny_bench(monkeypatch):
    """The benchmark measures one tiny scaling case instead of everything (what it writes is real)."""

    def measure(settings, ames_csv=None, progress=None, results=None):
        results = {} if results is None else results
        scaling = steps.scaling([1, 2], [4, 8], 1, 0.0, batch_network=(8, 4, 2), width_batch=4)
        results.update(scaling=scaling, threads=1, seconds=0.0)
        return results

    monkeypatch.setattr(bench, "run", measure)


def run(command: str, out: Path | None, capsys, *extra: str) -> tuple[int, str, str]:
    """The command as `python -m` runs it, into `out`: (exit status, stdout, stderr)."""
    main, argv, _ = COMMANDS[command]
    where = [] if out is None else ["--out", str(out)]
    status = run_main(main, [*argv, *extra, *where])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_line(stderr: str) -> str:
    assert stderr.count("\n") == 1 and stderr.startswith("error: "), stderr
    assert "Traceback" not in stderr
    return stderr


def snapshot(folder: Path) -> dict[str, object]:
    """Every entry of `folder`: a file's bytes, a link's target, or what else it is."""

    def entry(path: Path) -> object:
        if path.is_symlink():
            return os.readlink(path)
        if path.is_dir():
            return "folder"
        return path.read_bytes() if path.is_file() else "special file"

    return {path.name: entry(path) for path in folder.iterdir()}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- the lock file ------------------------------------------------------------------------------
def link_to(kind: str, tmp_path: Path) -> tuple[str, Path]:
    """(what the lock links to, the file that would be harmed if it were followed)."""
    victim = tmp_path / "victim.txt"
    if kind == "absolute":
        victim.write_text("DATA\n")
        return str(victim), victim
    if kind == "relative":
        victim.write_text("DATA\n")
        return "../victim.txt", victim
    return str(tmp_path / "absent.txt"), tmp_path / "absent.txt"  # dangling


@pytest.mark.parametrize("kind", ["absolute", "relative", "dangling"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_lock_that_is_a_link_is_never_followed_and_the_run_is_refused(
    tmp_path, capsys, command, kind
):
    out = tmp_path / "out"
    out.mkdir()
    target, victim = link_to(kind, tmp_path)
    (out / LOCK).symlink_to(target)
    before = victim.read_bytes() if victim.exists() else None

    status, stdout, stderr = run(command, out, capsys)

    assert status == 2 and stdout == ""
    assert f"lock file {LOCK} is a symbolic link" in one_line(stderr)
    assert (victim.read_bytes() if victim.exists() else None) == before
    assert snapshot(out) == {LOCK: target}


@pytest.mark.parametrize("kind", ["hard link", "folder", "several lines", "named pipe"])
def test_a_lock_that_is_not_the_one_line_file_bpdemo_writes_is_refused_untouched(tmp_path, kind):
    out = tmp_path / "out"
    out.mkdir()
    lock = out / LOCK
    victim = tmp_path / "victim.txt"
    victim.write_text("DATA\n")
    if kind == "hard link":
        os.link(victim, lock)
    elif kind == "folder":
        lock.mkdir()
    elif kind == "several lines":
        lock.write_text("my notes\nabout this folder\n")
    else:
        os.mkfifo(lock)
    before = snapshot(out)
    with pytest.raises(UsageError, match=f"lock file {LOCK} is"):
        RunDir.prepare(out, "demo", force=True)
    assert snapshot(out) == before
    assert victim.read_text() == "DATA\n"


def test_the_lock_of_a_run_killed_before_it_wrote_its_line_is_taken_over(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK).write_bytes(b"")  # created, then killed before it named its run
    RunDir.prepare(out, "demo", force=True).close()
    assert not (out / LOCK).exists()


# -- --force and the user's own files -----------------------------------------------------------
@pytest.mark.parametrize("command", list(COMMANDS))
def test_force_never_writes_over_the_users_files_in_a_folder_without_a_manifest(
    tmp_path, capsys, command
):
    out = tmp_path / "out"
    out.mkdir()
    summary = COMMANDS[command][2]
    for name in ("config.toml", "metrics.json", "history.csv", summary):
        (out / name).write_text(f"the user's own {name}\n")
    before = snapshot(out)

    status, stdout, stderr = run(command, out, capsys, "--force")

    assert status == 2 and stdout == ""
    line = one_line(stderr)
    assert f"holds {summary}, which no bpdemo run there listed as its own" in line
    assert "move it away, or choose another --out" in line
    assert snapshot(out) == before


@pytest.mark.parametrize("command", ["house_prices", "worked_example", "gradients"])
def test_a_file_of_the_users_in_the_way_of_a_later_write_stops_the_run_before_it(
    tmp_path, capsys, command
):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.toml").write_text("# the user's own\n")
    status, _, stderr = run(command, out, capsys, "--force")
    assert status == 2
    assert "holds config.toml, which no bpdemo run there listed as its own" in one_line(stderr)
    assert (out / "config.toml").read_text() == "# the user's own\n"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_force_with_a_tampered_manifest_keeps_every_file_bpdemo_did_not_write(
    tmp_path, capsys, command, tiny_bench
):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a", "b", "c", "notes.txt"):
        (out / name).write_text(f"the user's {name}\n")
    (tmp_path / "outside.txt").write_text("outside\n")
    # a string where the list of files goes: iterated, it would name a, b and c
    (out / MANIFEST).write_text(json.dumps({"demo": "x", "files": "abc"}))
    users = {name: data for name, data in snapshot(out).items() if name != MANIFEST}

    status, _, stderr = run(command, out, capsys, "--force")

    assert status == 0, stderr
    after = snapshot(out)
    assert {name: after.get(name) for name in users} == users
    manifest = json.loads((out / MANIFEST).read_text())
    assert set(after) == {*users, MANIFEST, *manifest["files"]}
    assert not set(manifest["files"]) & set(users)
    assert (tmp_path / "outside.txt").read_text() == "outside\n"


# -- a manifest of any shape --------------------------------------------------------------------
def users_folder(tmp_path: Path) -> Path:
    """A folder of the user's files a, b, c, notes.txt, and a file beside it."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a", "b", "c", "notes.txt"):
        (out / name).write_text(f"the user's {name}\n")
    (tmp_path / "outside.txt").write_text("outside\n")
    return out


MANIFESTS = {
    "a string of names": {"demo": "x", "files": "abc", "sha256": {}},
    "a glob": {"demo": "x", "files": ["**", "*", ".*"], "sha256": {"**": "0" * 64}},
    "paths out of the folder": {
        "demo": "x",
        "files": ["../outside.txt", "/etc/hostname", "out/../a"],
        "sha256": {"../outside.txt": sha256(b"outside\n")},
    },
    "names without digests": {"demo": "x", "files": ["a", "b", "notes.txt"]},
    "digests that do not match": {"demo": "x", "files": ["a"], "sha256": {"a": "0" * 64}},
    "not an object": ["a", "b", "c"],
    "digests of another shape": {"demo": "x", "files": ["a"], "sha256": ["a"]},
    "names of another type": {"demo": "x", "files": [1, None, {"a": 1}], "sha256": {"1": "x"}},
}


@pytest.mark.parametrize("shape", list(MANIFESTS))
def test_a_manifest_of_any_shape_removes_none_of_the_users_files(tmp_path, shape):
    out = users_folder(tmp_path)
    (out / MANIFEST).write_text(json.dumps(MANIFESTS[shape]))
    before = snapshot(out)
    run = RunDir.prepare(out, "demo", force=True)
    run.write_text("result.txt", "new\n")
    run.close()
    after = snapshot(out)
    assert {name: after[name] for name in before if name != MANIFEST} == {
        name: data for name, data in before.items() if name != MANIFEST
    }
    assert (tmp_path / "outside.txt").read_text() == "outside\n"


@pytest.mark.parametrize("garbage", [b"\xff\xfe not json", b"", b"null", b"[" * 100_000])
def test_a_manifest_that_is_garbage_removes_nothing(tmp_path, garbage):
    out = users_folder(tmp_path)
    (out / MANIFEST).write_bytes(garbage)
    before = snapshot(out)
    run = RunDir.prepare(out, "demo", force=True)
    run.write_text("result.txt", "new\n")
    run.close()
    assert {name: snapshot(out)[name] for name in before if name != MANIFEST} == {
        name: data for name, data in before.items() if name != MANIFEST
    }


def test_force_removes_a_previous_runs_files_only_while_they_hold_what_it_wrote(tmp_path):
    out = tmp_path / "out"
    previous = RunDir.prepare(out, "demo")
    for name in ("kept.txt", "changed.txt", "stale.txt"):
        previous.write_text(name, f"written by the run: {name}\n")
    previous.close()
    (out / "changed.txt").write_text("edited by the user since\n")

    run = RunDir.prepare(out, "demo", force=True)
    run.write_text("kept.txt", "the new run's\n")
    with pytest.raises(UsageError, match=r"holds changed\.txt, which no bpdemo run"):
        run.write_text("changed.txt", "the new run's\n")
    run.close()
    assert not (out / "stale.txt").exists()  # the previous run's, as it wrote it: gone
    assert (out / "changed.txt").read_text() == "edited by the user since\n"
    assert (out / "kept.txt").read_text() == "the new run's\n"


@pytest.mark.parametrize("kind", ["folder", "link"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_manifest_that_is_a_folder_or_a_link_is_refused_before_the_run_starts(
    tmp_path, capsys, command, kind
):
    out = users_folder(tmp_path)
    if kind == "folder":
        (out / MANIFEST).mkdir()
    else:
        (out / MANIFEST).symlink_to(tmp_path / "outside.txt")
    before = snapshot(out)

    status, stdout, stderr = run(command, out, capsys, "--force")

    assert status == 2 and stdout == ""
    assert f"{MANIFEST} is not a manifest bpdemo wrote" in one_line(stderr)
    assert snapshot(out) == before
    assert (tmp_path / "outside.txt").read_text() == "outside\n"


# -- a refused run leaves nothing behind --------------------------------------------------------
MISSING_CSV = ["--csv", "missing.csv", "--features", "a,b", "--target", "price", "--quiet"]


def test_a_run_refused_without_out_leaves_no_runs_folder_behind(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_main(houses_main, MISSING_CSV) == 2  # the folder is claimed before the data is read
    assert "missing.csv not found" in one_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_a_run_refused_without_out_keeps_the_runs_folders_it_did_not_make(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "house_prices" / "old").mkdir(parents=True)
    assert run_main(houses_main, MISSING_CSV) == 2
    assert [p.name for p in (tmp_path / "runs" / "house_prices").iterdir()] == ["old"]


# -- an interruption at any moment of a write ---------------------------------------------------
def signal_after(function):
    """`function`, followed at once by a Ctrl-C to this process (the worst moment for it)."""

    def then_signal(*args, **kwargs):
        result = function(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        return result

    return then_signal


@pytest.mark.parametrize(
    "moment",
    ["tempfile.mkstemp", "os.fchmod", "os.fsync", "os.replace"],
    ids=["temporary-made", "mode-set", "data-flushed", "renamed"],
)
def test_a_signal_at_any_moment_of_a_write_leaves_the_file_whole_and_no_temporary(
    tmp_path, monkeypatch, moment
):
    module, name = moment.split(".")
    real = getattr({"tempfile": tempfile, "os": os}[module], name)
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with interruption.handlers():
        monkeypatch.setattr(f"{module}.{name}", signal_after(real))
        with pytest.raises(interruption.Interrupted):
            atomic_write(target, b"new")
        monkeypatch.undo()
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_run_interrupted_during_a_write_records_the_file_it_finished(tmp_path, monkeypatch):
    with interruption.handlers():
        run = RunDir.prepare(tmp_path / "out", "demo")
        monkeypatch.setattr("os.fsync", signal_after(os.fsync))
        with pytest.raises(interruption.Interrupted):
            run.write_text("history.csv", "epoch\n1\n")
        monkeypatch.undo()
        run.close()
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert run.written == ["history.csv"] and manifest["files"] == ["history.csv"]
    assert manifest["sha256"]["history.csv"] == sha256(b"epoch\n1\n")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [MANIFEST, "history.csv"]


def test_an_interrupted_run_never_writes_its_summary_over_a_file_the_user_put_there(tmp_path):
    out = tmp_path / "out"
    run = RunDir.prepare(out, "demo")
    run.write_text("config.toml", "seed = 0\n")
    run.progress = {"history": [1.0]}
    (out / "metrics.json").write_text("the user's, put there while the run went on\n")
    others = [other for other in outputs.open_runs() if other is not run]
    stop = interruption.Interrupted(signal.SIGINT, "training")
    assert outputs.close_runs(stop, keep=others) == [run]  # as the command line closes it
    assert (out / "metrics.json").read_text() == "the user's, put there while the run went on\n"
    assert not (out / LOCK).exists()
