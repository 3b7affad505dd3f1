"""Where studies live and how kc reads them: Optuna storages, trials as kc results, a study's pictures."""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.competitions import Competition
from pipeline.core.errors import KcError, UsageError
from pipeline.core.figures import save as save_png
from pipeline.core.workspace import Workspace

if TYPE_CHECKING:
    import optuna

DB_NAME = "tune.db"  # the default storage: competitions/<slug>/tune.db
HEARTBEAT = 10  # seconds between a worker's signs of life in a database; silent for 3x as long = dead, its trial failed


@dataclass(frozen=True)
class TrialResult:
    """One trial of a study: its state, score, the kc run it recorded, and the options it tried."""

    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING or WAITING
    score: float | None
    run_id: str | None
    params: dict[str, Any]
    seconds: float | None
    note: str = ""  # why it was pruned or failed
    worker: str = ""  # host:pid of the process that ran it


@dataclass(frozen=True)
class TuneResult:
    """A study's trials, best first, and what this call did."""

    study: str
    storage: str  # password hidden
    metric: str
    budget: int | None
    trials: list[TrialResult]
    interrupted: bool = False
    problems: list[str] = field(default_factory=list)  # workers that stopped with an error, plots not drawn
    plots: list[Path] = field(default_factory=list)

    @property
    def best(self) -> TrialResult | None:
        """The best complete trial, if any."""
        return next((t for t in self.trials if t.state == "COMPLETE"), None)

    def count(self, state: str) -> int:
        """How many trials are in a state."""
        return sum(t.state == state for t in self.trials)


def storage_url(comp: Competition, ws: Workspace, storage: str | None) -> str:
    """The storage named, or the workspace's SQLite file for the competition."""
    if storage:
        return storage
    ws.data_dir(comp.slug).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{ws.data_dir(comp.slug) / DB_NAME}"


def shown(url: str) -> str:
    """A storage URL fit to print: its password hidden."""
    return re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", url)


def open_storage(url: str, heartbeat: int = HEARTBEAT) -> Any:
    """An Optuna storage: `journal:FILE` (or a .log file) for a journal file, else any SQLAlchemy database URL."""
    import optuna
    import sqlalchemy.exc

    if url.startswith("journal:") or (url.endswith(".log") and "://" not in url):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url.removeprefix("journal:")).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise UsageError(f"--storage {url}: expected a database URL (sqlite:///tune.db, postgresql://user@host/db, "
                         "mysql://user@host/db) or journal:FILE")
    scheme, rest = url.split("://", 1)
    database = url
    if scheme in ("postgres", "postgresql") and not find_spec("psycopg") and find_spec("psycopg2"):
        database = f"postgresql+psycopg2://{rest}"  # SQLAlchemy 2.1 defaults to psycopg 3; kc[postgres] has psycopg2
    # SQLite: wait for another worker's write instead of failing; servers: check pooled connections before use
    engine = {"connect_args": {"timeout": 60}} if scheme == "sqlite" else {"pool_pre_ping": True}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                return optuna.storages.RDBStorage(database, engine_kwargs=engine, heartbeat_interval=heartbeat,
                                                  grace_period=3 * heartbeat)
            except sqlalchemy.exc.SQLAlchemyError:  # workers starting together on a new database race to make tables
                time.sleep(1)
                return optuna.storages.RDBStorage(database, engine_kwargs=engine, heartbeat_interval=heartbeat,
                                                  grace_period=3 * heartbeat)
    except ImportError as exc:  # Optuna re-raises the driver's ModuleNotFoundError as a bare ImportError
        name = getattr(exc.__cause__, "name", None) or exc.name or "for it"
        extra = " (pip install 'kc[postgres]')" if scheme.startswith("postgres") else ""
        raise UsageError(f"--storage {shown(url)}: needs the database driver {name}; install it{extra}") from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        why = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise KcError(f"storage {shown(url)} cannot be opened ({why}); check the URL and that the database runs") \
            from None


def trial_result(t: optuna.trial.FrozenTrial) -> TrialResult:
    """One Optuna trial as kc shows it."""
    attrs, state = t.user_attrs, t.state.name
    note = ""
    if state == "PRUNED":
        note = f"pruned at epoch {attrs['pruned_at']}" if "pruned_at" in attrs else "pruned"
    elif state == "FAIL":
        note = attrs.get("error") or ("interrupted" if attrs.get("interrupted") else "its worker stopped mid-trial")
    seconds = (t.datetime_complete - t.datetime_start).total_seconds() \
        if t.datetime_complete and t.datetime_start else None
    return TrialResult(t.number, state, t.value if state == "COMPLETE" else None, attrs.get("run_id"),
                       dict(t.params), seconds, note, str(attrs.get("worker", "")))


