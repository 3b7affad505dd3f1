"""The PNGs a run draws: learning curves, a confusion matrix, predicted against true values."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curves(history: list[dict[str, float]], path: Path, title: str) -> Path:
    """Loss (train and valid) and validation accuracy per epoch."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    if all("valid_loss" in r for r in history):
        ax_loss.plot(epochs, [r["valid_loss"] for r in history], "o-", label="valid")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    if all("valid_accuracy" in r for r in history):
        acc = [100 * r["valid_accuracy"] for r in history]
        ax_acc.plot(epochs, acc, "o-", color="tab:green")
        best = int(np.argmax(acc))
        ax_acc.annotate(f"best {acc[best]:.2f}%", (epochs[best], acc[best]), textcoords="offset points",
                        xytext=(0, -15), ha="center")
        ax_acc.set(xlabel="epoch", ylabel="validation accuracy (%)", title="validation accuracy")
    elif all("valid_rmse" in r for r in history):
        rmse = [r["valid_rmse"] for r in history]
        ax_acc.plot(epochs, rmse, "o-", color="tab:green")
        best = int(np.argmin(rmse))
        ax_acc.annotate(f"best {rmse[best]:.4f}", (epochs[best], rmse[best]), textcoords="offset points",
                        xytext=(0, 10), ha="center")
        ax_acc.set(xlabel="epoch", ylabel="validation RMSE (model scale)", title="validation RMSE")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def most_confused(matrix: np.ndarray, classes: np.ndarray) -> tuple[str, str, int] | None:
    """(true, predicted, count) of the largest off-diagonal cell, or None when nothing is confused."""
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    if off.max() == 0:
        return None
    i, j = np.unravel_index(np.argmax(off), off.shape)
    return str(classes[i]), str(classes[j]), int(off[i, j])


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: np.ndarray, path: Path, title: str) -> Path:
    """Counts of true (rows) against predicted (columns) labels, with the most confused pair named."""
    plt = _pyplot()
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        matrix[index[t], index[p]] += 1
    size = max(3.6, 1.8 + 0.55 * len(classes))
    fig, ax = plt.subplots(figsize=(size + 1.4, size))
    shown = np.log1p(matrix)  # log scale so the few mistakes stay visible beside the big diagonal
    image = ax.imshow(shown, cmap="Blues")
    for i in range(len(classes)):
        for j in range(len(classes)):
            if matrix[i, j]:
                light = image.norm(shown[i, j]) > 0.5  # white text on the dark half of the colour map only
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if light else "black")
    ax.set_xticks(range(len(classes)), [str(c) for c in classes])
    ax.set_yticks(range(len(classes)), [str(c) for c in classes])
    ax.set(xlabel="predicted", ylabel="true")
    worst = most_confused(matrix, classes)
    subtitle = f"most confused: true {worst[0]} predicted as {worst[1]} ({worst[2]}×)" if worst else "no mistakes"
    ax.set_title(f"{title}\n{subtitle}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def predicted_vs_true(y_true: np.ndarray, y_pred: np.ndarray, path: Path, title: str, log: bool = False) -> Path:
    """Each validation row's prediction against its true value, with the diagonal of perfect predictions."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(y_true, y_pred, s=8, alpha=0.5)
    lo, hi = float(min(np.min(y_true), np.min(y_pred))), float(max(np.max(y_true), np.max(y_pred)))
    ax.plot([lo, hi], [lo, hi], color="tab:red", linewidth=1, label="perfect")
    if log:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set(xscale="log", yscale="log")
        for axis in (ax.xaxis, ax.yaxis):  # plain numbers, no crowded minor labels
            axis.set_major_locator(LogLocator(subs=(1, 2, 5)))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
            axis.set_minor_formatter(NullFormatter())
    ax.set(xlabel="true", ylabel="predicted")
    ax.legend()
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
