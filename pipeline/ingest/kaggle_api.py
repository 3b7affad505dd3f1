"""The only module that imports `kaggle`: lazily, quietly, with bounded waits, its failures turned into KaggleErrors."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import os
import re
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pipeline.core.competitions import Competition
from pipeline.core.errors import KaggleError, KcError, UsageError

SETTINGS_URL = "https://www.kaggle.com/settings"
CONNECT_TIMEOUT = 10.0  # seconds to open a connection to Kaggle
READ_TIMEOUT = 60.0  # seconds to wait for an answer, or for the next chunk of a download
TIMEOUT_ENV = "KC_KAGGLE_TIMEOUT"  # seconds; replaces READ_TIMEOUT (and CONNECT_TIMEOUT, when smaller)
MAX_TIMEOUT = 86_400  # a day: sockets cannot wait past what the platform's time_t holds
MIN_RATE = 10_000  # bytes a second a transfer must average once its first deadline has passed
T = TypeVar("T")


def timeouts() -> tuple[float, float]:
    """The (connect, read) timeout of every request to Kaggle, in seconds."""
    raw = os.environ.get(TIMEOUT_ENV, "")
    if not raw:
        return CONNECT_TIMEOUT, READ_TIMEOUT
    try:
        read = float(raw)
    except ValueError:
        read = math.nan
    if not (math.isfinite(read) and 0 < read <= MAX_TIMEOUT):
        raise UsageError(f"{TIMEOUT_ENV} must be a number of seconds above 0 (at most {MAX_TIMEOUT:,}), not {raw!r}")
    return min(CONNECT_TIMEOUT, read), read


def deadline() -> float:
    """Seconds one Kaggle call may take in all: a server trickling its answer byte by byte still ends there."""
    connect, read = timeouts()
    return connect + 2 * read


class _Overrun(Exception):
    """A Kaggle call ran past its overall deadline."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"{seconds:g} s")
        self.seconds = seconds


