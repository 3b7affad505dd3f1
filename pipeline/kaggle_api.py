"""The only module that imports `kaggle`: lazily, quietly, with its failures turned into KaggleErrors."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.competitions import Competition
from pipeline.errors import KaggleError

SETTINGS_URL = "https://www.kaggle.com/settings"


def credentials_configured() -> bool:
    """True when any credential the kaggle client accepts is present (checked without importing it)."""
    env = os.environ
    if env.get("KAGGLE_API_TOKEN") or (env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY")):
        return True
    home = Path.home()
    config_dirs = [Path(env["KAGGLE_CONFIG_DIR"])] if env.get("KAGGLE_CONFIG_DIR") else []
    config_dirs += [home / ".kaggle", Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle"]
    candidates = [d / "kaggle.json" for d in config_dirs]
    candidates += [home / ".kaggle" / name for name in ("access_token", "access_token.txt", "credentials.json")]
    return any(p.is_file() and p.stat().st_size > 0 for p in candidates)


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Swallow what the kaggle package prints, so kc's own output stays clean."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        yield buffer


def _api() -> Any:
    """The authenticated KaggleApi, importing the package on first use."""
    with _quiet():
        try:
            import kaggle  # authenticates (and prints) on import
        except Exception as exc:  # the package raises bare Exceptions for bad config
            raise KaggleError(f"the kaggle client failed to start: {exc}") from None
    api = kaggle.api
    if not getattr(api, "_authenticated", False):
        raise KaggleError(
            f"no Kaggle credentials: create an API token at {SETTINGS_URL} and save it as "
            "~/.kaggle/kaggle.json (or set KAGGLE_USERNAME and KAGGLE_KEY)"
        )
    return api


def _explain(exc: Exception, comp: Competition, action: str) -> KaggleError:
    """One line saying what went wrong with a Kaggle call and what to do next."""
    import requests

    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status == 401:
        return KaggleError(
            f"Kaggle rejected your credentials (401) while trying to {action}: create a new API token "
            f"at {SETTINGS_URL} and save it as ~/.kaggle/kaggle.json"
        )
    if status == 403:
        return KaggleError(
            f"Kaggle refused to {action} (403): accept the rules at {comp.rules_url}, "
            f"then run the command again"
        )
    if status == 404:
        return KaggleError(f"Kaggle has no competition '{comp.slug}' (404) to {action}: check the slug")
    if status == 429:
        return KaggleError(
            f"Kaggle is rate-limiting you (429) while trying to {action}: wait a few minutes, then try again"
        )
    if status is not None:
        return KaggleError(f"Kaggle answered HTTP {status} while trying to {action}: try again later")
    if isinstance(exc, requests.exceptions.RequestException | OSError | ConnectionError):
        return KaggleError(
            f"cannot reach Kaggle to {action} ({type(exc).__name__}): check your network, "
            f"or use `kc fetch {comp.slug} --from FILE.zip` with a downloaded copy"
        )
    return KaggleError(f"the kaggle client failed to {action}: {exc}")


@contextlib.contextmanager
def _calling(comp: Competition, action: str) -> Iterator[None]:
    """Run a kaggle call quietly, translating every failure into a KaggleError."""
    try:
        with _quiet():
            yield
    except KaggleError:
        raise
    except Exception as exc:
        raise _explain(exc, comp, action) from None


def download(comp: Competition, dest: Path, retries: int = 5) -> Path:
    """Download the competition's zip into folder `dest`; return its path."""
    api = _api()
    from kagglesdk.competitions.types.competition_api_service import ApiDownloadDataFilesRequest

    outfile = dest / f"{comp.slug}.zip"
    with _calling(comp, f"download {comp.slug}"), api.build_kaggle_client() as client:
        request = ApiDownloadDataFilesRequest()
        request.competition_name = comp.slug
        response = client.competitions.competition_api_client.download_data_files(request)
        api.download_file(response, str(outfile), client.http_client(), quiet=True, max_retries=retries)
    return outfile


@dataclass(frozen=True)
class Limits:
    """How many submissions the user may still make today."""

    allowed_now: int
    today: int


def submission_limits(comp: Competition) -> Limits:
    """The user's remaining submissions for today."""
    api = _api()
    with _calling(comp, f"read the submission limits of {comp.slug}"):
        limits = api.competition_get_submission_limits(comp.slug)
    return Limits(allowed_now=limits.num_allowed_now, today=limits.num_today)


def submit(comp: Competition, path: Path, message: str) -> int:
    """Upload a submission file; return Kaggle's submission ref."""
    api = _api()
    with _calling(comp, f"submit to {comp.slug}"):
        result = api.competition_submit(str(path), message, comp.slug, quiet=True)
    if result.message == api.COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE or not result.ref:
        # the client reports a failed upload by returning a message, not by raising
        raise KaggleError(f"Kaggle did not accept the upload of {path.name}: {result.message or 'no reason given'}")
    return int(result.ref)


@dataclass(frozen=True)
class RemoteSubmission:
    """One submission as Kaggle lists it."""

    ref: int
    file_name: str
    description: str
    status: str  # PENDING, COMPLETE or ERROR
    public_score: str
    error: str


def list_submissions(comp: Competition) -> list[RemoteSubmission]:
    """The user's submissions to the competition, newest first."""
    api = _api()
    with _calling(comp, f"list your submissions to {comp.slug}"):
        items = api.competition_submissions(comp.slug) or []
    return [
        RemoteSubmission(
            ref=s.ref,
            file_name=s.file_name or "",
            description=s.description or "",
            status=s.status.name if s.status is not None else "PENDING",
            public_score=s.public_score or "",
            error=s.error_description or "",
        )
        for s in items
        if s is not None
    ]
