"""An experiment's output: a plain-text table on stdout and a PNG plot (matplotlib, Agg).

Why plain text: the smoke tests and a reader of a CI log read the same lines. Why Agg: the
experiments run headless (as root on a lab machine, no display); matplotlib is imported only
when a plot is drawn, so the rest of netctl never needs it (it is the `experiments` extra).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell; the first left-aligned, the others right."""
    cells = [[str(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths),
                      *(line(r) for r in cells[1:])])


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "inf" if value == float("inf") else f"{value:.1f}"
    return str(value)


def save_plot(path: Path, draw: Callable[[Any], None], title: str,
              size: tuple[float, float] = (8.0, 4.5)) -> Path:
    """Draw on one matplotlib Axes (`draw(ax)`) and save it as PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=size)
    try:
        draw(ax)
        ax.set_title(title)
        ax.grid(True, axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=100)
    finally:
        plt.close(fig)
    return path