def _bounded(call: Callable[[], T], budget: float, done: Callable[[], int] | None = None) -> T:
    """`call()` run in a helper thread, given up after `budget` seconds; with `done` (bytes so far), it may go on
    past that while it averages MIN_RATE bytes a second. A thread left behind is a daemon and ends with kc."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the caller, which translates it
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="kc-kaggle-call", daemon=True)
    start = time.monotonic()
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
        late = time.monotonic() - start - budget
        if late > 0 and worker.is_alive() and (done is None or done() < MIN_RATE * late):
            raise _Overrun(round(time.monotonic() - start))
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# Credentials: kc finds the files where kaggle 2.2.4 looks, so it can name a broken one before the client
# swallows the problem and reports no credentials at all.


def _config_file() -> Path:
    """The kaggle.json the client reads (it fixes the folder when first imported)."""
    client = sys.modules.get("kaggle")
    if client is not None:
        return Path(client.api.config)
    env, home = os.environ, Path.home()
    if env.get("KAGGLE_CONFIG_DIR"):
        return Path(env["KAGGLE_CONFIG_DIR"]) / "kaggle.json"
    if sys.platform.startswith("linux") and not (home / ".kaggle").exists():
        return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle" / "kaggle.json"
    return home / ".kaggle" / "kaggle.json"


def _token_files() -> list[Path]:
    """Where the client looks for an API token when KAGGLE_API_TOKEN is not set."""
    return [Path.home() / ".kaggle" / name for name in ("access_token", "access_token.txt")]


def _oauth_file() -> Path:
    """Where `kaggle auth login` keeps its OAuth credentials."""
    return Path.home() / ".kaggle" / "credentials.json"


def _nonempty(path: Path) -> bool:
    """True for a file with something in it."""
    return path.is_file() and path.stat().st_size > 0


def _token_source() -> str | None:
    """Where the client will take an API token from (KAGGLE_API_TOKEN or a file), or None."""
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    for path in filter(_nonempty, _token_files()):
        with contextlib.suppress(OSError, ValueError):
            if not path.read_text().strip():
                continue  # the client skips a blank token file
        return str(path)
    return None


def credentials_configured() -> bool:
    """True when the user has set up Kaggle credentials, usable or not (a call then names what is wrong)."""
    env = os.environ
    # one of username and key counts too, so that the other's absence is named instead of ignored
    if env.get("KAGGLE_API_TOKEN") or env.get("KAGGLE_USERNAME") or env.get("KAGGLE_KEY"):
        return True
    # a kaggle.json counts even when empty or broken, so that its problem is named instead of ignored;
    # a blank token file does not (the client skips it too)
    return _config_file().is_file() or _token_source() is not None or _nonempty(_oauth_file())


def credentials_warning() -> str | None:
    """A one-line warning when other users of this computer can read a Kaggle credential file; else None."""
    if os.name == "nt":
        return None
    files = [_config_file(), *_token_files(), _oauth_file()]
    token = os.environ.get("KAGGLE_API_TOKEN", "")
    if token and Path(token).is_file():
        files.append(Path(token))
    for path in files:
        if path.is_file() and path.stat().st_mode & 0o077:
            return (f"other users of this computer can read your Kaggle credentials in {path}: "
                    f"run `chmod 600 {shlex.quote(str(path))}`")
    return None


def _token_problem(value: str) -> str | None:
    """What is wrong with the value of KAGGLE_API_TOKEN (a token, or the path of a file holding one), or None."""
    new_token = f"create a new API token at {SETTINGS_URL}"
    path = Path(value)
    if path.exists():  # the client reads the token from the file the variable names
        if path.is_dir():
            return f"KAGGLE_API_TOKEN names the folder {value}, not a token or a file holding one: {new_token}"
        try:
            if not path.read_text().strip():
                return f"KAGGLE_API_TOKEN names {value}, which is empty: save your token there, or {new_token}"
        except (OSError, ValueError) as exc:
            return f"KAGGLE_API_TOKEN names {value}, which kc cannot read ({exc}): fix it, or {new_token}"
        return None
    if value.lstrip().startswith("{"):
        return ("KAGGLE_API_TOKEN holds JSON, not a token: save that JSON as ~/.kaggle/kaggle.json instead, "
                "or set KAGGLE_API_TOKEN to the token alone")
    if not re.fullmatch(r"[\w.+=~/-]+", value, re.ASCII):
        return f"KAGGLE_API_TOKEN is not an API token (it holds spaces or other stray characters): {new_token}"
    if value.startswith(("~", ".")) or "/" in value or "\\" in value:
        return f"KAGGLE_API_TOKEN names the file {value}, which does not exist (a leading ~ is not expanded)"
    return None


def _read_config(path: Path) -> tuple[dict[str, Any], str | None]:
    """The values in the kaggle.json at `path`, and what stops it giving a username and key (None if nothing)."""
    fix = f"save the API token from {SETTINGS_URL} there (it holds {{\"username\": ..., \"key\": ...}})"
    try:
        text = path.read_text()
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return {}, f"{path} is {'empty' if not text.strip() else f'not valid JSON at line {exc.lineno}'}: {fix}"
    except (OSError, ValueError) as exc:
        return {}, f"kc cannot read {path} ({exc}): {fix}"
    if not isinstance(data, dict):
        return {}, f"{path} does not hold a JSON object: {fix}"
    missing = [repr(name) for name in ("username", "key") if not data.get(name)]
    return data, f"{path} has no {' or '.join(missing)}: {fix}" if missing else None


def _credentials_problem() -> str | None:
    """Why the credentials set up cannot work, found without asking Kaggle; None when they may."""
    env = os.environ
    if env.get("KAGGLE_API_TOKEN"):
        return _token_problem(env["KAGGLE_API_TOKEN"])
    if _token_source() is not None or _oauth_file().is_file():
        return None  # only Kaggle can say whether these work
    path = _config_file()
    values, problem = _read_config(path) if path.is_file() else ({}, None)
    # as in the client, the environment's values override the file's
    username, key = env.get("KAGGLE_USERNAME") or values.get("username"), env.get("KAGGLE_KEY") or values.get("key")
    if username and key:
        return None
    if problem is not None:
        return problem
    if username or key:
        given, needed = ("KAGGLE_USERNAME", "KAGGLE_KEY") if username else ("KAGGLE_KEY", "KAGGLE_USERNAME")
        return f"{given} is set but {needed} is not: set both, from the API token saved at {SETTINGS_URL}"
    return None


# Timeouts: kagglesdk and the kaggle package send without any, so a server that never answers hangs them.


@functools.cache
def _timeout_adapter() -> type:
    """A requests HTTPAdapter that sends every request lacking a timeout with kc's (built on first use)."""
    from requests.adapters import HTTPAdapter

    class TimeoutAdapter(HTTPAdapter):
        """Adds kc's (connect, read) timeout to each request sent without one (redirects included)."""

        def send(self, request: Any, stream: bool = False, timeout: Any = None,  # type: ignore[override]
                 **kwargs: Any) -> Any:
            return super().send(request, stream=stream, timeout=timeouts() if timeout is None else timeout, **kwargs)

    return TimeoutAdapter


