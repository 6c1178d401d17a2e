"""Run outputs: one folder per run, claimed by it, every file written atomically (temporary file, rename).

The folder is `--out DIR`, or a new `runs/<demo>/<timestamp>/`. A run claims its folder when it starts:
it holds the lock file `.bpdemo-lock` (the system's `flock`, which ends with the process however it
ends, and which two runs can never both hold), so a second run aimed at the folder is refused at once
and nothing of the first is touched. The lock is never followed if it is a link, nor taken if it is
anything but the one-line file bpdemo writes: such a lock is refused with one line, untouched.

The manifest `.bpdemo-run.json` lists every file the run writes, each before it is written, with the
SHA-256 of what it writes: the record of which files are bpdemo's. A folder that is not empty is
refused unless `--force` is given; then the files the previous run's manifest lists, and that still
hold what it wrote, are removed when this run writes its first file, so a mistake found before that
costs nothing. Any other file (the user's, one changed since, one a tampered manifest names) is never
removed nor written over: a run that would write over one stops with one line naming it (at once
when it is the run's summary file), before it writes anything over it. A folder another run holds is never taken
over. A run that ends removes its lock file (and the folders it made, if it wrote nothing); one killed
outright (SIGKILL) leaves the lock file, free.

Files are written with the user's umask (0644 under umask 022), like any file a program creates.
An interrupted run writes what it finished (`progress`) into its summary file (metrics.json, or the
benchmark's bench.json) with `"interrupted": true`, then lets go of the folder (`close`).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import math
import os
import socket
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from bpdemo.infra import interruption
from bpdemo.infra.errors import UsageError

FIGURE_FORMATS = ("png", "svg", "pdf")
LOCK = ".bpdemo-lock"
MANIFEST = ".bpdemo-run.json"
METRICS = "metrics.json"
_LOCK_BYTES = 4096  # a lock file holds one line naming its run; a longer one is not a lock
_MANIFEST_BYTES = 1 << 20  # a manifest lists a few dozen names; a longer file is not one
_LOCK_ATTEMPTS = 100  # claims in a row lost to runs letting go of the folder in between
# never follows a link, never waits on a special file; not passed to a child process
_OPEN_LOCK = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_open_runs: list[RunDir] = []  # the folders this process has claimed and not yet let go of


@dataclass(frozen=True)
class FigureFormat:
    """How a run saves its figures: PNG at `dpi` for screens, SVG or PDF (vector) for slides and print.

    A figure's file name keeps its stem and takes the format's suffix (loss.png -> loss.svg).
    """

    format: str = "png"
    dpi: int = 120

    def name(self, name: str) -> str:
        return f"{Path(name).stem}.{self.format}"


# A vector file records no date, so that the same run writes the same bytes.
_NO_DATE = {"png": None, "svg": {"Date": None}, "pdf": {"CreationDate": None}}


class RunDir:
    """The folder a run writes into. Create it with `RunDir.prepare`; `close()` lets go of it.

    Attributes:
        summary: the file an interrupted run writes `progress` into (metrics.json by default).
        progress: what the run has finished so far, as its summary file would hold it; writing the
            summary file sets it.
        written: the names of the files written, in order.
        made: whether this run made the folder (it removes it again if it wrote nothing).
    """

    def __init__(
        self,
        path: Path,
        demo: str = "",
        summary: str = METRICS,
        figures: FigureFormat = FigureFormat(),
    ):
        self.path, self.demo, self.summary, self.figures = Path(path), demo, summary, figures
        self.progress: dict[str, Any] = {}
        self.written: list[str] = []
        # the manifest's files: each name is listed before its file is written
        self._listed: list[str] = []
        self._lock_descriptor: int | None = None
        self._digests: dict[str, str] = {}  # the SHA-256 of each file written
        self._previous: set[str] = set()  # the previous run's files, as it wrote them
        self._replace_previous = False  # --force: the previous run's files go at the first write
        self._made: list[Path] = []  # the folders this run made, outermost first
        self.made = False

    @classmethod
    def prepare(
        cls,
        out: str | Path | None,
        demo: str,
        force: bool = False,
        summary: str = METRICS,
        figures: FigureFormat | None = None,
    ) -> RunDir:
        """Make and claim the output folder before any work is done (see the module docstring)."""
        made: list[Path] = []
        try:
            path, made = _new_default_folder(demo) if out is None else _own_folder(Path(out))
            run = cls(path, demo, summary, figures or FigureFormat())
            run._made, run.made = made, path in made
            run._claim(force)
        except OSError as error:
            _remove_empty(made)
            where = error.filename or out
            raise UsageError(
                f"cannot write to output folder {where}: {error.strerror or error}; "
                "choose another --out"
            ) from None
        except BaseException:
            _remove_empty(made)
            raise
        _open_runs.append(run)
        return run

    # -- the claim ----------------------------------------------------------------------------------
    def _claim(self, force: bool) -> None:
        left_by_killed_run = self._lock()
        try:
            others = [p.name for p in self.path.iterdir() if p.name != LOCK]
            if others and not force:
                if left_by_killed_run:  # its lock is free, but it never let go of the folder
                    raise UsageError(
                        f"output folder {self.path} holds what a run left when it was killed; add "
                        "--force to replace its files, or choose another --out"
                    )
                raise _not_empty(self.path)
            if force:
                self._previous = _previous_files(self.path)
                if self.summary in others and self.summary not in self._previous:
                    raise _not_ours(self.path, self.summary)  # every run writes it: refused now
            # A mistake found before the first write (a bad data file) must cost nothing: the previous
            # run's files are replaced only when this run writes its first file.
            self._replace_previous = force
        except BaseException:
            self._unlock()
            raise

    def _lock(self) -> bool:
        """Hold the folder's lock file for as long as the run goes on (the system's `flock`: it ends
        with the process, however it ends). Returns whether the file was there already: the lock of
        a run that was killed before it could remove it.

        The lock is opened without following a link, and taken only if it is a regular file of its
        own (no other hard link) holding at most the one line a run writes; anything else is refused
        with one line and left untouched."""
        path = self.path / LOCK
        for _attempt in range(_LOCK_ATTEMPTS):
            try:
                descriptor = os.open(path, _OPEN_LOCK | os.O_CREAT | os.O_EXCL, 0o666)
                existed = False
            except FileExistsError:
                try:
                    descriptor, existed = os.open(path, _OPEN_LOCK), True
                except FileNotFoundError:
                    continue  # removed in between by a run that let go of the folder: try again
                except OSError:  # a link (never followed), a folder, a socket
                    raise _not_a_lock(self.path) from None
            try:
                info = os.fstat(descriptor)
                if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
                    raise _not_a_lock(self.path)
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    owner = _read_owner(descriptor)
                    raise UsageError(
                        f"output folder {self.path} is in use by another run "
                        f"({owner.get('demo', '?')}, process {owner.get('pid', '?')}); choose "
                        "another --out, or wait for it to end"
                    ) from None
                try:  # still the file at that name (not one a run removed while this one opened it)
                    current = os.lstat(path).st_ino == info.st_ino
                except FileNotFoundError:
                    current = False
                if current and existed and not _holds_one_line(descriptor):
                    raise _not_a_lock(self.path)
            except BaseException:
                os.close(descriptor)
                raise
            if current:
                os.ftruncate(descriptor, 0)
                os.pwrite(descriptor, _owner_text(self.demo).encode(), 0)
                self._lock_descriptor = descriptor
                return existed
            os.close(descriptor)
        raise UsageError(
            f"output folder {self.path} keeps being claimed and let go of by other runs; choose "
            "another --out, or try again"
        )

    def _unlock(self) -> None:
        descriptor, self._lock_descriptor = self._lock_descriptor, None
        if descriptor is not None:
            # removed while still held, so that no other run can take it in between
            (self.path / LOCK).unlink(missing_ok=True)
            os.close(descriptor)

    def _remove_previous(self) -> None:
        """Remove the previous run's files (if they still hold what it wrote), and its temporary files."""
        listed = _listed_in_manifest(self.path)
        with os.scandir(self.path) as entries:
            for entry in entries:
                name = entry.name
                if name in self._previous:
                    remove = _digest(entry.path) == listed.get(name)
                else:
                    remove = _temporary_of(name) in listed and entry.is_file(follow_symlinks=False)
                if remove:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)

    def _check_not_theirs(self, name: str) -> None:
        """Refuse to write `name` over a file this run did not write and no manifest lists."""
        if name in self._listed or (self._replace_previous and name in self._previous):
            return  # this run's own, or the previous run's, removed before the first write
        if os.path.lexists(self.path / name):
            raise _not_ours(self.path, name)

    def _write_manifest(self, running: bool) -> None:
        manifest = {
            "demo": self.demo,
            "pid": os.getpid(),
            "running": running,
            "files": self._listed,
            "sha256": self._digests,
        }
        atomic_write(self.path / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())

    def close(self, stop: Any = None) -> None:
        """Let go of the folder. After an interruption (`stop`, a `bpdemo.infra.interruption.Interrupted`),
        first write `progress` into the summary file with the interruption's marks. A run that wrote
        nothing leaves the folder as it found it (and removes the folders it made)."""
        if self not in _open_runs:
            return
        try:
            if not self._listed and not (stop is not None and self.progress):
                return  # it wrote nothing, and has nothing to keep
            if stop is not None:
                self.write_json(self.summary, {**self.progress, **stop.marks()})
            self._write_manifest(running=False)
        finally:
            _open_runs.remove(self)
            self._unlock()
            if not self._listed:
                _remove_empty(self._made)

    # -- writing ------------------------------------------------------------------------------------
    def write_bytes(self, name: str, data: bytes) -> Path:
        """Write the file `name` whole (see `atomic_write`), listed in the manifest first.

        A signal that comes meanwhile stops the run only once the file is written and recorded."""
        with interruption.deferred():
            if self._replace_previous:
                self._check_not_theirs(name)  # refused before anything of the previous run goes
                self._replace_previous = False
                self._remove_previous()
            self._check_not_theirs(name)
            digest = hashlib.sha256(data).hexdigest()
            if self._digests.get(name) != digest and self in _open_runs:
                # listed first: a run killed mid-write leaves nothing unknown
                self._listed += [] if name in self._listed else [name]
                self._digests[name] = digest
                with contextlib.suppress(OSError):  # a full disk: the file's own write says so
                    self._write_manifest(running=True)
            path = atomic_write(self.path / name, data)
            if name not in self.written:
                self.written.append(name)
        return path

    def write_text(self, name: str, text: str) -> Path:
        return self.write_bytes(name, text.encode("utf-8"))

    def write_json(self, name: str, obj: Any) -> Path:
        """`obj` as JSON; writing the summary file (metrics.json) also makes it the `progress`."""
        text = json.dumps(jsonable(obj), indent=2, allow_nan=False)
        path = self.write_text(name, text + "\n")
        if name == self.summary:
            self.progress = dict(obj)
        return path

    def write_csv(self, name: str, rows: Iterable[Mapping[str, Any]]) -> Path:
        rows = list(rows)
        buffer = io.StringIO()
        if rows:
            columns = list(dict.fromkeys(key for row in rows for key in row))
            writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        return self.write_text(name, buffer.getvalue())

    def save_figure(self, figure, name: str, bbox_inches: Any = "tight") -> Path:
        """Save a matplotlib figure atomically, in the run's format (`name`'s suffix becomes it).
        `bbox_inches`: the part of the figure saved, in inches (default: all it draws); figures
        given the same box have the same size. bpdemo's figures are not pyplot's (see
        `bpdemo.plots`), so nothing is left to close."""
        form = self.figures
        buffer = io.BytesIO()
        figure.savefig(
            buffer,
            format=form.format,
            dpi=form.dpi,
            bbox_inches=bbox_inches,
            metadata=_NO_DATE[form.format],
        )
        return self.write_bytes(form.name(name), buffer.getvalue())

    def save_figures(self, figures: Mapping[str, Any]) -> list[str]:
        """Draw and save each figure in turn ({file name: Figure, or a function that draws one}),
        so that an interrupted run keeps the figures it finished; returns the file names written."""
        interruption.set_phase("figures")
        return [
            self.save_figure(figure() if callable(figure) else figure, name).name
            for name, figure in figures.items()
        ]


