"""Run outputs: one folder per run, every file written atomically (temporary file, then rename).

The folder is `--out DIR`, or `runs/<demo>/<timestamp>/`. An existing folder that is not empty is
refused (and left untouched) unless `--force` is given.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from bpdemo.errors import UsageError


class RunDir:
    """The folder a run writes into. Create it with `RunDir.prepare`."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def prepare(cls, out: str | Path | None, demo: str, force: bool = False) -> RunDir:
        """Check and create the output folder before any work is done."""
        if out is None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            path = Path("runs") / demo / stamp
            suffix = 1
            while path.exists():
                path = Path("runs") / demo / f"{stamp}-{suffix}"
                suffix += 1
        else:
            path = Path(out)
        if path.exists() and not path.is_dir():
            raise UsageError(f"output path {path} exists and is not a folder; choose another --out")
        if path.is_dir() and any(path.iterdir()) and not force:
            raise UsageError(
                f"output folder {path} exists and is not empty; choose another --out, "
                "or add --force to overwrite its files"
            )
        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as error:
            raise UsageError(
                f"cannot write to output folder {path}: {error.strerror or error}; "
                "choose another --out"
            ) from None
        return cls(path)

    def write_bytes(self, name: str, data: bytes) -> Path:
        return atomic_write(self.path / name, data)

    def write_text(self, name: str, text: str) -> Path:
        return self.write_bytes(name, text.encode("utf-8"))

    def write_json(self, name: str, obj: Any) -> Path:
        text = json.dumps(jsonable(obj), indent=2, allow_nan=False)
        return self.write_text(name, text + "\n")

    def write_csv(self, name: str, rows: Iterable[Mapping[str, Any]]) -> Path:
        rows = list(rows)
        buffer = io.StringIO()
        if rows:
            columns = list(dict.fromkeys(key for row in rows for key in row))
            writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        return self.write_text(name, buffer.getvalue())

    def save_figure(self, figure, name: str, dpi: int = 120) -> Path:
        """Save a matplotlib figure as PNG, atomically, and close it."""
        import matplotlib.pyplot as plt

        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(figure)
        return self.write_bytes(name, buffer.getvalue())


def atomic_write(path: Path, data: bytes) -> Path:
    """Write `data` to a temporary file beside `path`, then rename it over `path`."""
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
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