def _mount_timeouts(session: Any) -> None:
    """Route a requests session's http(s) traffic through the timeout adapter, once."""
    adapter_class = _timeout_adapter()
    if not isinstance(session.get_adapter("https://"), adapter_class):
        adapter = adapter_class()
        session.mount("https://", adapter)
        session.mount("http://", adapter)


def _bound_kaggle_sessions() -> None:
    """Give the session of every kagglesdk client kc's timeouts, including clients the kaggle package builds.

    KaggleHttpClient opens its requests.Session in `_init_session`, which runs before every call; wrapping
    that one method covers kc's calls and the package's own (the token check it runs on import, limits,
    listings), where a per-call fix could not reach.
    """
    from kagglesdk.kaggle_http_client import KaggleHttpClient

    init = getattr(KaggleHttpClient, "_init_session", None)
    if init is None:
        raise KaggleError("kc cannot set timeouts on this kaggle client: reinstall kc, which needs kaggle==2.2.4")
    if getattr(init, "kc_bounded", False):
        return

    @functools.wraps(init)
    def init_bounded(self: Any) -> Any:
        session = init(self)
        _mount_timeouts(self._session)
        return session

    init_bounded.kc_bounded = True  # type: ignore[attr-defined]
    KaggleHttpClient._init_session = init_bounded


# Calls


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Swallow what the kaggle package prints, so kc's own output stays clean."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        yield buffer


def _api() -> Any:
    """The KaggleApi, authenticated with the credentials set up now; imports the package on first use."""
    timeouts()  # a bad KC_KAGGLE_TIMEOUT fails before anything is sent
    problem = _credentials_problem()
    if problem is not None:
        raise KaggleError(problem)
    _bound_kaggle_sessions()  # before the import, which may already ask Kaggle about a token
    just_imported = "kaggle" not in sys.modules
    with _quiet():
        try:
            import kaggle  # authenticates (and prints) on import
        except Exception as exc:  # the package raises bare Exceptions for bad config
            raise KaggleError(f"the kaggle client failed to start: {exc}") from None
    api = kaggle.api
    found = True
    if not (just_imported and api._authenticated):  # credentials may have changed since the import
        try:
            with _calling("check your Kaggle credentials"):
                _bounded(api.authenticate, deadline())
        except SystemExit:  # authenticate() exits when no credential works
            found = False
    source = _token_source()
    if source is not None and not api.config_values.get(api.CONFIG_NAME_TOKEN):
        # ignored by the package, yet its HTTP client would still send it, and fail with 401
        raise KaggleError(f"Kaggle did not accept the API token in {source} (invalid or expired): "
                          f"create a new one at {SETTINGS_URL}")
    if not found:
        raise KaggleError(
            f"no Kaggle credentials: create an API token at {SETTINGS_URL} and save it as "
            "~/.kaggle/kaggle.json (or set KAGGLE_USERNAME and KAGGLE_KEY)"
        )
    return api


def _timed_out(exc: Exception) -> float | None:
    """The timeout, in seconds, that `exc` says ran out; None when it is not a timeout."""
    import requests
    import urllib3

    connect, read = timeouts()
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return connect
    if isinstance(exc, requests.exceptions.Timeout | urllib3.exceptions.TimeoutError | TimeoutError):
        return read
    # a timeout while streaming a download's body arrives as a ConnectionError around urllib3's ReadTimeoutError
    if isinstance(exc, requests.exceptions.ConnectionError) and any(
        isinstance(arg, urllib3.exceptions.TimeoutError) for arg in exc.args
    ):
        return read
    return None


