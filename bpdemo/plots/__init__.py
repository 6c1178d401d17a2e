"""Figures, one module per subject. Every function returns a matplotlib Figure; `RunDir.save_figure`
writes it. Outside a notebook the Agg backend is used, so nothing needs a screen. A figure is made
as `Figure(...)`, not by pyplot, so pyplot holds no reference to it: in a notebook it shows once, as
the value of the cell that returns it, and is freed when dropped."""

import sys

import matplotlib


def _in_ipython() -> bool:
    ipython = sys.modules.get("IPython")
    return ipython is not None and ipython.get_ipython() is not None


# Asking for the backend imports pyplot, which only IPython needs: its inline backend is what shows a
# returned Figure in a notebook. Anywhere else Agg draws, and a command starts without pyplot.
if not _in_ipython() or "inline" not in matplotlib.get_backend():
    matplotlib.use("Agg")

# Element ids in an svg are random unless salted; salted, the same figure writes the same file.
matplotlib.rcParams["svg.hashsalt"] = "bpdemo"
