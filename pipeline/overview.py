"""A first look at a competition's data before any model (`kc explore`): the target's balance, missing values,
how each column relates to the target, train against test distributions and date ranges; as numbers and PNGs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.core import figures
from pipeline.core.competitions import Competition
from pipeline.core.workspace import Workspace

if TYPE_CHECKING:
    import pandas as pd

MI_ROWS = 20_000  # mutual information is estimated on at most this many train rows (a seeded sample)
SHOWN = 20  # columns drawn in the missing-value and association charts
DRAWN = 12  # numeric columns whose train and test distributions are drawn


@dataclass(frozen=True)
class Overview:
    """What `explore` found in a competition's files, and the PNGs it drew."""

    competition: Competition
    train_rows: int
    test_rows: int
    target: dict[str, float]  # classes: class -> share of train rows; values: mean, std, min, median, max, skew
    missing: dict[str, tuple[float, float]] = field(default_factory=dict)  # column -> (train share, test share)
    association: dict[str, float] = field(default_factory=dict)  # column -> mutual information with the target
    dates: dict[str, tuple[str, str, str, str]] = field(default_factory=dict)  # column -> train first/last, test
    forecast: tuple[str, ...] = ()  # date columns whose test values all come after train's (to the second)
    # date column -> file -> (cells not read as dates in the column's format, one of them): kc reads them as missing
    unreadable: dict[str, dict[str, tuple[int, str]]] = field(default_factory=dict)
    formats: dict[str, str] = field(default_factory=dict)  # date column -> the strftime format kc reads it in
    pictures: tuple[Path, ...] = ()
    # column -> why a plain table's features leave it out ("constant in train"); none where kc has its own features
    unused: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """What was found, in a few lines of text (the CLI prints them; the notebook view shows them)."""
        comp = self.competition
        out = [f"{comp.slug}: {self.train_rows:,} train rows, {self.test_rows:,} test rows"]
        if len(comp.target_columns) > 1:
            out.append(f"{len(comp.target_columns)} targets: {', '.join(comp.target_columns)}; the first is shown")
        if comp.is_classification:
            shares = sorted(self.target.items(), key=lambda kv: -kv[1])
            names = dict(zip(comp.classes, comp.display_classes, strict=True))
            shown = ", ".join(f"{names[label]} {share:.1%}" for label, share in shares[:8])
            more = f" and {len(shares) - 8} more" if len(shares) > 8 else ""
            out.append(f"target {comp.target_column}: {shown}{more}")
        else:
            t = self.target
            out.append(f"target {comp.target_column}: mean {_number(t['mean'])}, std {_number(t['std'])}, min "
                       f"{_number(t['min'])}, median {_number(t['median'])}, max {_number(t['max'])}, "
                       f"skew {t['skew']:.2f}")
        if self.missing:
            out.append("missing (train/test): " + ", ".join(f"{c} {_share(a)}/{_share(b)}" for c, (a, b)
                                                            in list(self.missing.items())[:6])
                       + (f" and {len(self.missing) - 6} more columns" if len(self.missing) > 6 else ""))
        elif comp.modality == "tabular":
            out.append("missing: none")
        if self.association:
            unnamed = min(len(self.association), SHOWN) - 6  # the chart draws the first SHOWN
            out.append("most related to the target (mutual information): " + ", ".join(
                f"{c} {v:.3f}" for c, v in list(self.association.items())[:6])
                       + (f" and {unnamed} more in association.png" if unnamed > 0 else ""))
        if self.unused:
            out.append("left out of the features: " + "; ".join(f"{c}: {why}" for c, why in
                                                                 list(self.unused.items())[:6])
                       + (f" and {len(self.unused) - 6} more" if len(self.unused) > 6 else ""))
        for column, (a, b, c, d) in self.dates.items():
            out.append(f"dates {column}: train {_range(a, b)}, test {_range(c, d)}")
            for name, (count, example) in self.unreadable.get(column, {}).items():
                shown = example if len(example) <= 30 else example[:29] + "…"
                values, are = ("values", "are not dates") if count > 1 else ("value", "is not a date")
                out.append(f"  {count:,} {name} {values} of {column} (such as {shown!r}) {are} in the format kc "
                           f"found for it ({self.formats.get(column, '?')}): kc reads them as no date")
            if column in self.forecast:
                out.append(f"  test's {column} values all come after train's: kc's folds are random, so they mix "
                           "past and future rows, and out-of-fold scores may flatter a model that must forecast")
        out.append("pictures: " + ", ".join(str(p) for p in self.pictures))
        return out

    def _repr_html_(self) -> str:
        import html

        from pipeline.notebook import pngs_html

        text = "<br>".join(html.escape(line) for line in self.lines()[:-1])
        return f"<div>{text}<div>{pngs_html(list(self.pictures))}</div></div>"