def _explain(exc: Exception, action: str, slug: str | None, hint: str) -> KaggleError:
    """One line saying what went wrong with a Kaggle call and what to do next."""
    import requests

    if isinstance(exc, _Overrun):
        return KaggleError(f"Kaggle was still answering after {exc.seconds:g} s while trying to {action} (too slowly "
                           f"to finish): check your network and try again{hint}")
    waited = _timed_out(exc)
    if waited is not None:
        return KaggleError(f"Kaggle did not answer within {waited:g} s while trying to {action}: "
                           f"check your network and try again{hint}")
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(exc, ValueError) and status is None and "JSON" in type(exc).__name__:
        return KaggleError(f"Kaggle answered with something that is not JSON while trying to {action}: "
                           "try again later")
    if status == 401:
        return KaggleError(
            f"Kaggle rejected your credentials (401) while trying to {action}: create a new API token "
            f"at {SETTINGS_URL} and save it as ~/.kaggle/kaggle.json"
        )
    if status == 403 and slug is not None:
        return KaggleError(
            f"Kaggle refused to {action} (403): accept the rules at https://www.kaggle.com/competitions/{slug}/rules, "
            f"then run the command again"
        )
    if status == 404 and slug is not None:
        return KaggleError(f"Kaggle has no competition '{slug}' (404) to {action}: check the slug")
    if status == 429:
        return KaggleError(
            f"Kaggle is rate-limiting you (429) while trying to {action}: wait a few minutes, then try again"
        )
    if status is not None:
        return KaggleError(f"Kaggle answered HTTP {status} while trying to {action}: try again later")
    if isinstance(exc, requests.exceptions.RequestException | OSError | ConnectionError):
        return KaggleError(f"cannot reach Kaggle to {action} ({type(exc).__name__}): check your network{hint}")
    return KaggleError(f"the kaggle client failed to {action}: {exc}")


@contextlib.contextmanager
def _calling(action: str, slug: str | None = None, offline: bool = False) -> Iterator[None]:
    """Run kaggle calls quietly, translating every failure into a KaggleError; `offline` adds the --from hint."""
    hint = f", or use `kc fetch {slug} --from FILE.zip` with a downloaded copy" if offline else ""
    try:
        with _quiet():
            yield
    except KcError:
        raise
    except Exception as exc:
        raise _explain(exc, action, slug, hint) from None


def download(slug: str, dest: Path, retries: int = 5) -> Path:
    """Download the competition's zip into folder `dest`; return its path."""
    api = _api()
    from kagglesdk.competitions.types.competition_api_service import ApiDownloadDataFilesRequest

    outfile = dest / f"{slug}.zip"

    def fetched() -> None:
        with api.build_kaggle_client() as client:
            request = ApiDownloadDataFilesRequest()
            request.competition_name = slug
            response = client.competitions.competition_api_client.download_data_files(request)
            # the client's own retries (after a cut) use plain requests calls, bounded by this timeout
            api.download_file(response, str(outfile), client.http_client(), quiet=True, max_retries=retries,
                              timeout=timeouts())

    def written() -> int:
        with contextlib.suppress(OSError):
            return outfile.stat().st_size
        return 0

    with _calling(f"download {slug}", slug, offline=True):
        _bounded(fetched, deadline(), written)  # a download goes on while it averages MIN_RATE
    return outfile


def evaluation_metric(slug: str) -> str | None:
    """The competition's evaluation metric as Kaggle names it ("MulticlassLoss"), or None when Kaggle does not say."""
    api = _api()
    from kagglesdk.competitions.types.competition_api_service import ApiGetCompetitionRequest

    def asked() -> Any:
        with api.build_kaggle_client() as client:
            request = ApiGetCompetitionRequest()
            request.competition_name = slug
            return client.competitions.competition_api_client.get_competition(request)

    with _calling(f"read the evaluation metric of {slug}", slug):
        found = _bounded(asked, deadline())
    return (getattr(found, "evaluation_metric", "") or "").strip() or None


