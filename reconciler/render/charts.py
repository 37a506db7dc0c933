"""The monthly report's charts, drawn by matplotlib: solicitudes approved against attended per
week, and the time from approval to verified apply.  PNG for the PDF (fpdf2 places it as an
image), SVG with its words as text for the HTML page.  matplotlib is imported here only, and
only by `report --output pdf|html`: it takes a second to load."""
from __future__ import annotations

import io
from typing import Sequence

FONT = "DejaVu Sans"  # not for people: the documents' font, bundled with matplotlib too
LEGEND_AT = "upper right"  # not for people
COLOURS = ("#1f5f8b", "#e07b39", "#5a9e4b", "#9c9c9c")  # approved / attended; altas, modificaciones, bajas, pending


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on a runner
    matplotlib.rcParams.update({"font.family": FONT, "font.size": 9, "svg.fonttype": "none",
                                "svg.hashsalt": "reconciler", "axes.spines.top": False, "axes.spines.right": False})
    from matplotlib import pyplot

    return pyplot


def grouped_bars(title: str, categories: Sequence[str], series: Sequence[tuple[str, Sequence[int]]], ylabel: str):
    """Bars side by side, one group per category, one bar per series; each bar labelled with
    its value (the chart is read on paper: no hovering)."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7.0, 2.8))
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series):
        positions = [c + (i - (len(series) - 1) / 2) * width for c in range(len(categories))]
        bars = axes.bar(positions, values, width, label=name, color=COLOURS[i % len(COLOURS)])
        axes.bar_label(bars, fmt="%d", fontsize=8, padding=1)
    axes.set_xticks(range(len(categories)), categories)
    axes.set_ylabel(ylabel)
    axes.set_title(title, loc="left", fontsize=10, fontweight="bold")
    axes.yaxis.get_major_locator().set_params(integer=True)
    highest = max((v for _name, values in series for v in values), default=0)
    axes.set_ylim(0, max(1, highest) * 1.2)  # never below zero, and room for the labels and legend
    axes.legend(frameon=False, fontsize=8, ncols=len(series), loc=LEGEND_AT)
    figure.tight_layout()
    return figure


def png(figure) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=200, metadata={"Software": None})
    _close(figure)
    return out.getvalue()


def svg(figure) -> str:
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    _close(figure)
    text = out.getvalue()
    return text[text.index("<svg"):]  # the element alone, to sit inside the page


def _close(figure) -> None:
    _pyplot().close(figure)
