"""`kc report`: one self-contained HTML page of a competition's runs, their pictures and the submission log."""

from __future__ import annotations

import base64
import html
import math
import os
from datetime import datetime
from pathlib import Path

import pipeline
from pipeline.core.competitions import Competition
from pipeline.core.metrics import Metric
from pipeline.core.workspace import Workspace, atomic_path
from pipeline.submitting.ledger import LogEntry, read_log
from pipeline.training import listing
from pipeline.training.records import Damaged, Run, scan

_NOWRAP = {"model": "nowrap", "scored": "nowrap"}  # runs-table columns kept on one line
PICTURED = 50  # runs whose PNGs are embedded, best first: each adds ~100 KB to the page
PICTURE_ORDER = ("learning_curves.png", "confusion_matrix.png", "predicted_vs_true.png")
# no request may leave the page: the browser refuses anything but inline styles, scripts and data: images
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

CSS = """
:root { --ink: #1f2933; --muted: #616e7c; --line: #e4e7eb; --head: #f5f7fa; --accent: #2f6fdf; --bad: #b42318; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1180px; padding: 24px 28px 48px; color: var(--ink);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
p.lead { margin: 0 0 6px; color: var(--muted); }
.facts { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0 0; padding: 0; list-style: none; }
.facts li { background: var(--head); border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px; }
.facts b { display: block; font-size: 18px; }
.facts span { color: var(--muted); font-size: 13px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--head); white-space: nowrap; }
th button { all: unset; cursor: pointer; font-weight: 600; }
th button:hover { color: var(--accent); }
th button:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
th button::after { content: " \\2195"; color: #9aa5b1; font-size: 12px; }
th[aria-sort=ascending] button::after { content: " \\25B2"; color: var(--accent); }
th[aria-sort=descending] button::after { content: " \\25BC"; color: var(--accent); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:hover { background: #f0f4ff; }
tr.best { background: #f3f8ff; }
tr.best td:nth-child(3) { font-weight: 600; }
td.nowrap { white-space: nowrap; }
td code { overflow-wrap: anywhere; }
tr.damaged td { color: var(--bad); }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
.tag { display: inline-block; padding: 0 6px; border-radius: 4px; font-size: 12px; background: var(--head);
  border: 1px solid var(--line); }
.tag.sample { background: #fff4e5; border-color: #f7c77e; }
.tag.COMPLETE { background: #e7f6ec; border-color: #9fd8b2; }
.tag.ERROR { background: #fdecea; border-color: #f5b5ad; }
.note { color: var(--muted); font-size: 13px; }
details { border: 1px solid var(--line); border-radius: 8px; margin: 8px 0; padding: 0 14px; }
details[open] { padding-bottom: 12px; }
summary { cursor: pointer; padding: 10px 0; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; max-width: 100%; }
figure img { display: block; max-width: 100%; max-height: 380px; width: auto; height: auto;
  border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13px; }
svg { max-width: 100%; height: auto; font: 12px system-ui, sans-serif; }
svg .axis { stroke: #9aa5b1; }
svg .grid { stroke: var(--line); }
svg .same { stroke: #9aa5b1; stroke-dasharray: 5 4; }
svg circle { fill: var(--accent); fill-opacity: 0.8; }
footer { margin-top: 40px; color: var(--muted); font-size: 13px; }
"""

# the error hook runs first, so a failure anywhere later on is recorded on <body data-errors>
ERROR_HOOK = """window.addEventListener("error", function (e) {
  var b = document.body;
  b.setAttribute("data-errors", (b.getAttribute("data-errors") || "") + (e.message || "error") + "; ");
});"""

