"""The two requests of a download from the Hugging Face Hub, sent as ``hf_hub_download`` sends them.

1. HEAD on the file's resolve URL, for its metadata. The Hub answers a large file with a redirect to a
   signed URL on a storage host (a CDN on another domain); the redirect itself carries the metadata
   (``X-Repo-Commit``, ``X-Linked-Etag``, ``X-Linked-Size``) and is not followed, because the signed
   URL is meant for one GET and may refuse anything else. Redirects within the Hub (a renamed
   repository) are followed. No retries: an unreachable Hub or a server error is reported at once,
   where ``hf_hub_download`` would retry with back-off for about 23 s.
2. GET of the file from where the Hub pointed, without the token when that is another host, with
   huggingface_hub's resume after a broken connection and its size check.

Both go through huggingface_hub's own HTTP layer (its session, headers, token, proxies and time-outs).
huggingface_hub 1.x and later provide the HEAD as ``get_hf_file_metadata``; 0.x retries inside that
function, so for 0.x the same request is made here with its retries switched off.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

from huggingface_hub import __version__ as HUB_VERSION
from huggingface_hub import constants, get_hf_file_metadata
from huggingface_hub.file_download import http_get
from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, http_backoff

COMMIT = re.compile(r"^[0-9a-f]{40}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SAFE_ETAG = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_.-]*$")  # becomes a file name in the cache
_HUB_MAJOR = int(HUB_VERSION.split(".", 1)[0])
_METADATA_TAKES_RETRY_FLAG = "retry_on_errors" in inspect.signature(get_hf_file_metadata).parameters
_MAX_HUB_REDIRECTS = 10
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HUB_ORIGINS = ("https://huggingface.co", "https://hf.co")


class NotAHubAnswerError(Exception):
    """The endpoint answered, but not the way the Hugging Face Hub does (a proxy, a captive portal,
    or an HF_ENDPOINT that is no Hub mirror)."""


@dataclass(frozen=True)
class RemoteFile:
    """What the Hub says about one file: its commit, its etag (the sha256 of a large file, the git blob
    id of a small one), where to GET it and its size."""

    url: str
    commit: str
    etag: str
    location: str
    size: int | None

    @property
    def sha256(self) -> str | None:
        """The expected sha256 of the bytes, known for large (LFS) files."""
        return self.etag if SHA256.match(self.etag) else None


def read_metadata(url: str, token: str | bool | None) -> RemoteFile:
    """One HEAD request to the Hub (see the module docstring). Raises huggingface_hub's HTTP errors
    (``RepositoryNotFoundError``, ``GatedRepoError``, ...), its HTTP client's transport errors, or
    NotAHubAnswerError."""
    if _HUB_MAJOR >= 1:
        no_retries = {"retry_on_errors": False} if _METADATA_TAKES_RETRY_FLAG else {}
        meta = get_hf_file_metadata(url, token=token, timeout=constants.HF_HUB_ETAG_TIMEOUT, **no_retries)
        commit, etag, location, size = meta.commit_hash, meta.etag, meta.location, meta.size
    else:
        commit, etag, location, size = _head_without_retries(url, token)
    if commit is None or not COMMIT.match(commit):
        raise NotAHubAnswerError(f"its answer has no valid X-Repo-Commit header (got {commit!r})")
    if etag is None or not _SAFE_ETAG.match(etag):
        raise NotAHubAnswerError(f"its answer has no valid ETag or X-Linked-Etag header (got {etag!r})")
    return RemoteFile(url=url, commit=commit, etag=etag, location=location, size=size)


def download(remote: RemoteFile, handle: BinaryIO, token: str | bool | None, shown_name: str) -> None:
    """GET the file into ``handle`` (a file opened for writing), showing huggingface_hub's progress bar.
    The token goes only to the Hub, never to a storage host."""
    headers = build_hf_headers(token=token)
    if not _is_hub_origin(remote.location, remote.url):
        headers.pop("authorization", None)
    http_get(
        remote.location, handle, headers=headers, expected_size=remote.size, displayed_filename=shown_name
    )


def storage_host(remote: RemoteFile) -> str:
    """The host the bytes come from, for messages."""
    return urlsplit(remote.location).netloc


def _head_without_retries(
    url: str, token: str | bool | None
) -> tuple[str | None, str | None, str, int | None]:
    """huggingface_hub 0.x's ``get_hf_file_metadata`` without its retries: follow relative redirects
    only, read the metadata from the last answer."""
    headers = build_hf_headers(token=token)
    headers["Accept-Encoding"] = "identity"  # the real size, as huggingface_hub asks
    for _ in range(_MAX_HUB_REDIRECTS):
        response = http_backoff(
            "HEAD",
            url,
            headers=headers,
            allow_redirects=False,
            timeout=constants.HF_HUB_ETAG_TIMEOUT,
            retry_on_exceptions=(),
            retry_on_status_codes=(),
        )
        hf_raise_for_status(response)
        target = response.headers.get("Location")
        if not (300 <= response.status_code < 400 and target and not urlsplit(target).netloc):
            break
        url = urljoin(url, target)
    else:
        raise NotAHubAnswerError(f"more than {_MAX_HUB_REDIRECTS} redirects")
    etag = response.headers.get(constants.HUGGINGFACE_HEADER_X_LINKED_ETAG) or response.headers.get("ETag")
    size = response.headers.get(constants.HUGGINGFACE_HEADER_X_LINKED_SIZE) or response.headers.get(
        "Content-Length"
    )
    return (
        response.headers.get(constants.HUGGINGFACE_HEADER_X_REPO_COMMIT),
        _normalize_etag(etag),
        response.headers.get("Location") or response.url,
        int(size) if size and size.isdigit() else None,
    )


def _normalize_etag(etag: str | None) -> str | None:
    """``W/"abc"`` or ``"abc"`` -> ``abc``, as huggingface_hub names blobs."""
    if etag is None:
        return None
    return etag.removeprefix("W/").strip('"')


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)


def _is_hub_origin(location: str, resolve_url: str) -> bool:
    """True when ``location`` is served by the Hub endpoint asked (or huggingface.co itself)."""
    trusted = {_origin(resolve_url), _origin(constants.ENDPOINT), *(_origin(o) for o in _HUB_ORIGINS)}
    return _origin(location) in trusted
