"""Figures, one module per subject. Every function returns a matplotlib Figure; `RunDir.save_figure`
writes it. The Agg backend is used, so nothing needs a screen."""

import matplotlib

matplotlib.use("Agg")
