"""Where a downloaded Hub file is written: a model folder, or the Hugging Face cache.

Either way the bytes go into a hidden temporary file beside their final place, are flushed to disk and
checked (size, and the sha256 that the Hub gives as a large file's etag), and only then renamed to
their final name. A broken connection, a wrong size, a full disk or Ctrl+C leave nothing under the
final name, and the temporary file is removed.

The Hugging Face cache is written in huggingface_hub's layout (``models--org--name/blobs/<etag>``,
``snapshots/<commit>/<filename>`` linking to the blob, ``refs/<revision>`` holding the commit), so
huggingface_hub and every tool built on it find the file there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..atomic_write import write_bytes_atomic
from .remote import RemoteFile

Fetch = Callable[[BinaryIO], None]  # writes the file's bytes into an open file
HASH_CHUNK = 8 * 1024 * 1024


class DamagedDownloadError(OSError):
    """The downloaded bytes are not the file the Hub described."""


def save_download(fetch: Fetch, remote: RemoteFile, path: Path) -> Path:
    """Write the file that ``fetch`` downloads to ``path``, atomically and checked."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.incomplete")
    try:
        with open(temp, "xb") as handle:
            fetch(handle)
            handle.flush()
            os.fsync(handle.fileno())
        _check(temp, remote)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path


def save_to_cache(
    fetch: Fetch, remote: RemoteFile, cache_dir: Path, repo_id: str, filename: str, revision: str
) -> Path:
    """Put the file into the Hugging Face cache at ``cache_dir``; return its snapshot path.

    A blob already in the cache (the same file at another commit) is reused without downloading."""
    repo_dir = cache_dir / ("models--" + repo_id.replace("/", "--"))
    blob = repo_dir / "blobs" / remote.etag
    snapshot = _inside(repo_dir / "snapshots" / remote.commit, filename)
    ref = _inside(repo_dir / "refs", revision)
    new_blob = not blob.is_file()
    if new_blob:
        save_download(fetch, remote, blob)
    _place_snapshot(blob, snapshot, new_blob)
    if revision != remote.commit:
        write_bytes_atomic(ref, remote.commit.encode())  # no trailing newline, as huggingface_hub writes it
    return snapshot


def _inside(folder: Path, relative: str) -> Path:
    """``folder / relative``, refusing names that would leave ``folder`` (``..``, absolute paths)."""
    parts = relative.replace("\\", "/").split("/")
    if relative.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"{relative!r} is not a valid Hub file name or revision")
    return folder.joinpath(*parts)


def _place_snapshot(blob: Path, snapshot: Path, new_blob: bool) -> None:
    """A relative symbolic link from the snapshot to the blob; where the file system has no symbolic
    links (Windows without developer mode) the snapshot holds the file itself, as huggingface_hub does."""
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    temp = snapshot.with_name(f".{snapshot.name}.{uuid.uuid4().hex}.incomplete")
    try:
        try:
            os.symlink(os.path.relpath(blob, snapshot.parent), temp)
        except OSError:
            if new_blob:
                os.replace(blob, temp)
            else:
                shutil.copyfile(blob, temp)
        os.replace(temp, snapshot)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _check(path: Path, remote: RemoteFile) -> None:
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        raise DamagedDownloadError(f"got {size} bytes, the Hub announced {remote.size}")
    if remote.sha256 is not None and _sha256(path) != remote.sha256:
        raise DamagedDownloadError(
            f"the downloaded bytes do not have the sha256 the Hub announced ({remote.sha256})"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
