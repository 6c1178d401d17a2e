"""Figures of the benchmark (`python -m bpdemo.bench`): step time against batch size and width."""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from bpdemo.plots.training import AUTOGRAD_STYLE, MANUAL_STYLE


def scaling_figure(scaling: dict, threads: int) -> Figure:
    """Step time (log-log) of both models against batch size and against hidden width, and below
    each, the ratio hand-written / autograd (under 1: the hand-written step is faster)."""
    figure = Figure(figsize=(11, 6.5))
    axes = figure.subplots(2, 2, sharex="col", gridspec_kw={"height_ratios": [3, 1.4]})
    batch, width = scaling["batch"], scaling["width"]
    panels = (
        (
            axes[:, 0],
            batch["batch_sizes"],
            batch,
            "batch size (rows per step)",
            f"network {'-'.join(map(str, batch['sizes']))}, by batch size",
        ),
        (
            axes[:, 1],
            width["widths"],
            width,
            "hidden width w",
            f"network 784-w-w-10, batch {width['batch']}, by width",
        ),
    )
    for (time_ax, ratio_ax), xs, data, xlabel, title in panels:
        for key, label, style in (
            ("manual_us", "hand-written", MANUAL_STYLE),
            ("autograd_us", "autograd + torch.optim", AUTOGRAD_STYLE),
        ):
            time_ax.plot(xs, [us / 1e3 for us in data[key]], marker="o", label=label, **style)
        time_ax.set_xscale("log", base=2)
        time_ax.set_yscale("log")
        time_ax.set_ylabel("step time (ms, log scale)")
        time_ax.set_title(title)
        time_ax.grid(True, which="both", alpha=0.3)
        time_ax.legend(loc="upper left")
        time_ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        time_ax.yaxis.set_major_formatter(FuncFormatter(_milliseconds))
        time_ax.yaxis.set_minor_formatter(NullFormatter())

        ratio_ax.plot(xs, data["ratio"], marker="o", color="tab:purple", linewidth=1.5)
        ratio_ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
        ratio_ax.set_xscale("log", base=2)
        ratio_ax.set_ylim(0, max(1.2, 1.1 * max(data["ratio"])))
        ratio_ax.set_ylabel("hand-written\n/ autograd")
        ratio_ax.set_xlabel(xlabel)
        ratio_ax.grid(True, which="both", alpha=0.3)
        ratio_ax.set_xticks(xs)
        ratio_ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ratio_ax.xaxis.set_minor_locator(LogLocator(base=2, subs=()))
        ratio_ax.xaxis.set_minor_formatter(NullFormatter())
    figure.suptitle(
        f"Training step time (forward, backward, update), float32, CPU, {threads} "
        f"thread{'s' if threads != 1 else ''}; median of {scaling['repeats']} interleaved repeats"
    )
    figure.tight_layout()
    return figure


def _milliseconds(value: float, _position) -> str:
    return f"{value:g}"
