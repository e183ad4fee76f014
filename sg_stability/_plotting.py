"""Matplotlib figures as PNG files, shared by the analyzer's report, the diagnostics and the training race."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

from ._errors import ConfigError


def subplots(ncols: int, size: tuple[float, float]) -> tuple[Any, Any]:
    """A figure with ``ncols`` axes in a row, drawn off-screen (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=size)


def legend(ax: Any, **options: Any) -> None:
    """The axes' legend, or a "nothing measured" note where no curve was drawn (matplotlib would warn)."""
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(**options)
    else:
        ax.text(0.5, 0.5, "nothing measured", ha="center", va="center", transform=ax.transAxes, color="gray")


def save_figure(fig: Any, path: str | Path, dpi: int) -> Path:
    """Lay out, write as PNG (creating the folder) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    if not isinstance(path, str | PathLike):
        plt.close(fig)
        raise ConfigError("the plot's path must be a file name", got=path, allowed="a str or pathlib.Path ending "
                          "in .png", fix='pass e.g. "report.png"')
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out