def _number(x: float) -> str:
    """182,921 or 22.76 or 0.0131: four significant digits without an exponent for everyday sizes."""
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def _share(x: float) -> str:
    """A share as a whole percentage, with `<1%` for a few cells, so that none is never confused with some."""
    return "<1%" if 0 < x < 0.005 else f"{x:.0%}"


def explore(comp: Competition, ws: Workspace) -> Overview:
    """Look at the competition's train and test files and draw what was found into its `explore` folder."""
    from pipeline.ingest.sources import require_fetched

    folder = require_fetched(comp, ws)  # before any folder is made
    out = ws.cache_dir(comp.slug) / "explore"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):  # pictures of what the data was: a chart not drawn now must not linger
        old.unlink()
    if comp.modality != "tabular":
        return _pixels(comp, ws, out)
    return _table(comp, folder, out)


def _table(comp: Competition, folder: Path, out: Path) -> Overview:
    from pipeline.ingest.csvfiles import read_table
    from pipeline.tables.encoder import TableEncoder
    from pipeline.tables.frames import targets

    as_written = (comp.id_column,) if comp.id_type == "str" else ()
    train, test = (read_table(folder / name, as_written=as_written) for name in (comp.train_file, comp.test_file))
    y = targets(comp, train[comp.target_column], comp.train_file)
    features = [c for c in test.columns if c in train.columns and c not in (comp.id_column, *comp.target_columns)
                and c not in comp.dropped_columns]
    if comp.id_column in comp.date_columns:  # a date-time id (Bike Sharing's) is a feature too
        features.insert(0, comp.id_column)
    missing = {c: (float(train[c].isna().mean()), float(test[c].isna().mean())) for c in features}
    missing = dict(sorted(((c, s) for c, s in missing.items() if max(s) > 0), key=lambda kv: -max(kv[1])))
    if not features:
        from pipeline.tables.frames import nothing_to_learn

        raise nothing_to_learn(comp)
    encoder = TableEncoder().fit(train[features], dates=comp.date_columns)
    association = _association(encoder, train[features], y, not comp.is_classification)
    formats = _date_formats(encoder)
    spans = {c: _span(train[c], test[c], fmt) for c, fmt in formats.items()}
    dates = {c: days for c, (days, _, _) in spans.items()}
    forecast = tuple(c for c, (_, after, _) in spans.items() if after)
    unreadable = {c: odd for c, (_, _, odd) in spans.items() if odd}
    target = _target_summary(comp, y)
    pictures = [_draw_target(comp, y, out / "target.png")]
    if missing:
        pictures.append(_draw_bars({c: s for c, s in list(missing.items())[:SHOWN]}, out / "missing.png",
                                   "share of rows missing", ("train", "test")))
    if association:
        pictures.append(_draw_bars({c: (v,) for c, v in list(association.items())[:SHOWN]}, out / "association.png",
                                   "mutual information with the target (nats)", ("train",)))
    numeric = [c for c in association if c in encoder.report()["numeric"]]
    if numeric:
        pictures.append(_draw_distributions(train, test, numeric, out / "distributions.png"))
    if dates:
        pictures.append(_draw_dates(train, test, formats, out / "dates.png"))
    return Overview(comp, len(train), len(test), target, missing, association, dates, forecast, unreadable,
                    formats, tuple(pictures), dict(encoder.dropped_) if comp.features == "generic" else {})