# sorting: a click on a header sorts by it (the score's first click puts the best first, by the metric;
# a second click reverses); `#sort=KEY` or `#sort=KEY:desc` in the address clicks the headers the same way
SCRIPT = """(function () {
  "use strict";
  function value(cell, numeric) {
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    if (raw === "") return null;
    if (!numeric) return raw.toLowerCase();
    var n = parseFloat(raw);
    return isNaN(n) ? null : n;
  }
  function sortBy(th, dir) {
    var table = th.closest("table"), body = table.tBodies[0], col = th.cellIndex;
    var numeric = th.getAttribute("data-type") === "num";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a.cells[col], numeric), y = value(b.cells[col], numeric);
      if (x === null || y === null) return (x === null ? 1 : 0) - (y === null ? 1 : 0);  // blanks last
      var c = numeric ? x - y : x.localeCompare(y, undefined, {numeric: true});
      return dir === "desc" ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(th.parentNode.cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === "desc" ? "descending" : "ascending");
    table.setAttribute("data-sorted", th.getAttribute("data-key") + ":" + dir);
  }
  function clicked(th) {
    var now = th.closest("table").getAttribute("data-sorted") || "";
    var first = th.getAttribute("data-first") || "asc";
    var dir = now === th.getAttribute("data-key") + ":" + first ? (first === "asc" ? "desc" : "asc") : first;
    sortBy(th, dir);
  }
  document.querySelectorAll("th[data-key] button").forEach(function (b) {
    b.addEventListener("click", function () { clicked(b.closest("th")); });
  });
  function fromHash() {
    var m = /^#sort=([a-z]+)(?::(asc|desc))?$/.exec(location.hash);
    var th = m && document.querySelector("#runs th[data-key=" + m[1] + "]");
    if (!th) return;
    var table = th.closest("table"), want = m[2] || th.getAttribute("data-first") || "asc";
    for (var i = 0; i < 2 && table.getAttribute("data-sorted") !== m[1] + ":" + want; i++) {
      th.querySelector("button").click();
    }
  }
  function openRun() {
    var target = /^#run-\\d+$/.test(location.hash) && document.querySelector(location.hash);
    if (target) target.open = true;
  }
  window.addEventListener("hashchange", function () { fromHash(); openRun(); });
  fromHash();
  openRun();
  document.body.setAttribute("data-ready", "1");
})();"""


DATA_ORDER = {name: k for k, name in enumerate(("target.png", "association.png", "missing.png", "distributions.png",
                                                "dates.png", "means.png", "brightness.png"))}


def write_report(comp: Competition, ws: Workspace, out: Path | None = None) -> Path:
    """Write the competition's report page (default `competitions/<slug>/report.html`), atomically; return it."""
    path = out if out is not None else ws.data_dir(comp.slug) / "report.html"
    if path.is_dir():  # `--out /tmp`: the page goes inside the folder
        path = path / f"{comp.slug}-report.html"
    runs, damaged = scan(comp, ws)
    looked = ws.cache_dir(comp.slug) / "explore"
    data = sorted((p for p in looked.glob("*.png") if _own_png(p)), key=lambda p: (DATA_ORDER.get(p.name, 9), p.name))
    tuned = sorted(p for p in (ws.data_dir(comp.slug) / "tune").glob("*.png") if _own_png(p))
    page = render(comp, runs, damaged, read_log(comp, ws), datetime.now().strftime("%Y-%m-%d %H:%M"), data, tuned)
    with atomic_path(path, suffix=".html") as tmp:
        tmp.write_text(page, encoding="utf-8")
        tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600; a page to open and share gets the mode any file would
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def render(comp: Competition, runs: list[Run], damaged: list[Damaged], log: list[LogEntry], when: str,
           data: list[Path] | None = None, tuned: list[Path] | None = None) -> str:
    """The report as one HTML document: runs best first, their learning curves side by side, each run's pictures,
    the submission log, a score chart, the tuning studies' pictures and the data's that `kc explore` drew."""
    metric = comp.scorer
    body = "\n".join((_header(comp, metric, runs, damaged, log), _runs_table(comp, metric, runs, damaged),
                      _side_by_side(metric, runs), _pictures(metric, runs), _log_table(metric, log),
                      _chart(comp, metric, log), _figures("Tuning", tuned or []), _data(comp, data or [])))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{POLICY}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(comp.slug)}: kc report</title>
