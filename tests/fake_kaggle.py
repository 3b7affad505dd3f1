"""A fake Kaggle API server on loopback, speaking the JSON the real `kaggle` client (2.2.4) sends and expects."""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SERVICE = "/api/v1/competitions.CompetitionApiService/"
INTROSPECT = "/api/v1/security.OAuthService/IntrospectToken"


@dataclass
class FakeKaggle:
    """State and failure switches of the fake server; tests change these between calls."""

    username: str = "kc-test"
    key: str = "secret-key"
    token: str = "kc-test-token"  # the one API token (KAGGLE_API_TOKEN) the server accepts
    zips: dict[str, bytes] = field(default_factory=dict)  # slug -> zip bytes
    metrics: dict[str, str] = field(default_factory=dict)  # slug -> the evaluation metric GetCompetition names
    fail: dict[str, int] = field(default_factory=dict)  # method name (or "file") -> HTTP status to answer
    cut_downloads: int = 0  # how many file downloads to cut short (after half the bytes)
    fail_uploads: int = 0  # how many blob uploads to refuse with HTTP 500
    # method names (or "file", "upload") to accept and never answer, until the server shuts down
    stall: set[str] = field(default_factory=set)
    # method names (or "file") whose answer is sent one byte every `trickle_gap` seconds, headers first
    trickle: set[str] = field(default_factory=set)
    trickle_gap: float = 0.4
    # method name -> the raw body to answer it with (HTTP 200), instead of the real answer
    replies: dict[str, bytes] = field(default_factory=dict)
    allowed_today: int = 5
    polls_until_scored: int = 1  # list calls that still show a new submission as PENDING
    public_score: str = "0.98765"
    submissions: list[dict[str, Any]] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # upload token -> the file name sent (Kaggle lists it)
    calls: list[str] = field(default_factory=list)
    port: int = 0

    @property
    def endpoint(self) -> str:
        """The base URL to put in kagglesdk's LOCAL endpoint."""
        return f"http://127.0.0.1:{self.port}"