def open_runs() -> list[RunDir]:
    """The folders this process has claimed and not yet let go of."""
    return list(_open_runs)


def close_runs(stop: Any = None, keep: Iterable[RunDir] = ()) -> list[RunDir]:
    """Close every folder this process still holds but those in `keep` (see `RunDir.close`).

    Returns the folders closed. One that cannot be written any more (a full disk, a file of the
    user's put where its summary goes) is let go of all the same.
    """
    kept = list(keep)
    runs = [run for run in _open_runs if all(run is not other for other in kept)]
    for run in runs:
        with contextlib.suppress(OSError, UsageError):
            run.close(stop)
    return runs


def _not_empty(path: Path) -> UsageError:
    return UsageError(
        f"output folder {path} exists and is not empty; choose another --out, "
        "or add --force to overwrite its files"
    )


def _not_ours(path: Path, name: str) -> UsageError:
    return UsageError(
        f"output folder {path} holds {name}, which no bpdemo run there listed as its own; "
        "--force replaces only a previous run's files, never this one: move it away, or choose "
        "another --out"
    )


def _not_a_lock(path: Path) -> UsageError:
    lock = path / LOCK
    what = (
        "a symbolic link"
        if lock.is_symlink()
        else "a folder"
        if lock.is_dir()
        else "not the one-line lock file bpdemo writes"
    )
    return UsageError(
        f"output folder {path}: its lock file {LOCK} is {what}; bpdemo leaves it untouched: "
        "remove it if no run of yours is using the folder, or choose another --out"
    )


