"""The configs bpdemo ships, and the folders it uses when nobody names one.

The repository's top-level `configs/` is the one place the configs are written. The package carries
it as `bpdemo.configs` (pyproject.toml maps the package to the folder), so that bpdemo finds its
configs through `importlib.resources` wherever it is installed: in site-packages from a wheel, and
in the repository itself for the editable install `make` makes. A checkout run without installing
(`PYTHONPATH=.`) has no `bpdemo.configs` to import, and reads the repository's folder directly.

`--config NAME` takes the name of a shipped config (`worked_xor`) where no file of that name exists
(`config_file`).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from bpdemo.infra.errors import ConfigError

# The folder that holds the package; in a checkout, the repository (it has pyproject.toml and
# configs/ beside bpdemo/), which keeps its download cache in data/.
_ROOT = Path(__file__).resolve().parents[2]
CHECKOUT = _ROOT if (_ROOT / "pyproject.toml").is_file() and (_ROOT / "configs").is_dir() else None


def _config_folder() -> Path:
    try:
        return Path(resources.files("bpdemo.configs"))
    except ModuleNotFoundError:  # a checkout run in place, not installed
        return _ROOT / "configs"


CONFIG_DIR = _config_folder()


def shipped_configs() -> list[str]:
    """The names of the shipped configs (`house_prices`, `worked_321`, ...), sorted."""
    return sorted(path.stem for path in CONFIG_DIR.glob("*.toml"))


def config_file(given: str | os.PathLike[str]) -> Path:
    """The file `--config` names: `given` if it is a file, else the shipped config of that name.

    A name never shadows a file: `--config worked_xor` is the user's file `worked_xor` if there is
    one. Neither a file nor a shipped name: one ConfigError line listing the shipped names.
    """
    path = Path(given)
    if path.is_file():
        return path
    if str(given) in shipped_configs():
        return CONFIG_DIR / f"{given}.toml"
    if path.exists():  # a folder: reading it says so
        return path
    raise ConfigError(
        f"config file {given} not found; pass an existing file to --config, or the name of a "
        f"shipped config: {', '.join(shipped_configs())}"
    )
