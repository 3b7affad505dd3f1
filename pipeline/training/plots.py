"""The PNGs a run draws: learning curves, a confusion matrix, predicted against true values."""

from __future__ import annotations

import math
import re
import textwrap
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.epochs import METRICS, Epoch, best
from pipeline.core.figures import pyplot as _pyplot


def fold_lines(histories: list[list[Epoch]], key: str, scale: float = 1) -> tuple[np.ndarray, np.ndarray]:
    """(fits, epochs) values of the figure `key` over the epochs every fit reached, and their mean per epoch."""
    n = min(len(h) for h in histories)
    rows = np.array([[scale * r.figures()[key] for r in h[:n]] for h in histories])
    return rows, rows.mean(0)


def _metric_key(histories: list[list[Epoch]]) -> str | None:
    return next((k for k in METRICS if all(k in r.figures() for h in histories for r in h)), None)


def kept_mark(histories: list[list[Epoch]], n: int, stopped: list[bool]) -> tuple[int, str]:
    """Where the kept epoch's star goes (an index into the first `n` epochs) and its legend: the last epoch, or after
    a stop (Ctrl-C, a time limit's deadline; `stopped` says which fits) the best validated one, which is what a
    stopped fit keeps. With several fits the star is on their mean, and a stopped fold gets a mark of its own."""
    last = f"kept: the last epoch ({histories[0][n - 1].epoch:g})"
    cut = sum(stopped)
    if not cut:
        return n - 1, last
    if len(histories) > 1:
        if cut == len(histories):
            return n - 1, "stopped early: each fold kept its best epoch (small stars)"
        kept = max(h[-1].epoch for h, c in zip(histories, stopped, strict=True) if not c)
        whole = f"{len(histories) - cut} of {len(histories)} folds"
        if kept == histories[0][n - 1].epoch:
            return n - 1, f"{last} by {whole}"
        return n - 1, f"the last epoch all folds reached ({histories[0][n - 1].epoch:g}); {whole} kept epoch {kept:g}"
    chosen = best(histories[0][:n])
    if chosen is None:  # nothing validated (a refit): the weights as they were
        return n - 1, last
    return histories[0].index(chosen), f"kept: the best epoch ({chosen.epoch:g}), stopped early"


def fold_marks(histories: list[list[Epoch]], n: int, stopped: list[bool]) -> list[tuple[int, int]]:
    """(fold, epoch index) of the best validated epoch each stopped fold kept, where it lies among the `n` drawn."""
    if len(histories) < 2:
        return []
    marks = []
    for k, (h, cut) in enumerate(zip(histories, stopped, strict=True)):
        chosen = best(h) if cut else None
        if chosen is not None and h.index(chosen) < n:
            marks.append((k, h.index(chosen)))
    return marks