class _Handler(BaseHTTPRequestHandler):
    state: FakeKaggle

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _json(self, status: int, body: dict[str, Any], raw: bytes | None = None, name: str = "") -> None:
        data = json.dumps(body).encode() if raw is None else raw
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self._send(data, name)

    def _send(self, data: bytes, name: str) -> None:
        """Write a body: at once, or one byte at a time when `name` is in `state.trickle` (until shutdown)."""
        if name not in self.state.trickle:
            self.wfile.write(data)
            return
        for i in range(len(data)):
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()
            if self.server.released.wait(self.state.trickle_gap):  # type: ignore[attr-defined]
                self.close_connection = True
                return

    def _authorised(self) -> bool:
        expected = base64.b64encode(f"{self.state.username}:{self.state.key}".encode()).decode()
        return self.headers.get("Authorization") in (f"Basic {expected}", f"Bearer {self.state.token}")

    def _stalled(self, name: str) -> bool:
        """Hold a request named in `state.stall` without answering, until the server shuts down."""
        if name not in self.state.stall:
            return False
        self.server.released.wait()  # type: ignore[attr-defined]
        self.close_connection = True
        return True

    def do_POST(self) -> None:
        s = self.state
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path == INTROSPECT:
            s.calls.append("IntrospectToken")
            if self._stalled("IntrospectToken"):
                return None
            if body.get("token") == s.token:
                return self._json(200, {"active": True, "username": s.username})
            return self._json(200, {"active": False})
        if not self.path.startswith(SERVICE):
            return self._json(404, {"code": 404, "message": "no such service"})
        method = self.path[len(SERVICE):]
        s.calls.append(method)
        if self._stalled(method):
            return None
        if not self._authorised():
            return self._json(401, {"code": 401, "message": "Unauthenticated"})
        if method in s.fail:
            status = s.fail[method]
            return self._json(status, {"code": status, "message": f"fake failure {status}"})
        if method in s.replies:
            return self._json(200, {}, raw=s.replies[method])
        if method in s.trickle:
            answer = self._answer(method, body)
            return self._json(200, {}, raw=answer, name=method)
        return self._reply(method, body)

    def _answer(self, method: str, body: dict[str, Any]) -> bytes:
        """The body the server would send for `method`, captured to be trickled."""
        import io

        real, self.wfile = self.wfile, io.BytesIO()
        try:
            self._reply(method, body)
            return self.wfile.getvalue().split(b"\r\n\r\n", 1)[1]
        finally:
            self.wfile = real

    def _reply(self, method: str, body: dict[str, Any]) -> None:
        s = self.state
        slug = body.get("competitionName", "")
        if slug not in s.zips and method != "CreateSubmission":
            return self._json(404, {"code": 404, "message": f"Competition {slug} not found"})
        if method == "DownloadDataFiles":
            self.send_response(302)
            self.send_header("Location", f"{s.endpoint}/files/{slug}.zip")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if method == "StartSubmissionUpload":
            token = f"blob-{len(s.uploads) + 1}"
            s.uploads[token] = b""
            s.names[token] = body.get("fileName", f"{token}.csv")
            return self._json(200, {"token": token, "createUrl": f"{s.endpoint}/upload/{token}"})
        if method == "CreateSubmission":
            token = body.get("blobFileTokens", "")
            if token not in s.uploads or not s.uploads[token]:
                return self._json(400, {"code": 400, "message": "unknown upload"})
            ref = 1000 + len(s.submissions)
            s.submissions.insert(0, {"ref": ref, "fileName": s.names.get(token, ""), "competition": slug,
                                     "description": body.get("submissionDescription", ""), "status": "PENDING",
                                     "polls": 0, "content": s.uploads[token]})
            s.allowed_today -= 1
            return self._json(200, {"message": "Successfully submitted", "ref": ref})
        if method == "ListSubmissions":
            items = []
            for sub in s.submissions:
                if sub["competition"] != slug:
                    continue
                sub["polls"] += 1
                if sub["status"] == "PENDING" and sub["polls"] > s.polls_until_scored:
                    sub["status"] = "COMPLETE"
                item = {"ref": sub["ref"], "fileName": sub["fileName"], "description": sub["description"],
                        "status": sub["status"]}
                if sub["status"] == "COMPLETE":
                    item["publicScore"] = s.public_score
                items.append(item)
            return self._json(200, {"submissions": items})
        if method == "GetCompetition":
            return self._json(200, {"ref": slug, "title": slug, "evaluationMetric": s.metrics.get(slug, "")})
        if method == "GetSubmissionLimits":
            return self._json(200, {"numToday": 5 - s.allowed_today, "numTotal": len(s.submissions),
                                    "numAllowedNow": max(0, s.allowed_today)})
        return self._json(404, {"code": 404, "message": f"fake server has no {method}"})

    def do_GET(self) -> None:
        s = self.state
        if not self.path.startswith("/files/"):
            return self._json(404, {"code": 404, "message": "not found"})
        if self._stalled("file"):
            return None
        if "file" in s.fail:
            status = s.fail["file"]
            return self._json(status, {"code": status, "message": f"fake failure {status}"})
        data = s.zips[self.path[len("/files/"):].removesuffix(".zip")]
        start = 0
        if self.headers.get("Range", "").startswith("bytes="):
            start = int(self.headers["Range"][6:].split("-")[0])
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", '"fake-etag"')
        self.send_header("Last-Modified", formatdate(usegmt=True))
        self.end_headers()
        if "file" in s.trickle:
            return self._send(data[start:], "file")
        if s.cut_downloads > 0:
            s.cut_downloads -= 1
            self.wfile.write(data[start : start + (len(data) - start) // 2])
            self.wfile.flush()
            self.close_connection = True
            return None
        self.wfile.write(data[start:])
        return None

    def do_PUT(self) -> None:
        s = self.state
        token = self.path.rsplit("/", 1)[-1]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self._stalled("upload"):
            return None
        if s.fail_uploads > 0:
            s.fail_uploads -= 1
            return self._json(500, {"code": 500, "message": "upload failed"})
        s.uploads[token] = body
        return self._json(200, {})


class _Server(ThreadingHTTPServer):
    """A threading server whose shutdown also releases the handlers held by `state.stall`."""

    daemon_threads = True
    block_on_close = False  # server_close() must not wait for a handler still stuck on a dead client

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.released = threading.Event()

    def shutdown(self) -> None:
        self.released.set()
        super().shutdown()


def serve(state: FakeKaggle) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start the fake server on a free loopback port; `state.port` is filled in."""
    handler = type("Handler", (_Handler,), {"state": state})
    server = _Server(("127.0.0.1", 0), handler)
    state.port = server.server_address[1]
    # a short poll interval, so that shutdown() returns at once rather than after up to half a second
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread
