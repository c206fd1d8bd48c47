"""Test helpers: a loopback fake of the Hugging Face Hub file endpoint, and a pre-filled Hub cache.

The fake Hub answers ``HEAD`` and ``GET /{org}/{name}/resolve/{revision}/{filename}`` the way the
real Hub does for plain (non-Xet) files, so huggingface_hub's real download code runs against it:

    with FakeHub() as hub:
        hub.add_file("org/name", "model.safetensors", data)
        resolve_model_file(HubFile("org/name", "model.safetensors", SHA), endpoint=hub.endpoint, ...)
        assert [r.method for r in hub.requests] == [...]

Refusals use the real status codes and ``X-Error-Code`` headers, which huggingface_hub turns into its
error classes: unknown repository -> 401 RepoNotFound, gated repository without the right token ->
403 GatedRepo, unknown revision -> 404 RevisionNotFound, unknown file -> 404 EntryNotFound.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER_SHA = "89abcdef0123456789abcdef0123456789abcdef"

_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<filename>.+)$")


@dataclass(frozen=True)
class Request:
    """One request the fake Hub received."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass
class _Repo:
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit -> filename -> bytes
    token: str | None = None  # gated: only "Authorization: Bearer <token>" gets the files


class FakeHub:
    """A Hub file server on 127.0.0.1 (a free port), run in a thread while the context is open."""

    def __init__(self) -> None:
        self._repos: dict[str, _Repo] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[Request] = []
        self.fail_status: int | None = None  # when set, every request gets this status (e.g. 503)

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<port>``, to pass as ``endpoint=``."""
        if self._server is None:
            raise RuntimeError("the fake Hub is not running; use it as a context manager")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add_file(
        self, repo_id: str, filename: str, content: bytes, *, commit: str = SHA, branch: str | None = "main"
    ) -> None:
        """Serve ``content`` as ``filename`` of ``repo_id`` at ``commit`` (and at ``branch``, if given)."""
        with self._lock:
            repo = self._repos.setdefault(repo_id, _Repo())
            repo.commits.setdefault(commit, {})[filename] = content
            if branch is not None:
                repo.branches[branch] = commit

    def gate(self, repo_id: str, token: str) -> None:
        """Make ``repo_id`` gated: only requests carrying ``token`` get its files."""
        with self._lock:
            self._repos.setdefault(repo_id, _Repo()).token = token

    def __enter__(self) -> FakeHub:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-hub", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def answer(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for one request (also recorded in ``requests``)."""
        with self._lock:
            self.requests.append(Request(method, path, headers))
            if self.fail_status is not None:
                return self.fail_status, {}, b""
            match = _RESOLVE.match(path.split("?", 1)[0])
            if match is None:
                return 404, {}, b"not a resolve URL"
            repo = self._repos.get(match["repo"])
            revision, filename = unquote(match["revision"]), unquote(match["filename"])
            if repo is None:
                return _error(401, "RepoNotFound", "Repository not found")
            if repo.token is not None and headers.get("authorization") != f"Bearer {repo.token}":
                return _error(403, "GatedRepo", f"Access to model {match['repo']} is restricted.")
            commit = repo.branches.get(revision, revision)
            if commit not in repo.commits:
                return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            content = repo.commits[commit].get(filename)
            if content is None:
                status, error_headers, body = _error(404, "EntryNotFound", f"{filename} does not exist")
                return status, {**error_headers, "X-Repo-Commit": commit}, body
            return 200, _file_headers(commit, content), content

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            """HTTP/1.0: one request per connection, so no pooled connection outlives a fake Hub."""

            def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
                self._reply(send_body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._reply(send_body=True)

            def _reply(self, *, send_body: bool) -> None:
                headers = {key.lower(): value for key, value in self.headers.items()}
                status, reply_headers, body = hub.answer(self.command, self.path, headers)
                self.send_response(status)
                for key, value in reply_headers.items():
                    self.send_header(key, value)
                if "Content-Length" not in reply_headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if send_body:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Keep test output quiet."""

        return Handler


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"X-Error-Code": code, "X-Error-Message": message}, message.encode()


def _file_headers(commit: str, content: bytes) -> dict[str, str]:
    return {
        "X-Repo-Commit": commit,
        "ETag": f'"{hashlib.sha256(content).hexdigest()}"',
        "Content-Length": str(len(content)),
        "Content-Type": "application/octet-stream",
    }


def closed_endpoint() -> str:
    """An http://127.0.0.1 endpoint on which nothing listens: connections are refused at once."""
    with FakeHub() as hub:
        endpoint = hub.endpoint
    return endpoint


def prefill_cache(
    cache_dir: str | Path,
    repo_id: str,
    filename: str,
    content: bytes,
    *,
    revision: str = SHA,
    branch: str | None = "main",
) -> Path:
    """Put a file into a Hub cache the way huggingface_hub lays it out, without any download:
    ``models--org--name/snapshots/<revision>/<filename>`` (``revision`` is a full commit id) and
    ``refs/<branch>`` holding that commit with no trailing newline. Returns the snapshot path."""
    repo_dir = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / revision / filename
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    snapshot.write_bytes(content)
    if branch is not None:
        (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / branch).write_text(revision)
    return snapshot
