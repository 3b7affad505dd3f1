"""Matplotlib for kc's pictures: the headless backend, and a PNG written atomically (a half-drawn file never lands)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.core.workspace import atomic_path


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed; imported on first use, not with kc)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path) -> Path:
    """Write the figure to `path` as a 100-dpi PNG, atomically, and close it."""
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    pyplot().close(fig)
    return path
