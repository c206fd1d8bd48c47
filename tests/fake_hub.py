"""Test helpers: a loopback fake of the Hugging Face Hub file endpoint with its storage host, and a
pre-filled Hub cache.

The fake Hub answers ``HEAD`` and ``GET /{org}/{name}/resolve/{revision}/{filename}`` the way the
real Hub does, so huggingface_hub's real code runs against it. A large (LFS) file, the default, is
answered with a 302 to a signed URL on a storage server at another address (``127.0.0.2``, as the
real Hub redirects to a CDN on another domain), with the file's metadata in the redirect's headers
(``X-Repo-Commit``, ``X-Linked-Etag``, ``X-Linked-Size``). Like an S3 presigned URL, the storage
server answers only the GET it was signed for: HEAD gets 403, a wrong signature 403, and a request
that also carries an ``Authorization`` header 400. A small (non-LFS) file is served by the Hub itself.

    with FakeHub() as hub:
        hub.add_file("org/name", "model.safetensors", data)
        resolve_model_file(HubFile("org/name", "model.safetensors", SHA), endpoint=hub.endpoint, ...)
        assert hub.calls() == [("hub", "HEAD"), ("storage", "GET")]

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
from typing import Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit

SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER_SHA = "89abcdef0123456789abcdef0123456789abcdef"
HUB_HOST = "127.0.0.1"
STORAGE_HOST = "127.0.0.2"  # another loopback address: a different host, as the real CDN is

_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<filename>.+)$")
_BLOB = re.compile(r"^/blobs/(?P<sha256>[0-9a-f]{64})$")
_RANGE = re.compile(r"^bytes=(?P<start>\d+)-$")

StorageFault = Literal["drop", "stall", "short", "corrupt"]


@dataclass(frozen=True)
class Request:
    """One request a fake server received: ``server`` is "hub" or "storage"."""

    server: str
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class _Repo:
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit -> filename -> bytes
    small_files: set[str] = field(default_factory=set)  # served by the Hub itself, not redirected
    token: str | None = None  # gated: only "Authorization: Bearer <token>" gets the files


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    drop_after: int | None = None  # close the connection after this many body bytes
    hold: tuple[threading.Event, threading.Event] | None = None  # (set when stalled, wait for this)


class FakeHub:
    """A Hub file server on 127.0.0.1 and its storage server on 127.0.0.2 (free ports), run in threads
    while the context is open. ``requests`` records every request to either, in order."""

    def __init__(self) -> None:
        self._repos: dict[str, _Repo] = {}
        self._blobs: dict[str, bytes] = {}  # sha256 -> bytes, what the storage server holds
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self._signing_key = "fake-hub-signing-key"
        self.requests: list[Request] = []
        self.fail_status: int | None = None  # when set, every Hub request gets this status (e.g. 503)
        # "drop": the storage server sends half of the body, then closes the connection; the signed URL
        #   has expired afterwards (any further GET gets 403).
        # "stall": as "drop", but the storage server waits after the half until ``release`` is set (a
        #   download caught in the middle); ``stalled`` is set while it waits.
        # "short": the storage server sends half of the file as a complete answer (Content-Length of
        #   the half), so the size differs from the Hub's X-Linked-Size.
        # "corrupt": the storage server sends other bytes of the right length.
        self.storage_fault: StorageFault | None = None
        self.stalled = threading.Event()
        self.release = threading.Event()

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<port>``, to pass as ``endpoint=``."""
        return f"http://{HUB_HOST}:{self._port(0)}"

    @property
    def storage_endpoint(self) -> str:
        """``http://127.0.0.2:<port>``: where the Hub redirects downloads of large files."""
        return f"http://{STORAGE_HOST}:{self._port(1)}"

    def _port(self, index: int) -> int:
        if not self._servers:
            raise RuntimeError("the fake Hub is not running; use it as a context manager")
        return self._servers[index].server_address[1]

    def add_file(
        self,
        repo_id: str,
        filename: str,
        content: bytes,
        *,
        commit: str = SHA,
        branch: str | None = "main",
        small: bool = False,
    ) -> None:
        """Serve ``content`` as ``filename`` of ``repo_id`` at ``commit`` (and at ``branch``, if given).

        A large file (default) is redirected to the storage server; ``small=True`` serves it from the
        Hub itself, as the real Hub does for files kept in git rather than LFS."""
        with self._lock:
            repo = self._repos.setdefault(repo_id, _Repo())
            repo.commits.setdefault(commit, {})[filename] = content
            if small:
                repo.small_files.add(filename)
            if branch is not None:
                repo.branches[branch] = commit
            self._blobs[hashlib.sha256(content).hexdigest()] = content

    def gate(self, repo_id: str, token: str) -> None:
        """Make ``repo_id`` gated: only requests carrying ``token`` get its files."""
        with self._lock:
            self._repos.setdefault(repo_id, _Repo()).token = token

    def calls(self) -> list[tuple[str, str]]:
        """``(server, method)`` of every request so far, in order."""
        with self._lock:
            return [(r.server, r.method) for r in self.requests]

    def __enter__(self) -> FakeHub:
        for host, answer in ((HUB_HOST, self.answer), (STORAGE_HOST, self.answer_storage)):
            server = ThreadingHTTPServer((host, 0), _handler_class(answer))
            server.daemon_threads = True
            thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-hub", daemon=True)
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def answer(self, method: str, path: str, headers: dict[str, str]) -> _Reply:
        """The Hub's reply to one request (also recorded in ``requests``)."""
        with self._lock:
            self.requests.append(Request("hub", method, path, headers))
            if self.fail_status is not None:
                return _Reply(self.fail_status, {})
            match = _RESOLVE.match(urlsplit(path).path)
            if match is None:
                return _Reply(404, {}, b"not a resolve URL")
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
                reply = _error(404, "EntryNotFound", f"{filename} does not exist")
                return _Reply(reply.status, {**reply.headers, "X-Repo-Commit": commit}, reply.body)
            if filename in repo.small_files:
                return _Reply(200, _small_file_headers(commit, content), content)
            return self._redirect_to_storage(commit, content)

    def _redirect_to_storage(self, commit: str, content: bytes) -> _Reply:
        sha256 = hashlib.sha256(content).hexdigest()
        blob_path = f"/blobs/{sha256}"
        location = f"{self.storage_endpoint}{blob_path}?X-Amz-Signature={quote(self._sign(blob_path))}"
        body = f"Found. Redirecting to {location}".encode()
        return _Reply(
            302,
            {
                "Location": location,
                "X-Repo-Commit": commit,
                "X-Linked-Etag": f'"{sha256}"',
                "X-Linked-Size": str(len(content)),
                "ETag": f'"{hashlib.sha1(sha256.encode()).hexdigest()}"',  # the git pointer file's etag
                "Content-Type": "text/plain; charset=utf-8",
            },
            body,
        )

    def answer_storage(self, method: str, path: str, headers: dict[str, str]) -> _Reply:
        """The storage server's reply: only a signed GET without other credentials gets the bytes."""
        with self._lock:
            earlier_gets = sum(1 for r in self.requests if r.server == "storage" and r.method == "GET")
            self.requests.append(Request("storage", method, path, headers))
            url = urlsplit(path)
            match = _BLOB.match(url.path)
            signature = parse_qs(url.query).get("X-Amz-Signature", [""])[0]
            if method != "GET" or match is None or signature != self._sign(url.path):
                return _Reply(
                    403, {"Content-Type": "application/xml"}, b"<Error>SignatureDoesNotMatch</Error>"
                )
            if "authorization" in headers:
                return _Reply(400, {}, b"<Error>InvalidArgument: Only one auth mechanism allowed</Error>")
            content = self._blobs[match["sha256"]]
            if self.storage_fault in ("drop", "stall"):
                if earlier_gets:
                    return _Reply(403, {}, b"<Error>AccessDenied: Request has expired</Error>")
                hold = (self.stalled, self.release) if self.storage_fault == "stall" else None
                headers_out = {"Content-Length": str(len(content))}
                return _Reply(200, headers_out, content, drop_after=len(content) // 2, hold=hold)
            if self.storage_fault == "short":
                content = content[: len(content) // 2]
            elif self.storage_fault == "corrupt":
                content = bytes(byte ^ 0xFF for byte in content)
            requested = _RANGE.match(headers.get("range", ""))
            if requested is not None:
                start = int(requested["start"])
                part = content[start:]
                content_range = f"bytes {start}-{len(content) - 1}/{len(content)}"
                return _Reply(206, {"Content-Range": content_range}, part)
            return _Reply(200, {"Content-Type": "application/octet-stream"}, content)

    def _sign(self, path: str) -> str:
        return hashlib.sha256(f"{self._signing_key}:GET:{path}".encode()).hexdigest()


def _handler_class(answer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """HTTP/1.0: one request per connection, so no pooled connection outlives a fake Hub."""

        def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
            self._reply(send_body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._reply(send_body=True)

        def _reply(self, *, send_body: bool) -> None:
            headers = {key.lower(): value for key, value in self.headers.items()}
            reply = answer(self.command, self.path, headers)
            self.send_response(reply.status)
            for key, value in reply.headers.items():
                self.send_header(key, value)
            if "Content-Length" not in reply.headers:
                self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if send_body:
                self.wfile.write(reply.body if reply.drop_after is None else reply.body[: reply.drop_after])
                self.wfile.flush()
                if reply.hold is not None:
                    stalled, release = reply.hold
                    stalled.set()
                    release.wait(timeout=30)

        def log_message(self, format: str, *args: object) -> None:
            """Keep test output quiet."""

    return Handler


def _error(status: int, code: str, message: str) -> _Reply:
    return _Reply(status, {"X-Error-Code": code, "X-Error-Message": message}, message.encode())


def _small_file_headers(commit: str, content: bytes) -> dict[str, str]:
    git_blob_id = hashlib.sha1(b"blob %d\x00" % len(content) + content).hexdigest()
    return {
        "X-Repo-Commit": commit,
        "ETag": f'"{git_blob_id}"',
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