def _previous_files(folder: Path) -> set[str]:
    """The files inside `folder` that its manifest says a run wrote, and that still hold what it
    wrote (the same SHA-256). A manifest that is not a regular file (a link, a folder) is refused:
    this run could not write its own."""
    return {
        name
        for name, digest in _listed_in_manifest(folder).items()
        if _digest(folder / name) == digest
    }


def _listed_in_manifest(folder: Path) -> dict[str, str]:
    """{name: SHA-256} of the plain names that `folder`'s manifest lists with their digest, if the
    manifest has the shape bpdemo writes; empty for anything else (garbage, another shape)."""
    path = folder / MANIFEST
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return {}
    except OSError:
        descriptor = None
    try:
        if descriptor is None or not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise UsageError(
                f"output folder {folder}: {MANIFEST} is not a manifest bpdemo wrote (a link or a "
                "folder) and is in the way of this run's; move it away, or choose another --out"
            )
        text = os.read(descriptor, _MANIFEST_BYTES + 1)
    finally:
        if descriptor is not None:
            os.close(descriptor)
    try:
        manifest = json.loads(text) if len(text) <= _MANIFEST_BYTES else None
    except (ValueError, RecursionError):  # not JSON, or nested deeper than a manifest ever is
        return {}
    if not isinstance(manifest, dict):
        return {}
    names, digests = manifest.get("files"), manifest.get("sha256")
    if not isinstance(names, list) or not isinstance(digests, dict):
        return {}
    return {
        name: digests[name]
        for name in names
        if isinstance(name, str) and _plain_name(name) and isinstance(digests.get(name), str)
    }


