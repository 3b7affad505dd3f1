"""Shared fixtures: an isolated home, fetched workspaces, the `kc` command line, and the fake Kaggle server."""

from __future__ import annotations

import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import Result

if TYPE_CHECKING:
    from pipeline.core.competitions import Competition

# Before anything imports `kaggle`: send its calls to loopback, and keep it away from the real home.
_HOME = Path(tempfile.mkdtemp(prefix="kc-test-home-"))
os.environ["HOME"] = str(_HOME)
os.environ["KAGGLE_API_ENVIRONMENT"] = "LOCALHOST"
os.environ["KAGGLE_CONFIG_DIR"] = str(_HOME / "kaggle-config")
os.environ["MPLBACKEND"] = "Agg"
for var in ("KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_API_TOKEN", "KC_WORKSPACE"):
    os.environ.pop(var, None)
# the kaggle package reads KAGGLE_USERNAME/KAGGLE_KEY once, when first imported
os.environ["KAGGLE_USERNAME"], os.environ["KAGGLE_KEY"] = "kc-test", "secret-key"
import pipeline  # noqa: E402,F401  kc's OpenMP waits, before any test module imports torch or scikit-learn

FIXTURES = Path(__file__).parent / "fixtures"
SLUGS = ("titanic", "digit-recognizer")


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """By default a test runs as a user with no Kaggle credentials."""
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.delenv("KAGGLE_KEY", raising=False)


def make_zip(slug: str, dest: Path) -> Path:
    """A Kaggle-style zip of the fixture files for `slug`."""
    path = dest / f"{slug}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted((FIXTURES / slug).iterdir()):
            zf.write(file, file.name)
    return path


def install(root: Path, slug: str) -> Path:
    """Fetch `slug`'s fixture files into the workspace at `root`, as `kc fetch SLUG --from FOLDER` does."""
    from pipeline.core.competitions import canonical
    from pipeline.core.workspace import Workspace
    from pipeline.ingest.sources import fetch

    return fetch(slug, Workspace(root), FIXTURES / canonical(slug)).folder


def trained_template(factory: pytest.TempPathFactory, slug: str, model: str, **params: object) -> tuple[Path, str]:
    """A workspace holding `slug` and one run of `model`, for a module's tests to copy (training once, not per
    test): (its root, the run's id)."""
    from pipeline.core.competitions import get
    from pipeline.core.workspace import Workspace
    from pipeline.training import records, trainer

    root = factory.mktemp(f"{slug}-{model}") / "ws"
    root.mkdir()
    install(root, slug)
    run = trainer.train(get(slug), Workspace(root), records.TrainConfig(model=model, params=dict(params)))
    return root, run.run_id


def copied_run(template: tuple[Path, str], tmp_path: Path) -> tuple[Path, object]:
    """A test's own copy of a `trained_template` workspace (it may damage or add to it), and the run read back."""
    import shutil

    from pipeline.core.workspace import Workspace
    from pipeline.training.records import read_run

    root = tmp_path / "ws"
    shutil.copytree(template[0], root, symlinks=True)
    slug = next(p.name for p in (root / "competitions").iterdir() if (p / "runs").is_dir())
    return root, read_run(Workspace(root).runs_dir(slug) / template[1])


def cut_tabular_fits(monkeypatch: pytest.MonkeyPatch, which: Callable[[Any], bool] = lambda _valid: True) -> None:
    """Make `tabular` fits end as if their time limit's deadline had stopped them after their best epoch: those
    `which` says yes to, given the fit's validation rows (None for a refit)."""
    from pipeline.models import tabular

    fit = tabular.TabularModel.fit

    def cut(self, X, y, X_valid=None, y_valid=None, on_epoch=None):
        fit(self, X, y, X_valid, y_valid, on_epoch)
        self.out_of_time_ = which(X_valid)
        return self

    monkeypatch.setattr(tabular.TabularModel, "fit", cut)