<style>{CSS}</style>
</head>
<body>
<script>{ERROR_HOOK}</script>
{body}
<footer>Written by kc {_e(pipeline.__version__)} at {_e(when)}. Run <code>kc report {_e(comp.slug)}</code> again to
refresh it.</footer>
<script>{SCRIPT}</script>
</body>
</html>
"""


def _e(value: object) -> str:
    """Text made safe for HTML content and quoted attributes."""
    return html.escape(str(value), quote=True)


def _direction(metric: Metric) -> str:
    return "higher is better" if metric.higher_is_better else "lower is better"


def _header(comp: Competition, metric: Metric, runs: list[Run], damaged: list[Damaged], log: list[LogEntry]) -> str:
    scored = sum(1 for e in log if _public(e) is not None)
    best = runs[0] if runs and runs[0].metrics.metric == comp.metric else None
    facts = [(f"{len(runs)}", f"run{'s' * (len(runs) != 1)}" + (f", {len(damaged)} damaged" if damaged else "")),
             (f"{len(log)}", f"submission{'s' * (len(log) != 1)}, {scored} scored on Kaggle")]
    if best is not None:
        facts.insert(0, (metric.format(best.score), f"best {metric.title}: {best.run_id}"))
    items = "".join(f"<li><b>{_e(value)}</b><span>{_e(what)}</span></li>" for value, what in facts)
    return (f"<header>\n<h1>{_e(comp.title)}</h1>\n<p class=\"lead\"><code>{_e(comp.slug)}</code> · {_e(comp.task)}"
            f" · scored by {_e(metric.title)} ({_direction(metric)})</p>\n<ul class=\"facts\">{items}</ul>\n</header>")


def _th(key: str, label: str, kind: str = "text", first: str = "asc", sorted_now: bool = False) -> str:
    num = ' class="num"' if kind == "num" else ""
    now = f' aria-sort="{"descending" if first == "desc" else "ascending"}"' if sorted_now else ""
    return f'<th{num} data-key="{key}" data-type="{kind}" data-first="{first}"{now}><button type="button">' \
           f"{_e(label)}</button></th>"


def _td(text: object, sort: object = None, cls: str = "", code: bool = False) -> str:
    attrs = (f' class="{cls}"' if cls else "") + (f' data-sort="{_e(sort)}"' if sort is not None else "")
    return f"<td{attrs}><code>{_e(text)}</code></td>" if code else f"<td{attrs}>{_e(text)}</td>"


def _runs_table(comp: Competition, metric: Metric, runs: list[Run], damaged: list[Damaged]) -> str:
    if not runs and not damaged:
        return f"<h2>Runs</h2>\n<p>No runs yet: train one with <code>kc train {_e(comp.slug)}</code>.</p>"
    best_dir = "desc" if metric.higher_is_better else "asc"
    cols = listing.columns(comp)
    head = "".join(_th(c.key, c.label, "num" if c.numeric else "text", best_dir if c.key == "score" else "asc",
                       c.key == "score") for c in cols)

    def tds(cells: list[listing.Cell]) -> str:
        return "".join(_td(cell.text, cell.sort, "num" if col.numeric else _NOWRAP.get(col.key, ""))
                       for col, cell in zip(cols[1:], cells[1:], strict=True))

    rows = []
    again = listing.repeats(runs, comp)
    for i, r in enumerate(runs):
        name = f"<code>{_e(r.run_id)}</code>"
        name = f'<a href="#run-{i}">{name}</a>' if i < PICTURED else name  # only pictured runs have an anchor
        link = f'<td class="nowrap" data-sort="{_e(r.run_id)}">{name}</td>'
        best = i == 0 and r.metrics.metric == comp.metric
        cells = listing.run_cells(comp, r)
        if r.run_id in again:  # the same experiment run twice: one piece of evidence, not two
            cells[1] = listing.Cell(f"{cells[1].text} (repeats {again[r.run_id]})", cells[1].sort)
        rows.append(("<tr class=\"best\">" if best else "<tr>") + link + tds(cells) + "</tr>")
    broken = [f'<tr class="damaged">{_td(d.run_id, cls="nowrap", code=True)}{tds(listing.damaged_cells(comp, d))}</tr>'
              for d in damaged]
    # damaged runs sit in a second body, which sorting leaves alone, so they stay at the bottom
    tail = f"\n<tbody>{''.join(broken)}</tbody>" if broken else ""
    note = "Click a heading to sort by it; click again to reverse."
    return (f"<h2>Runs</h2>\n<p class=\"note\">{note}</p>\n<div class=\"scroll\"><table id=\"runs\" "
            f"data-sorted=\"score:{best_dir}\">\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows)
            + f"\n</tbody>{tail}\n</table></div>")


def _own_png(path: Path) -> bool:
    """A real PNG inside its run folder: never a link to elsewhere (a shared run folder must not leak files)."""
    if path.is_symlink() or not path.is_file():
        return False
    with path.open("rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    what = path.stem.replace("_", " ")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(what)}"><figcaption>{_e(what)}'
            "</figcaption></figure>")


def _pictures(metric: Metric, runs: list[Run]) -> str:
    if not runs:
        return ""
    parts = ["<h2>Pictures</h2>"]
    for i, r in enumerate(runs[:PICTURED]):
        order = {name: k for k, name in enumerate(PICTURE_ORDER)}
        pngs = sorted(filter(_own_png, r.plots), key=lambda p: (order.get(p.name, 9), p.name))
        figures = "".join(_img(p) for p in pngs) or '<p class="note">This run drew no pictures.</p>'
        title = f"<code>{_e(r.run_id)}</code> · {_e(r.model)} · {_e(metric.title)} {_e(metric.format(r.score))}"
        parts.append(f'<details id="run-{i}"{" open" if i == 0 else ""}><summary>{title}</summary>'
                     f'<div class="figures">{figures}</div></details>')
    if len(runs) > PICTURED:
        parts.append(f'<p class="note">Pictures of the {PICTURED} best runs; the other {len(runs) - PICTURED} '
                     "keep theirs in their run folders.</p>")
    return "\n".join(parts)


OVERLAID = 8  # runs whose validation curves are drawn together, best first


def _side_by_side(metric: Metric, runs: list[Run]) -> str:
    """The validation metric per epoch of the best runs that have epochs, in one chart (first fit of each)."""
    import io

    curves = [r for r in runs if any(e.metric for e in r.metrics.history)][:OVERLAID]
    if len(curves) < 2:
        return ""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2))
    for r in curves:
        points = [(e.epoch, e.metric[1]) for e in r.metrics.history if e.metric]
        scale = 100 if metric.percent else 1
        ax.plot([p[0] for p in points], [scale * p[1] for p in points], "o-", ms=3,
                label=f"{r.run_id} ({metric.format(r.score)})")  # the id names the model
    name = next(e.metric[0] for e in curves[0].metrics.history if e.metric).replace("valid_", "validation ")
    ax.set(xlabel="epoch", ylabel=name + (" (%)" if metric.percent else ""),
           title=f"the {len(curves)} best runs with epochs (of a folds run, its first fold)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'<h2>Runs side by side</h2><div class="figures"><figure><img src="data:image/png;base64,{data}" '
            'alt="learning curves of several runs"><figcaption>learning curves of several runs</figcaption></figure>'
            "</div>")


def _figures(title: str, pngs: list[Path]) -> str:
    if not pngs:
        return ""
    return f'<h2>{_e(title)}</h2><div class="figures">{"".join(_img(p) for p in pngs)}</div>'


def _data(comp: Competition, pngs: list[Path]) -> str:
    if not pngs:
        return (f'<h2>The data</h2><p class="note">Run <code>kc explore {_e(comp.slug)}</code> for pictures of the '
                "data (target balance, missing values, train against test); this page shows them after.</p>")
    figures = "".join(_img(p) for p in pngs)
    return f'<h2>The data</h2><details open><summary>drawn by kc explore</summary><div class="figures">{figures}' \
           "</div></details>"


def _public(entry: LogEntry) -> float | None:
    """The entry's public leaderboard score as a number, when Kaggle gave one."""
    try:
        value = float(entry.public_score) if entry.public_score not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and math.isfinite(value) else None