def summary(study: optuna.Study, comp: Competition, url: str, **extra: Any) -> TuneResult:
    """The study's trials, complete ones best first, then the others by number; trials past the budget left out."""
    trials = [trial_result(t) for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("over_budget")]
    metric = comp.scorer
    trials.sort(key=lambda t: (t.state != "COMPLETE", metric.sort_key(t.score) if t.score is not None else 0,
                               t.number))
    return TuneResult(study.study_name, shown(url), comp.metric, study.user_attrs.get("budget"), trials, **extra)


def show(comp: Competition, ws: Workspace, storage: str | None = None, study: str | None = None,
         model: str | None = None) -> TuneResult:
    """A study's trials, best first, with its optimisation history and option importances drawn as PNGs."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    url = storage_url(comp, ws, storage)
    names = optuna.get_all_study_names(open_storage(url))
    mine = [n for n in names if n.startswith(f"{comp.slug}-")] or names
    name = study or (f"{comp.slug}-{model or comp.default_model}" if model or len(mine) != 1 else mine[0])
    if name not in names:
        known = f"it holds: {', '.join(names)}" if names else "it holds none yet"
        raise UsageError(f"no study '{name}' in {shown(url)} ({known}); run `kc tune {comp.slug} --trials 20` first, "
                         "or name one with --study")
    loaded = optuna.load_study(study_name=name, storage=open_storage(url))
    folder = ws.data_dir(comp.slug) / "tune"
    plots, problems = _draw(loaded, folder, re.sub(r"[^\w.-]", "_", name), comp.scorer.title, comp.scorer.percent)
    return summary(loaded, comp, url, plots=plots, problems=problems)


def _draw(study: optuna.Study, folder: Path, stem: str, target: str,
          percent: bool = False) -> tuple[list[Path], list[str]]:
    """Optuna's optimisation history and parameter importances as PNGs (written atomically)."""
    import optuna
    from matplotlib.ticker import FuncFormatter
    from optuna.visualization import matplotlib as figures

    from pipeline.core.figures import pyplot

    pyplot()  # the headless backend, before optuna draws

    written, problems = [], []
    charts: list[tuple[str, Callable[..., Any]]] = [("history", figures.plot_optimization_history),
                                                    ("importance", figures.plot_param_importances),
                                                    ("options", figures.plot_slice)]  # score against each option
    if len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))) < 2:
        charts, problems = charts[:1], ["no importance or options plot: they need two complete trials"]
    for what, draw in charts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                ax = draw(study, target_name=target)
            except (ValueError, RuntimeError) as exc:
                problems.append(f"no {what} plot: {str(exc).strip().splitlines()[0]}")
                continue
        if what == "options":  # one small scatter per option, side by side: one title over them all
            axes = list(getattr(ax, "flat", [ax]))
            fig = axes[0].figure
            for each in axes:
                each.set_title("")
            fig.suptitle(f"{study.study_name}: {target} against each option (darker: later trials)")
            fig.set_size_inches(max(6.0, 3.4 * len(axes) + 1.2), 4.2)
            if percent:
                axes[0].yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:.1f}%"))
        else:
            fig = ax.figure
            retitle(ax, study.study_name)
            if what == "history" and percent:  # scores in % like every other kc picture, not fractions
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:.1f}%"))
                ax.set_ylabel(f"{target} (%)")
            fig.set_size_inches(8, 5)
            fig.tight_layout()  # (optuna's options figure places its colour bar itself: tight_layout would break it)
        written.append(save_png(fig, folder / f"{stem}-{what}.png"))
    return written, problems


def retitle(ax: Any, study: str) -> str:
    """One title, `study: optuna's title`, in place of optuna's (set left, centre or right, so one more would
    print over it: "Hyperparameter Importancestitanic-knn:"); returns it."""
    theirs = " ".join(t for t in (ax.get_title(loc=loc) for loc in ("left", "center", "right")) if t)
    for loc in ("left", "center", "right"):
        ax.set_title("", loc=loc)
    title = f"{study}: {theirs.lower()}" if theirs else study
    ax.set_title(title)
    return title