def _digest(path: str | Path) -> str | None:
    """The SHA-256 of a regular file's content (None for a link, a folder, anything else)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return None
        return hashlib.file_digest(file, "sha256").hexdigest()


def _plain_name(name: str) -> bool:
    """A file directly inside the folder, and none of bpdemo's own bookkeeping."""
    return os.path.basename(name) == name and name not in ("", ".", "..", LOCK, MANIFEST)


def _temporary_of(name: str) -> str | None:
    """The file whose temporary `name` is (`.metrics.json.x1y2.tmp` -> metrics.json), if it is one."""
    if len(name) > 5 and name.startswith(".") and name.endswith(".tmp"):
        return name[1:-4].rpartition(".")[0] or None
    return None


def _make_folder(path: Path) -> list[Path]:
    """Make `path` with its missing parents; returns the folders made, outermost first."""
    missing = [folder for folder in [path, *path.parents] if not os.path.lexists(folder)]
    path.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def _remove_empty(folders: list[Path]) -> None:
    """Remove `folders` (outermost first), innermost first, as long as each is empty."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return  # not empty: something of someone's is in it


def _new_default_folder(demo: str) -> tuple[Path, list[Path]]:
    """A new `runs/<demo>/<timestamp>[-k]` folder (made here, so two runs never share one), and the
    folders made for it."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    parent = Path("runs") / demo
    made = _make_folder(parent)
    suffix = 0
    while True:
        path = parent / (stamp if suffix == 0 else f"{stamp}-{suffix}")
        try:
            path.mkdir()
            return path, [*made, path]
        except FileExistsError:
            suffix += 1
        except FileNotFoundError:  # a run that wrote nothing removed the empty parent just now
            made += _make_folder(parent)