def _association(encoder: Any, frame: pd.DataFrame, y: np.ndarray, regression: bool) -> dict[str, float]:
    """Mutual information of each source column with the target (the most of its encoded features), most first."""
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    rows = np.arange(len(frame))
    if len(rows) > MI_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(rows, MI_ROWS, replace=False))
    X = encoder.transform(frame.iloc[rows], scaled=False)
    score = mutual_info_regression if regression else mutual_info_classif
    mi = score(X, y[rows], random_state=0)
    found: dict[str, float] = {}
    start = 0
    for encoding in encoder.encodings_:
        width = len(encoding.names(False))
        found[encoding.column] = float(mi[start:start + width].max())
        start += width
    return dict(sorted(found.items(), key=lambda kv: -kv[1]))


def _date_formats(encoder: Any) -> dict[str, str]:
    return {e.column: e.format for e in encoder.encodings_ if e.kind == "date"}


def _span(train: pd.Series, test: pd.Series,
          fmt: str) -> tuple[tuple[str, str, str, str], bool, dict[str, tuple[int, str]]]:
    """The first and last dates in train and in test, as ISO text ('' when a file has none); whether every test
    timestamp comes after every train one; and per file, the cells that are there but not dates in `fmt` (how many,
    and the first)."""
    from pipeline.core.dates import parse

    out: list[str] = []
    seen: list[pd.Series] = []
    unreadable: dict[str, tuple[int, str]] = {}
    for name, values in (("train", train), ("test", test)):
        when = parse(values, fmt)
        odd = values[when.isna() & values.notna() & (values.astype(str).str.strip() != "")]
        if len(odd):
            unreadable[name] = (len(odd), str(odd.iloc[0]))
        when = when.dropna()
        seen.append(when)
        out += [str(when.min().date()), str(when.max().date())] if len(when) else ["", ""]
    after = all(len(when) for when in seen) and bool(seen[1].min() > seen[0].max())
    return (out[0], out[1], out[2], out[3]), after, unreadable


def _range(first: str, last: str) -> str:
    """'2012-01-01 to 2012-06-28', or 'no dates' for a file with none."""
    return f"{first} to {last}" if first else "no dates"


def _target_summary(comp: Competition, y: np.ndarray) -> dict[str, float]:
    if not comp.is_classification:
        import pandas as pd

        s = pd.Series(y)
        return {"mean": float(s.mean()), "std": float(s.std()), "min": float(s.min()), "median": float(s.median()),
                "max": float(s.max()), "skew": float(s.skew())}
    counts = np.bincount(y, minlength=len(comp.classes))
    return {label: float(n / len(y)) for label, n in zip(comp.classes, counts, strict=True)}


def _pixels(comp: Competition, ws: Workspace, out: Path) -> Overview:
    from pipeline.core.dataset import load_dataset

    data = load_dataset(comp, ws)
    pictures = [_draw_target(comp, data.y, out / "target.png"), _draw_means(comp, data.X, data.y, out / "means.png"),
                _draw_brightness(data.X, data.X_test, out / "brightness.png")]
    return Overview(comp, len(data.X), len(data.X_test), _target_summary(comp, data.y), pictures=tuple(pictures))


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    return figures.save(fig, path)


def _draw_target(comp: Competition, y: np.ndarray, path: Path) -> Path:
    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    if not comp.is_classification:
        ax.hist(y, bins=50, color="tab:blue")
        ax.set(xlabel=comp.target_column, ylabel="train rows", title=f"{comp.target_column}: {len(y):,} values")
    else:
        counts = np.bincount(y, minlength=len(comp.classes))
        names = [c if len(c) <= 18 else c[:17] + "…" for c in comp.display_classes]
        bars = ax.bar(range(len(counts)), counts, color="tab:blue")
        ax.bar_label(bars, [f"{n / len(y):.0%}" for n in counts], fontsize=8)
        ax.set_xticks(range(len(counts)), names, rotation=30 if len(counts) > 6 else 0, ha="right"
                      if len(counts) > 6 else "center", fontsize=8)
        ax.set(ylabel="train rows", title=f"{comp.target_column}: {len(y):,} rows in {len(counts)} classes")
    return _save(fig, path)


