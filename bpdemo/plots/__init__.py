"""Figures, one module per subject. Every function returns a matplotlib Figure; `RunDir.save_figure`
writes it. Outside a notebook the Agg backend is used, so nothing needs a screen. A figure is made
as `Figure(...)`, not by pyplot, so pyplot holds no reference to it: in a notebook it shows once, as
the value of the cell that returns it, and is freed when dropped."""

import matplotlib

if "inline" not in matplotlib.get_backend():
    matplotlib.use("Agg")

# Element ids in an svg are random unless salted; salted, the same figure writes the same file.
matplotlib.rcParams["svg.hashsalt"] = "bpdemo"