@dataclass(frozen=True)
class Limits:
    """How many submissions the user may still make today."""

    allowed_now: int
    today: int


def submission_limits(comp: Competition) -> Limits:
    """The user's remaining submissions for today."""
    api = _api()
    with _calling(f"read the submission limits of {comp.slug}", comp.slug):
        limits = _bounded(lambda: api.competition_get_submission_limits(comp.slug), deadline())
    allowed, today = getattr(limits, "num_allowed_now", None), getattr(limits, "num_today", None)
    if not (isinstance(allowed, int) and isinstance(today, int)) or \
            not all(type(v) is int and 0 <= v < 1 << 31 for v in (allowed, today)):
        counts = f"{shown_reply(repr(allowed))} allowed now, {shown_reply(repr(today))} made today"
        raise KaggleError(f"Kaggle's answer about the submission limits of {comp.slug} holds no counts ({counts}): "
                          "try again later")
    return Limits(allowed_now=allowed, today=today)


def _upload(url: str, path: Path) -> int:
    """PUT the file to the upload URL Kaggle handed out (without Kaggle credentials); return the HTTP status."""
    import requests

    with requests.Session() as session, path.open("rb") as body:
        _mount_timeouts(session)
        return session.put(url, data=body).status_code


def submit(comp: Competition, path: Path, message: str) -> int:
    """Upload a submission file; return Kaggle's submission ref."""
    api = _api()
    from kagglesdk.competitions.types.competition_api_service import (
        ApiCreateSubmissionRequest,
        ApiStartSubmissionUploadRequest,
    )

    def steps() -> Any:  # those of api.competition_submit, whose upload session retries a silent server for minutes
        with api.build_kaggle_client() as client:
            service = client.competitions.competition_api_client
            start = ApiStartSubmissionUploadRequest()
            start.competition_name = comp.slug
            start.file_name = path.name
            start.content_length = path.stat().st_size
            start.last_modified_epoch_seconds = int(path.stat().st_mtime)
            upload = service.start_submission_upload(start)
            status = _upload(upload.create_url, path)
            if status not in (200, 201):
                raise KaggleError(f"Kaggle did not accept the upload of {path.name}: "
                                  f"{api.COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE} (HTTP {status}), try again later")
            create = ApiCreateSubmissionRequest()
            create.competition_name = comp.slug
            create.blob_file_tokens = upload.token
            if message:
                create.submission_description = message
            return service.create_submission(create)

    with _calling(f"submit to {comp.slug}", comp.slug):
        result = _bounded(steps, 3 * deadline() + path.stat().st_size / MIN_RATE)  # three calls and the file
    ref = getattr(result, "ref", None)
    if not ref:
        reason = shown_reply(getattr(result, "message", "")) or "no reason given"
        raise KaggleError(f"Kaggle did not accept the upload of {path.name}: {reason}")
    if not ((type(ref) is int and ref > 0) or (isinstance(ref, str) and ref.isascii() and ref.isdigit())):
        raise KaggleError(f"Kaggle accepted {path.name} but answered with the ref {shown_reply(repr(ref))}, not a "
                          f"submission number: see https://www.kaggle.com/competitions/{comp.slug}/submissions; "
                          "do not upload it again")
    return int(ref)


def shown_reply(value: object) -> str:
    """A value from a server's reply as an error message quotes it: printable, cut to 60 characters."""
    text = "".join(c if c.isprintable() else "?" for c in str(value or ""))
    return text if len(text) <= 60 else text[:60] + "…"


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
    with _calling(f"list your submissions to {comp.slug}", comp.slug):
        items = _bounded(lambda: api.competition_submissions(comp.slug), deadline()) or []
    return [
        RemoteSubmission(
            ref=int(s.ref),
            file_name=s.file_name or "",
            description=s.description or "",
            status=s.status.name if s.status is not None else "PENDING",
            public_score=s.public_score or "",
            error=s.error_description or "",
        )
        for s in items
        if s is not None and (type(s.ref) is int or (isinstance(s.ref, str) and s.ref.isascii() and s.ref.isdigit()))
    ]