class Clock:
    """A monotonic clock that moves `step` seconds each time it is read: time limits become counts, not timings.

    Set it as a module's `time` (monkeypatch.setattr(lgbm, "time", Clock(0.05))); perf_counter stays real."""

    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def monotonic(self) -> float:
        """The time, one step later than last read."""
        self.now += self.step
        return self.now

    perf_counter = staticmethod(time.perf_counter)


def non_dot(folder: Path) -> list[str]:
    """The names in a folder, without dot-files (fetch keeps its lock file beside the competition folders)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []


def tiles(root: Path, test_ids: tuple[str, ...] = ("91", "92", "93")) -> Competition:
    """A 2×2 pixel competition with ids in test.csv, fetched into the workspace at `root`."""
    from pipeline.core.workspace import Workspace
    from pipeline.ingest import sources

    src = root.parent / "tiles-files"
    src.mkdir()
    header = "pixel0,pixel1,pixel2,pixel3"
    rows = [f"{i},{i % 2},{i},{i},{i},{i}" for i in range(20)]
    (src / "train.csv").write_text(f"ImageId,label,{header}\n" + "\n".join(rows) + "\n")
    (src / "test.csv").write_text(f"ImageId,{header}\n" + "".join(f"{i},1,2,3,4\n" for i in test_ids))
    (src / "sample_submission.csv").write_text("ImageId,Label\n" + "".join(f"{i},0\n" for i in sorted(set(test_ids))))
    return sources.fetch("tiles", Workspace(root), src).competition


@pytest.fixture
def kc() -> Callable[..., Result]:
    """The kc command line, run in-process: `kc("train", "titanic", ws=root)` -> click's Result (exit code,
    stdout and stderr apart); `ws` becomes `--workspace ws`."""
    from typer.testing import CliRunner

    from pipeline.cli.app import app

    runner = CliRunner()

    def invoke(*args: str | Path, ws: Path | None = None) -> Result:
        prefix = ["--workspace", str(ws)] if ws is not None else []
        return runner.invoke(app, [*prefix, *(str(a) for a in args)])

    return invoke


@pytest.fixture
def fixture_zips(tmp_path: Path) -> dict[str, Path]:
    """Zips of both competitions' fixture files."""
    folder = tmp_path / "zips"
    folder.mkdir()
    return {slug: make_zip(slug, folder) for slug in SLUGS}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """An empty workspace root."""
    root = tmp_path / "ws"
    root.mkdir()
    return root


@pytest.fixture
def fetched(workspace: Path) -> Path:
    """A workspace with both competitions' fixture files fetched."""
    for slug in SLUGS:
        install(workspace, slug)
    return workspace


@pytest.fixture
def titanic_only(workspace: Path) -> Path:
    """A workspace with Titanic's fixture files fetched, and nothing else (so commands may omit the slug)."""
    install(workspace, "titanic")
    return workspace


@pytest.fixture
def kaggle_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator:
    """The fake Kaggle server, with credentials set and the kaggle client pointed at it."""
    from fake_kaggle import FakeKaggle, serve
    from kagglesdk.kaggle_env import KaggleEnv, _env_to_endpoint

    state = FakeKaggle(zips={slug: make_zip(slug, tmp_path).read_bytes() for slug in SLUGS})
    server, _ = serve(state)
    monkeypatch.setitem(_env_to_endpoint, KaggleEnv.LOCAL, state.endpoint)
    monkeypatch.setenv("KAGGLE_USERNAME", state.username)
    monkeypatch.setenv("KAGGLE_KEY", state.key)
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def run_through(kc: Callable[..., Result], ws: Path, name: str, *options: str) -> Any:
    """`kc train NAME OPTIONS`, submit, validate the written file; return it as text cells (a DataFrame)."""
    import pandas as pd

    trained = kc("train", name, *options, ws=ws)
    assert trained.exit_code == 0, trained.output
    submitted = kc("submit", name, ws=ws)
    assert submitted.exit_code == 0, submitted.output
    written = sorted((ws / "submissions" / name).glob("*.csv"))[-1]
    checked = kc("validate", name, str(written), ws=ws)
    assert checked.exit_code == 0, checked.output
    return pd.read_csv(written, dtype=str, keep_default_na=False)