def learning_curves(histories: list[list[Epoch]], path: Path, title: str, stopped: list[bool] | None = None) -> Path:
    """Loss and the validation metric per epoch: one thin line per fold and a bold mean when there are several
    fits, one line otherwise; the epoch each model keeps (the last; the best for a fit `stopped` early) is marked."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    stopped = [bool(c) for c, h in zip(stopped or [False] * len(histories), histories, strict=True) if h]
    histories = [h for h in histories if h]
    n = min(len(h) for h in histories)  # the epochs every fit reached (Ctrl-C may cut one short)
    epochs = [r.epoch for r in histories[0][:n]]
    several = len(histories) > 1
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    style = "o-" if n > 1 else "o"
    size = 4 if n > 1 else 9  # a lone epoch is a point, drawn big enough to see

    def draw(ax: Any, key: str, scale: float, color: str, label: str) -> list[float] | None:
        if not all(key in r.figures() for h in histories for r in h[:n]):
            return None
        rows, mean = fold_lines(histories, key, scale)  # (fits, epochs), (epochs,)
        if several:
            for k, row in enumerate(rows):
                ax.plot(epochs, row, "-", lw=0.8, alpha=0.45, color=color, label=f"{label}, each fold" if k == 0
                        else None)
        ax.plot(epochs, mean, style, ms=size, lw=2.4 if several else 1.5, color=color,
                label=f"{label}, mean of {len(rows)} folds" if several else label)
        return list(mean)

    draw(ax_loss, "train_loss", 1, "tab:blue", "train")
    draw(ax_loss, "valid_loss", 1, "tab:orange", "valid")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    metric = _metric_key([h[:n] for h in histories])
    if metric is not None:
        scale = 100 if metric == "valid_accuracy" else 1
        what = "validation accuracy (%)" if scale == 100 else "validation RMSE (model scale)"
        values = draw(ax_metric, metric, scale, "tab:green", what.split(" (")[0])
        ax_metric.set(xlabel="epoch", ylabel=what, title=what.split(" (")[0] + (" per fold" if several else ""))
        assert values is not None
        at, label = kept_mark(histories, n, stopped)
        shown = f"{values[at]:.2f}%" if scale == 100 else f"{values[at]:.4f}"
        ax_metric.plot([epochs[at]], [values[at]], "*", ms=14, color="tab:red", zorder=3, label=label)
        for i, (k, e) in enumerate(fold_marks(histories, n, stopped)):
            ax_metric.plot([epochs[e]], [scale * histories[k][e].figures()[metric]], "*", ms=8, color="tab:red",
                           alpha=0.7, zorder=3, label="kept by a fold stopped early" if i == 0 else None)
        below = scale == 100  # accuracy peaks near the top of its panel, RMSE dips near the bottom
        ax_metric.annotate(shown, (epochs[at], values[at]), textcoords="offset points",
                           xytext=(-8, -16 if below else 10), ha="right")
        ax_metric.legend(fontsize=8)
    else:
        ax_metric.set_axis_off()
    ax_loss.legend(fontsize=8)
    for ax in (ax_loss, ax_metric):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if n == 1:
            ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
    if several:
        title += f" · curves of the {len(histories)} fold models"
    if n == 1:
        title += " · 1 epoch: a point, not a curve"
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
    """Counts of true (rows) against predicted (columns) labels, with the most confused pair named, as a PNG."""
    fig = confusion_figure(y_true, y_pred, classes, title)
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def confusion_figure(y_true: np.ndarray, y_pred: np.ndarray, classes: np.ndarray, title: str) -> Any:
    """The matplotlib Figure `confusion_matrix` saves: long class names slant and are cut, long titles wrap."""
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
    names = cut_apart([str(c) for c in classes])
    cut = dict(zip(map(str, classes), names, strict=True))
    # names wider than their column run into each other side by side (a column holds about 40 characters in all)
    slanted = max(len(name) for name in names) > max(3, 40 // len(classes))
    ax.set_xticks(range(len(classes)), names, rotation=40 if slanted else 0, ha="right" if slanted else "center",
                  rotation_mode="anchor", parse_math=False)  # "$50k-$100k" is a class, not TeX
    ax.set_yticks(range(len(classes)), names, parse_math=False)
    ax.set(xlabel="predicted", ylabel="true")
    worst = most_confused(matrix, classes)
    subtitle = (f"most confused: true {cut[worst[0]]} predicted as {cut[worst[1]]} ({worst[2]}×)" if worst
                else "no mistakes")
    heading = fig.suptitle("\n".join(_fitted(fig, title) + _fitted(fig, subtitle)), fontsize=10, parse_math=False)
    fig.tight_layout()
    # tight_layout leaves the title's lines over the top row once the figure is tall (25 classes and more)
    below = (heading.get_window_extent(fig.canvas.get_renderer()).y0 - fig.dpi * 6 / 72) / fig.bbox.height
    if fig.subplotpars.top > below:
        fig.subplots_adjust(top=below)
    return fig


MAX_LINES = 4  # of a title, and of the subtitle below it


def _fitted(fig: Any, text: str) -> list[str]:
    """`text` in balanced lines of 10-point type as wide as `fig` holds: lines of average letters first, narrowed
    until lines of wide letters ("MMM…") fit too."""
    chars = int(fig.get_figwidth() * 12)  # what a line of average 10-point letters holds across the figure
    lines = balanced_lines(text, chars)
    probe = fig.text(0, 0, "", fontsize=10, parse_math=False)
    for _ in range(3):
        probe.set_text("\n".join(lines))
        wide = probe.get_window_extent(fig.canvas.get_renderer()).width / (0.96 * fig.bbox.width)
        if wide <= 1:
            break
        chars = max(10, int(chars / wide))
        lines = balanced_lines(text, chars)
    probe.remove()
    if len(lines) > MAX_LINES:  # a title longer than the matrix is tall would leave it no room; its end (the score)
        lines = [*lines[:MAX_LINES - 2], lines[MAX_LINES - 2][:-1] + "…", lines[-1]]  # stays
    return lines


def balanced_lines(text: str, chars: int) -> list[str]:
    """`text` in as few lines of at most `chars` characters as wrapping needs, each about as long as the others, so
    that no score or count ends alone on a line; a " · " joins the word before it, never starting a line (it is
    dropped where the two do not fit a line together). Words are cut only where one is longer than `chars`, as
    plain wrapping cuts them (at a hyphen if it has one), so a slug such as
    'santander-customer-transaction-prediction' stays whole when it fits."""
    text = re.sub(r"[\t\n\r\v\f]", " ", text)  # as textwrap reads them, so that each line is found in `text`
    words = [word.removesuffix("\u00a0·") if len(word) > chars >= len(word.removesuffix("\u00a0·")) else word
             for word in text.replace(" · ", "\u00a0· ").split(" ")]  # textwrap breaks at ASCII spaces only
    text = " ".join(words)
    whole = max(map(len, words)) <= chars
    wrap = partial(textwrap.wrap, break_long_words=not whole, break_on_hyphens=not whole)
    lines = wrap(text, chars)
    if not lines:  # nothing but spaces
        return []
    for width in range(max(1, math.ceil(len(text) / len(lines))), chars):
        narrower = wrap(text, width)
        if len(narrower) <= len(lines) and _word_cuts(narrower, text) <= _word_cuts(lines, text):
            lines = narrower
            break
    return [line.replace("\u00a0", " ") for line in lines]


def _word_cuts(lines: list[str], text: str) -> int:
    """How many of the breaks between `lines` (wrapped from `text`) fall inside a word: not at a space, not after a
    hyphen."""
    cuts, end = 0, 0
    for i, line in enumerate(lines):
        start = text.index(line, end)
        cuts += i > 0 and start == end and not lines[i - 1].endswith("-")
        end = start + len(line)
    return cuts


def cut_apart(names: list[str], most: int = 24) -> list[str]:
    """Each name cut by `_cut`; names whose cuts coincide keep the words where they part ('Department 1 of…d Skills',
    '…Fully Paid - reviewed…'), and any still alike are cut longer until they differ."""
    cuts = {name: _cut(name, most) for name in names}
    counts = Counter(cuts.values())
    cuts |= {name: _parted(name, _parting(name, names), most) for name in cuts if counts[cuts[name]] > 1}
    width = most
    while len(set(cuts.values())) < len(cuts) and width < max(map(len, cuts)):
        width += 1
        counts = Counter(cuts.values())
        cuts = {name: _cut(name, width) if counts[cut] > 1 else cut for name, cut in cuts.items()}
    return [cuts[name] for name in names]


def _parting(name: str, names: list[str]) -> int:
    """Where `name` parts from the name most alike at the start among `names`: the length of their common start."""
    def common(a: str, b: str) -> int:
        return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))

    return max((common(name, other) for other in names if other != name), default=0)


def _parted(name: str, parting: int, most: int) -> str:
    """`name` in `most` characters that show it from where it parts from names alike: its head stretched past that
    point when it is near the start, else the words from there, between '…'s."""
    if parting + 4 <= most - 6:
        head = parting + 4
        return name[:head] + "…" + name[len(name) - (most - 1 - head):]
    start = max(name.rfind(" ", 0, parting) + 1, parting - 8)  # the word where it parts, or a few letters before
    text = "…" + name[start:]
    return text if len(text) <= most else text[:most - 1] + "…"


def _cut(name: str, most: int = 24) -> str:
    """A class name short enough for an axis, cut in the middle to `most` characters so that names alike at the start
    stay apart: 'Department …Education 12'."""
    if len(name) <= most:
        return name
    head = (most - 1) // 2
    return name[:head] + "…" + name[len(name) - (most - 1 - head):]


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
    ax.set_title(title.replace(" · ", "\n", 1) if len(title) > 60 else title, fontsize=10)  # long slugs wrap
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
