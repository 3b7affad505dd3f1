"""Shared fixtures: an isolated home, workspaces with fixture data, and the fake Kaggle server."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

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

FIXTURES = Path(__file__).parent / "fixtures"
SLUGS = ("titanic", "digit-recognizer")


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """By default a test runs as a user with no Kaggle credentials."""
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.delenv("KAGGLE_KEY", raising=False)


def make_zip(slug: str, dest: Path) -> Path:
    """A Kaggle-style zip of the fixture CSVs for `slug`."""
    path = dest / f"{slug}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for csv in sorted((FIXTURES / slug).glob("*.csv")):
            zf.write(csv, csv.name)
    return path


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
        dest = workspace / "competitions" / slug
        shutil.copytree(FIXTURES / slug, dest)
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