def _own_folder(path: Path) -> tuple[Path, list[Path]]:
    if path.exists() and not path.is_dir():
        raise UsageError(f"output path {path} exists and is not a folder; choose another --out")
    return path, _make_folder(path)


def _owner_text(demo: str) -> str:
    started = datetime.now().isoformat(timespec="seconds")
    owner = {"demo": demo, "pid": os.getpid(), "host": socket.gethostname(), "started": started}
    return json.dumps(owner) + "\n"


def _read_owner(descriptor: int) -> dict[str, Any]:
    """What a lock file says of the run that holds it (its demo and process), as far as it says."""
    try:
        owner = json.loads(os.pread(descriptor, 4096, 0).decode())
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _holds_one_line(descriptor: int) -> bool:
    """Whether a lock file holds what a run writes into it: one line of JSON (or nothing yet)."""
    data = os.pread(descriptor, _LOCK_BYTES + 1, 0)
    if not data.strip():
        return True
    try:
        owner = json.loads(data.decode()) if len(data) <= _LOCK_BYTES else None
    except ValueError:
        return False
    return isinstance(owner, dict) and data.strip().count(b"\n") == 0


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_temporary(path: Path, data: bytes) -> str:
    """`data` in a new temporary file beside `path`, with the mode the user's umask gives files."""
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        os.fchmod(descriptor, 0o666 & ~_umask())
        with os.fdopen(descriptor, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return temporary


def atomic_write(path: Path, data: bytes) -> Path:
    """Write `data` to a temporary file beside `path`, then rename it over `path`.

    A failure (a full disk) leaves the old file as it was, and says which file it was. A signal that
    comes meanwhile waits until the file is written (`bpdemo.infra.interruption.deferred`), so that
    no temporary file is left behind, whenever it comes.
    """
    try:
        with interruption.deferred():
            temporary = _write_temporary(path, data)
            try:
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
    except OSError as error:
        raise OSError(error.errno, error.strerror or str(error), str(path)) from None
    return path


def write_new(path: Path, data: bytes) -> Path:
    """Write `data` to the new file `path`, whole or not at all, never over anything already there (a
    file, a folder, a link, which is never followed): FileExistsError if the name is taken.

    As `atomic_write`, but the complete temporary file is linked to its name instead of renamed over
    it, for `os.link` refuses a name that is taken, atomically. Where the file system has no links,
    the file is created only if it is new (`O_EXCL`), and removed again if writing it fails.
    """
    with interruption.deferred():
        temporary = _write_temporary(path, data)
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise
        except OSError:  # a file system without links
            _create_new(path, data)
        finally:
            Path(temporary).unlink(missing_ok=True)
    return path


def _create_new(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
    except BaseException:
        path.unlink(missing_ok=True)  # made just now, and half-written
        raise


def jsonable(obj: Any) -> Any:
    """Tensors to lists, non-finite floats to None (JSON has no NaN), tuples to lists."""
    if isinstance(obj, torch.Tensor):
        return jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays and scalars
        return jsonable(obj.tolist())
    return obj
