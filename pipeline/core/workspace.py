"""Where kc keeps fetched data, derived data, runs and submissions."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    """A workspace root holding `competitions/` and `submissions/`."""

    root: Path

    @classmethod
    def resolve(cls, root: str | Path | None = None) -> Workspace:
        """The workspace from an explicit path, then `KC_WORKSPACE`, then the current directory."""
        chosen = root or os.environ.get("KC_WORKSPACE") or Path.cwd()
        return cls(Path(chosen).expanduser().resolve())

    def data_dir(self, slug: str) -> Path:
        """Raw files as Kaggle serves them: `competitions/<slug>/`."""
        return self.root / "competitions" / slug

    def cache_dir(self, slug: str) -> Path:
        """Derived data (arrays, feature tables, PNGs)."""
        return self.data_dir(slug) / "derived"

    def runs_dir(self, slug: str) -> Path:
        """One folder per training run."""
        return self.data_dir(slug) / "runs"

    def competitions(self) -> list[str]:
        """The slugs fetched into this workspace (folders holding a finished fetch)."""
        root = self.root / "competitions"
        found = root.glob("[!.]*/.kc-fetch.json") if root.is_dir() else []
        return sorted(p.parent.name for p in found)

    def only_competition(self) -> str:
        """The one competition in the workspace, or a one-line error saying what to type instead."""
        from pipeline.core.errors import UsageError

        found = self.competitions()
        if len(found) == 1:
            return found[0]
        if found:
            raise UsageError(f"several competitions here ({', '.join(found)}): name one, e.g. `kc train {found[0]}`")
        if not (self.root / "competitions").is_dir():
            raise UsageError(f"no competitions/ in {self.root}: run `kc fetch titanic` here, or point "
                             "--workspace at the folder that holds competitions/")
        raise UsageError(f"no competition fetched in {self.root} yet: run `kc fetch titanic` first, or name one")

    def submissions_dir(self, slug: str) -> Path:
        """Written submission CSVs and their log."""
        return self.root / "submissions" / slug


def _umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def held(lock_file: Path, patience: float, busy: Exception) -> Iterator[None]:
    """Hold the file lock `lock_file` for the block; raise `busy` when another kc keeps it past `patience` seconds."""
    from filelock import FileLock, Timeout

    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_file))
    try:
        lock.acquire(timeout=patience)
    except Timeout:
        raise busy from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def atomic_path(target: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` only if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a written file gets the mode any new file would
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)
