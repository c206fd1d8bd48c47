"""Find a model file: local path, model folders, the Hugging Face cache, then a download.

A download goes into the Hugging Face cache, or into ``download_dir`` (inside ComfyUI: the model
folder, where users look for their models). It sends the two requests ``hf_hub_download`` sends:
HEAD on the Hub, GET where the Hub points (see :mod:`.remote`).

Every failure becomes an error a user can act on. With no network the error comes at once and
names the exact URL and the folder to put the file in. huggingface_hub reads ``HF_HUB_OFFLINE``,
``HF_ENDPOINT`` and ``HF_TOKEN`` itself; this module only consults ``huggingface_hub.constants``
at call time, so a runtime change of those constants is honoured too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from huggingface_hub import constants, hf_hub_url, try_to_load_from_cache
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from ..checkpoint import ensure_not_pickle
from ..errors import HubAccessError, ModelNotAvailableError
from .remote import NotAHubAnswerError, RemoteFile, download, read_metadata, storage_host
from .store import save_download, save_to_cache

LOGIN_HINT = (
    "set HF_TOKEN to an access token or log in with `hf auth login` (older versions: `huggingface-cli login`)"
)


@dataclass(frozen=True)
class HubFile:
    """One file of a Hub repository at a pinned revision.

    ``revision`` should be a full 40-hex commit id: a cached file at a commit is used without any
    request, and it can never change under us. (A branch name works too, but once cached it is not
    refreshed.)

    ``local_name`` is the name to look for in the model folders; it defaults to the file's base
    name. Set it when several models share a Hub file name such as ``model.safetensors``.
    """

    repo_id: str
    filename: str
    revision: str
    local_name: str | None = None

    @property
    def local_filename(self) -> str:
        """The file name searched for in the model folders."""
        return self.local_name or PurePosixPath(self.filename).name

    def url(self, endpoint: str | None = None) -> str:
        """The download URL, ``{endpoint}/{repo_id}/resolve/{revision}/{filename}``, exactly as
        huggingface_hub builds it (``endpoint=None``: the one huggingface_hub uses, i.e. HF_ENDPOINT)."""
        return hf_hub_url(self.repo_id, self.filename, revision=self.revision, endpoint=_strip(endpoint))


def resolve_model_file(
    source: str | os.PathLike | HubFile,
    *,
    model_dirs: Sequence[str | os.PathLike] = (),
    cache_dir: str | os.PathLike | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    download_dir: str | os.PathLike | None = None,
) -> Path:
    """Return the path of a safetensors model file, downloading it only when nowhere else.

    Order: an existing local path, then the same name in each of ``model_dirs`` (and in
    ``download_dir``), then the Hub cache (no network), then a download. The download goes to
    ``download_dir / hub_file.local_filename`` when ``download_dir`` is given, else into the Hub cache.
    Pickled checkpoints are refused.
    """
    if isinstance(source, HubFile):
        ensure_not_pickle(source.filename, read_bytes=False)
        folders = [*model_dirs, *([download_dir] if download_dir is not None else [])]
        lookup = _HubLookup(source, folders, cache_dir, _strip(endpoint), token, download_dir)
        path = _find_in_dirs(source.local_filename, folders) or lookup.fetch()
    else:
        path = _find_local(Path(source).expanduser(), model_dirs)
    ensure_not_pickle(path)
    return path


def _strip(endpoint: str | None) -> str | None:
    return endpoint.rstrip("/") if endpoint else None


def _find_local(path: Path, model_dirs: Sequence[str | os.PathLike]) -> Path:
    if path.is_file():
        return path.absolute()
    candidates = [] if path.is_absolute() else [Path(folder).expanduser() / path for folder in model_dirs]
    found = _first_file(candidates)
    if found is None:
        also = "".join(f"\n  {candidate}" for candidate in candidates)
        raise ModelNotAvailableError(
            f"Model file not found: {path.absolute()}" + (f"\nAlso looked for:{also}" if also else "")
        )
    return found


def _find_in_dirs(name: str, model_dirs: Sequence[str | os.PathLike]) -> Path | None:
    return _first_file([Path(folder).expanduser() / name for folder in model_dirs])


def _first_file(candidates: Sequence[Path]) -> Path | None:
    return next((candidate.absolute() for candidate in candidates if candidate.is_file()), None)


@dataclass(frozen=True)
class _HubLookup:
    """One attempt to get a Hub file: where it may be, how to reach the Hub, where a download goes."""

    hub_file: HubFile
    model_dirs: Sequence[str | os.PathLike]
    cache_dir: str | os.PathLike | None
    endpoint: str | None
    token: str | bool | None
    download_dir: str | os.PathLike | None = None

    def fetch(self) -> Path:
        """The cached file, else a download once a quick look at the Hub has shown it can be fetched."""
        hub_file = self.hub_file
        cached = try_to_load_from_cache(
            hub_file.repo_id, hub_file.filename, cache_dir=self.cache_dir, revision=hub_file.revision
        )
        if isinstance(cached, str):
            return Path(cached)
        if _offline():
            raise self.not_available("HF_HUB_OFFLINE is set")
        remote = self.probe()
        try:
            return self.save(remote)
        except HfHubHTTPError as err:
            status = getattr(err.response, "status_code", "?")
            reason = f"the download from {storage_host(remote)} failed with HTTP {status}"
            raise self.refusal(err) or self.not_available(reason) from err
        except Exception as err:
            if not _is_transport_error(err):
                raise
            reason = f"the download from {storage_host(remote)} failed ({type(err).__name__}: {err})"
            raise self.not_available(reason) from err

    def probe(self) -> RemoteFile:
        """Ask the Hub once, without retries and without leaving it, for the file's metadata.

        This is the HEAD request that ``hf_hub_download`` starts with (see :mod:`.remote`), so an
        unreachable Hub or a refusal becomes an error at once, in huggingface_hub 0.x as in 1.x and
        later, and no request is sent that ``hf_hub_download`` would not send.
        """
        url = self.hub_file.url(self.endpoint)
        try:
            return read_metadata(url, self.token)
        except HfHubHTTPError as err:
            status = getattr(err.response, "status_code", "?")
            raise self.refusal(err) or self.not_available(f"the Hub answered HTTP {status}") from err
        except NotAHubAnswerError as err:
            reason = f"{self.hub_endpoint} does not answer like the Hugging Face Hub: {err}"
            raise self.not_available(reason) from err
        except Exception as err:
            if not _is_transport_error(err):
                raise
            reason = f"the Hub at {self.hub_endpoint} cannot be reached ({type(err).__name__}: {err})"
            raise self.not_available(reason) from err

    def save(self, remote: RemoteFile) -> Path:
        """Download the file into ``download_dir`` under its local name, else into the Hub cache."""
        hub_file = self.hub_file

        def fetch(handle: BinaryIO) -> None:
            download(remote, handle, self.token, hub_file.filename)

        if self.download_dir is not None:
            return save_download(
                fetch, remote, Path(self.download_dir).expanduser() / hub_file.local_filename
            )
        cache = Path(self.cache_dir or constants.HF_HUB_CACHE).expanduser()
        return save_to_cache(fetch, remote, cache, hub_file.repo_id, hub_file.filename, hub_file.revision)

    @property
    def hub_endpoint(self) -> str:
        """The Hub asked: ``endpoint``, else huggingface_hub's (HF_ENDPOINT)."""
        return self.endpoint or constants.ENDPOINT

    def refusal(self, err: Exception) -> HubAccessError | None:
        """The HubAccessError for a definite answer of the Hub, or None for any other failure."""
        repo, rev, name = self.hub_file.repo_id, self.hub_file.revision, self.hub_file.filename
        page = f"{self.hub_endpoint}/{repo}"
        if isinstance(err, GatedRepoError):
            message = (
                f"{repo} is a gated repository: its files need an accepted licence. Open {page}, accept "
                f"the licence there, then {LOGIN_HINT}."
            )
        elif isinstance(err, RepositoryNotFoundError):
            message = (
                f"The Hugging Face Hub has no repository {repo} (or it is private). Check the name; if it "
                f"is private, {LOGIN_HINT}."
            )
        elif isinstance(err, RevisionNotFoundError):
            message = f"Revision {rev} does not exist in the Hub repository {repo} ({page})."
        elif isinstance(err, EntryNotFoundError) and not isinstance(err, LocalEntryNotFoundError):
            message = f"File {name} does not exist in the Hub repository {repo} at revision {rev} ({page})."
        else:
            return None
        return HubAccessError(message)

    def not_available(self, reason: str) -> ModelNotAvailableError:
        """The error for a file that is nowhere local and cannot be downloaded now."""
        hub_file = self.hub_file
        cache = Path(self.cache_dir or constants.HF_HUB_CACHE)
        if self.model_dirs:
            folder = Path(self.download_dir if self.download_dir is not None else self.model_dirs[0])
            searched = ", ".join(dict.fromkeys(str(Path(d)) for d in self.model_dirs))
            where = f"{searched} or the Hugging Face cache ({cache})"
            put = f"save it as {folder / hub_file.local_filename}"
        else:
            where = f"the Hugging Face cache ({cache})"
            put = "pass the path of the downloaded file"
        online = (
            "unset HF_HUB_OFFLINE so that DepthStyle can download it"
            if _offline()
            else "check the network connection, proxy and HF_ENDPOINT, then try again"
        )
        return ModelNotAvailableError(
            f"{hub_file.filename} from {hub_file.repo_id} is not available: it is not in {where}, "
            f"and {reason}.\nEither download {hub_file.url(self.endpoint)} and {put}, or {online}."
        )


def _offline() -> bool:
    is_offline_mode = getattr(constants, "is_offline_mode", None)
    return bool(is_offline_mode() if is_offline_mode is not None else constants.HF_HUB_OFFLINE)


def _is_transport_error(err: BaseException) -> bool:
    """A connection, timeout or protocol failure of the HTTP client huggingface_hub uses:
    ``requests`` errors (0.x) are OSErrors, ``httpx``-style clients (1.x and later) raise TransportError.
    Matched by class name so that shipped code imports no HTTP library."""
    return isinstance(err, OSError) or any(cls.__name__ == "TransportError" for cls in type(err).__mro__)