def _log_table(metric: Metric, log: list[LogEntry]) -> str:
    if not log:
        return "<h2>Submissions</h2>\n<p>No submissions yet: write one with <code>kc submit</code>.</p>"
    rows = []
    for n, e in enumerate(log, 1):
        if e.valid_score is None:
            valid = "-"
        else:
            valid = metric.format(e.valid_score) if e.metric in ("", metric.name) else f"{e.metric} {e.valid_score:.4f}"
        data = '<span class="tag sample">SAMPLE</span>' if e.sample else '<span class="tag">full</span>'
        status = f'<span class="tag {_e(e.status)}">{_e(e.status)}</span>'
        score = _public(e)
        public = _td(e.public_score or "-", cls="num") if score is None else \
            f'<td class="num" title="Kaggle: {_e(e.public_score)}">{_e(metric.format(score))}</td>'
        said = " ".join(x for x in (e.message or "", f"error: {e.error}" if e.error else "") if x)
        rows.append(f"<tr>{_td(n, cls='num')}{_td(str(e.time).replace('T', ' ')[:16], cls='nowrap')}"
                    f"{_td(e.file, code=True)}{_td(e.made_from, cls='nowrap', code=True)}{_td(e.model, cls='nowrap')}"
                    f"{_td(valid, cls='num')}<td>{data}</td><td>{status}</td>{public}{_td(said)}</tr>")
    head = "".join(('<th class="num">' if h in ("#", "valid score", "public score") else "<th>") + f"{h}</th>"
                   for h in ("#", "time", "file", "run", "model", "valid score", "data", "status", "public score",
                             "message"))
    return (f"<h2>Submissions</h2>\n<div class=\"scroll\"><table id=\"submissions\">\n<thead><tr>{head}</tr></thead>"
            "\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table></div>")


