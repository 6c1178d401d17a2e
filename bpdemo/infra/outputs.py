"""Run outputs: one folder per run, claimed by it, every file written atomically (temporary file, rename).

The folder is `--out DIR`, or a new `runs/<demo>/<timestamp>/`. A run claims its folder when it starts:
it holds the lock file `.bpdemo-lock` (the system's `flock`, which ends with the process however it
ends, and which two runs can never both hold), so a second run aimed at the folder is refused at once
and nothing of the first is touched. The manifest `.bpdemo-run.json` lists every file the run writes.
A folder that is not empty is refused unless `--force` is given; then the files the previous run listed
in its manifest are removed when this run writes its first file (files bpdemo did not write are kept),
so a mistake found before that costs nothing; a folder another run holds is never taken over. A run
that ends removes its lock file (and the folder, if it made it and wrote nothing); one killed outright
(SIGKILL) leaves the lock file, free.

Files are written with the user's umask (0644 under umask 022), like any file a program creates.
An interrupted run writes what it finished (`progress`) into its summary file (metrics.json, or the
benchmark's bench.json) with `"interrupted": true`, then lets go of the folder (`close`).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import math
import os
import socket
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
        self._replace_previous = False  # --force: the previous run's files go at the first write
        self.made = False  # whether this run made the folder (it removes it again if unused)

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
        try:
            made = out is None or not Path(out).exists()
            path = _new_default_folder(demo) if out is None else _own_folder(Path(out))
            run = cls(path, demo, summary, figures or FigureFormat())
            run.made = made
            run._claim(force)
        except OSError as error:
            where = error.filename or out
            raise UsageError(
                f"cannot write to output folder {where}: {error.strerror or error}; "
                "choose another --out"
            ) from None
        _open_runs.append(run)
        return run

    # -- the claim ----------------------------------------------------------------------------------
    def _claim(self, force: bool) -> None:
        left_by_killed_run = self._lock()
        try:
            others = [p for p in self.path.iterdir() if p.name != LOCK]
            if others and not force:
                if left_by_killed_run:  # its lock is free, but it never let go of the folder
                    raise UsageError(
                        f"output folder {self.path} holds what a run left when it was killed; add "
                        "--force to replace its files, or choose another --out"
                    )
                raise _not_empty(self.path)
            # A mistake found before the first write (a bad data file) must cost nothing: the previous
            # run's files are replaced only when this run writes its first file.
            self._replace_previous = force
        except BaseException:
            self._unlock()
            raise

    def _lock(self) -> bool:
        """Hold the folder's lock file for as long as the run goes on (the system's `flock`: it ends
        with the process, however it ends). Returns whether the file was there already: the lock of
        a run that was killed before it could remove it."""
        path = self.path / LOCK
        while True:
            try:
                descriptor, existed = (
                    os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666),
                    False,
                )
            except FileExistsError:
                try:
                    descriptor, existed = os.open(path, os.O_RDWR), True
                except FileNotFoundError:
                    continue  # removed in between by a run that gave up: try again
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(descriptor)
                os.close(descriptor)
                raise UsageError(
                    f"output folder {self.path} is in use by another run ({owner.get('demo', '?')}, "
                    f"process {owner.get('pid', '?')}); choose another --out, or wait for it to end"
                ) from None
            try:  # still the file at that name (not one a run removed while this one opened it)
                current = os.stat(path).st_ino == os.fstat(descriptor).st_ino
            except FileNotFoundError:
                current = False
            if current:
                break
            os.close(descriptor)
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, _owner_text(self.demo).encode(), 0)
        self._lock_descriptor = descriptor
        return existed

    def _unlock(self) -> None:
        descriptor, self._lock_descriptor = self._lock_descriptor, None
        if descriptor is not None:
            # removed while still held, so that no other run can take it in between
            (self.path / LOCK).unlink(missing_ok=True)
            os.close(descriptor)

    def _remove_previous(self) -> None:
        """Remove the files the previous run's manifest lists, and its temporary files."""
        try:
            previous = json.loads((self.path / MANIFEST).read_text())
            names = [str(name) for name in previous.get("files", [])]
        except (OSError, ValueError, AttributeError):
            return  # no manifest (or not ours): nothing here is known to be bpdemo's
        for name in names:
            if Path(name).name != name or name in (".", "..", LOCK, MANIFEST):
                continue  # a manifest only lists plain names inside the folder
            for path in [self.path / name, *self.path.glob(f".{name}.*.tmp")]:
                if path.is_file() or path.is_symlink():
                    path.unlink(missing_ok=True)

    def _write_manifest(self, running: bool) -> None:
        manifest = {
            "demo": self.demo,
            "pid": os.getpid(),
            "running": running,
            "files": self._listed,
        }
        atomic_write(self.path / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())

    def close(self, stop: Any = None) -> None:
        """Let go of the folder. After an interruption (`stop`, a `bpdemo.infra.interruption.Interrupted`),
        first write `progress` into the summary file with the interruption's marks. A run that wrote
        nothing leaves the folder as it found it (and removes it if it made it)."""
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
            if not self._listed and self.made:
                with contextlib.suppress(OSError):  # only if empty: nothing of anyone's is lost
                    self.path.rmdir()

    # -- writing ------------------------------------------------------------------------------------
    def write_bytes(self, name: str, data: bytes) -> Path:
        if self._replace_previous:
            self._replace_previous = False
            self._remove_previous()
        if name not in self._listed and self in _open_runs:
            self._listed.append(name)  # listed first: a run killed mid-write leaves nothing unknown
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

    def save_figure(self, figure, name: str) -> Path:
        """Save a matplotlib figure atomically, in the run's format (`name`'s suffix becomes it),
        and close it."""
        import matplotlib.pyplot as plt

        form = self.figures
        buffer = io.BytesIO()
        try:
            figure.savefig(
                buffer,
                format=form.format,
                dpi=form.dpi,
                bbox_inches="tight",
                metadata=_NO_DATE[form.format],
            )
        finally:
            plt.close(figure)
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

    Returns the folders closed. One that cannot be written any more is let go of all the same.
    """
    kept = list(keep)
    runs = [run for run in _open_runs if all(run is not other for other in kept)]
    for run in runs:
        with contextlib.suppress(OSError):
            run.close(stop)
    return runs


def _not_empty(path: Path) -> UsageError:
    return UsageError(
        f"output folder {path} exists and is not empty; choose another --out, "
        "or add --force to overwrite its files"
    )


def _new_default_folder(demo: str) -> Path:
    """A new `runs/<demo>/<timestamp>[-k]` folder (made here, so two runs never share one)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    parent = Path("runs") / demo
    parent.mkdir(parents=True, exist_ok=True)
    suffix = 0
    while True:
        path = parent / (stamp if suffix == 0 else f"{stamp}-{suffix}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            suffix += 1


def _own_folder(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise UsageError(f"output path {path} exists and is not a folder; choose another --out")
    path.mkdir(parents=True, exist_ok=True)
    return path


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

    A failure (a full disk) leaves the old file as it was, and says which file it was.
    """
    try:
        temporary = _write_temporary(path, data)
        try:
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise OSError(error.errno, error.strerror or str(error), str(path)) from None
    return path


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