def _draw_bars(values: dict[str, tuple[float, ...]], path: Path, xlabel: str, series: tuple[str, ...]) -> Path:
    """Horizontal bars, one group per column (the first on top), one bar per series."""
    plt = figures.pyplot()
    names = list(values)
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.32 * len(names) * len(series)))
    height = 0.8 / len(series)
    for k, label in enumerate(series):
        ax.barh(np.arange(len(names)) + k * height, [values[n][k] for n in names], height, label=label)
    ax.set_yticks(np.arange(len(names)) + height * (len(series) - 1) / 2, [n[:28] for n in names], fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel=xlabel)
    if xlabel.startswith("share"):
        from matplotlib.ticker import PercentFormatter

        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    if len(series) > 1:
        ax.legend(loc="lower right")
    return _save(fig, path)


def _draw_distributions(train: pd.DataFrame, test: pd.DataFrame, numeric: list[str], path: Path) -> Path:
    """Train against test histograms (same bins, as shares of rows) of the `DRAWN` numeric columns most related to
    the target (`numeric` holds them all, most related first), saying so when it leaves some out."""
    from pipeline.tables.encoder import numbers

    columns = numeric[:DRAWN]
    plt = figures.pyplot()
    cols = min(4, len(columns))
    rows = -(-len(columns) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.5 * rows), squeeze=False)
    for ax, column in zip(axes.flat, columns, strict=False):
        a, b = numbers(train[column]), numbers(test[column])
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        bins = np.histogram_bin_edges(np.concatenate([a, b]), bins=30)
        for values, label in ((a, "train"), (b, "test")):
            if len(values):
                ax.hist(values, bins=bins, weights=np.full(len(values), 1 / len(values)), alpha=0.55, label=label)
        ax.set_title(column[:30], fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    which = f": the {len(columns)} of {len(numeric)} numeric columns most related to the target" \
        if len(numeric) > len(columns) else ""
    fig.suptitle("train against test, as shares of rows" + which, fontsize=10)
    return _save(fig, path)


def _draw_dates(train: pd.DataFrame, test: pd.DataFrame, formats: dict[str, str], path: Path) -> Path:
    """Rows over time in train and in test, one panel per date column: do test's dates follow train's?"""
    from pipeline.core.dates import parse

    plt = figures.pyplot()
    fig, axes = plt.subplots(len(formats), 1, figsize=(8, 2.6 * len(formats)), squeeze=False)
    from matplotlib import dates as mdates

    for ax, (column, fmt) in zip(axes[:, 0], formats.items(), strict=True):
        days = [mdates.date2num(parse(frame[column], fmt).dropna()) for frame in (train, test)]
        edges = np.histogram_bin_edges(np.concatenate(days), bins=60)  # one set of bins: heights compare
        for values, label in zip(days, ("train", "test"), strict=True):
            if len(values):
                ax.hist(values, bins=edges, alpha=0.6, label=label)
        ax.set_xlim(edges[0], edges[-1])  # no margin: past year 9999 matplotlib has no dates (a 9999-12-31 cell)
        ax.xaxis_date()
        ax.set(title=column, ylabel="rows")
        ax.legend(fontsize=8)
    return _save(fig, path)


def _draw_means(comp: Competition, X: np.ndarray, y: np.ndarray, path: Path) -> Path:
    """The mean image of each class: what a typical one looks like."""
    from pipeline.pixels import images

    classes = [k for k in range(len(comp.classes)) if (y == k).any()]
    means = np.stack([X[y == k].mean(axis=0) for k in classes]).round().astype(np.uint8)
    captions = [f"mean of {comp.display_classes[k]} ({int((y == k).sum()):,})" for k in classes]
    return images.contact_sheet(means, captions, path, cols=min(10, len(classes)), ink=comp.modality == "pixels")


def _draw_brightness(X: np.ndarray, X_test: np.ndarray, path: Path) -> Path:
    """Mean brightness per image in train and in test: a shifted test set shows here first."""
    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    a, b = (x.reshape(len(x), -1).mean(axis=1) for x in (X, X_test))
    bins = np.histogram_bin_edges(np.concatenate([a, b]), bins=40)
    for values, label in ((a, "train"), (b, "test")):
        ax.hist(values, bins=bins, weights=np.full(len(values), 1 / len(values)), alpha=0.55, label=label)
    ax.set(xlabel="mean pixel value of an image (0-255)", ylabel="share of images", title="brightness")
    ax.legend()
    return _save(fig, path)