def _chart(comp: Competition, metric: Metric, log: list[LogEntry]) -> str:
    points = [(n, e, valid, public) for n, e in enumerate(log, 1)
              if (valid := e.valid_score) is not None and e.metric in ("", comp.metric)
              and (public := _public(e)) is not None]
    title = "<h2>Validation against the leaderboard</h2>"
    if not points:
        return (f"{title}\n<p>No submission has both a validation score and a public leaderboard score yet: "
                f"upload one with <code>kc submit {_e(comp.slug)} --upload</code>.</p>")
    values = [v for _, _, valid, public in points for v in (valid, public)]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or max(abs(hi) * 0.05, 0.01)
    lo, hi = lo - pad, hi + pad
    size, left, top = 360, 70, 20  # the square plot, and room for the axis labels

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * size

    def y(v: float) -> float:
        return top + size - (v - lo) / (hi - lo) * size

    ticks = [lo + (hi - lo) * k / 4 for k in range(5)]
    grid = "".join(f'<line class="grid" x1="{x(t):.1f}" y1="{top}" x2="{x(t):.1f}" y2="{top + size}"/>'
                   f'<line class="grid" x1="{left}" y1="{y(t):.1f}" x2="{left + size}" y2="{y(t):.1f}"/>'
                   f'<text x="{x(t):.1f}" y="{top + size + 16}" text-anchor="middle">{_e(metric.format(t))}</text>'
                   f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{_e(metric.format(t))}</text>'
                   for t in ticks)
    dots = "".join(f'<circle cx="{x(valid):.1f}" cy="{y(public):.1f}" r="5"><title>#{n} {_e(e.file)}: validation '
                   f'{_e(metric.format(valid))}, public {_e(metric.format(public))}</title></circle>'
                   f'<text x="{x(valid) + 7:.1f}" y="{y(public) - 6:.1f}">#{n}</text>'
                   for n, e, valid, public in points)
    better = "above" if metric.higher_is_better else "below"
    svg = (f'<svg id="chart" viewBox="0 0 {left + size + 40} {top + size + 50}" width="{left + size + 40}" '
           f'role="img" aria-label="validation score against public leaderboard score">{grid}'
           f'<line class="same" x1="{x(lo):.1f}" y1="{y(lo):.1f}" x2="{x(hi):.1f}" y2="{y(hi):.1f}"/>'
           f'<rect class="axis" x="{left}" y="{top}" width="{size}" height="{size}" fill="none"/>{dots}'
           f'<text x="{left + size / 2}" y="{top + size + 40}" text-anchor="middle">validation {_e(metric.title)}'
           f'</text><text transform="translate(16 {top + size / 2}) rotate(-90)" text-anchor="middle">public '
           f"{_e(metric.title)}</text></svg>")
    return (f"{title}\n<p class=\"note\">Each point is a scored submission (numbered as in the table above); the "
            f"dashed line is where the two scores agree. Points {better} it did better on the leaderboard than in "
            f"validation.</p>\n{svg}")
