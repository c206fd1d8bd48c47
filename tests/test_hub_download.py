"""Downloads from the Hub as the real Hub serves large files (a 302 to a storage host that answers only
GET), into the Hugging Face cache or into a model folder (``download_dir``, what ComfyUI uses), and
what a broken download leaves behind: nothing under the final name."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import pytest
import torch
from huggingface_hub import constants, hf_hub_download
from safetensors.torch import save

from depthstyle.depthstyle_core.errors import ModelNotAvailableError
from depthstyle.depthstyle_core.hub.resolve import HubFile, resolve_model_file

from .fake_hub import OTHER_SHA, SHA, STORAGE_HOST, FakeHub, prefill_cache

REPO = "org/tiny-model"
FILE = "model.safetensors"
LOCAL_NAME = "tiny-model.safetensors"
CONTENT = save({"w": torch.arange(12.0).reshape(3, 4)}, metadata={"format": "pt"})
PINNED = HubFile(REPO, FILE, SHA, local_name=LOCAL_NAME)
SHA256 = hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture(autouse=True)
def _online_without_token(monkeypatch):
    """Online whatever the environment says, no token, no telemetry (see test_hub.py)."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)


@pytest.fixture
def hub():
    with FakeHub() as fake:
        fake.add_file(REPO, FILE, CONTENT)
        yield fake


def raw_request(method: str, url: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    """One request without following redirects: status, headers, body."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, method=method, headers=headers or {}), timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def files_under(folder: Path) -> list[str]:
    """Every file and link under ``folder``, relative, sorted (hidden ones too)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


# --- the fake Hub answers as the real one ------------------------------------------------------------


def test_fake_hub_redirects_to_a_storage_host_that_answers_only_a_signed_get(hub):
    status, headers, _ = raw_request("HEAD", PINNED.url(hub.endpoint))
    assert status == 302
    location = headers["Location"]
    assert location.startswith(f"http://{STORAGE_HOST}:") and hub.storage_endpoint != hub.endpoint
    assert headers["X-Repo-Commit"] == SHA
    assert headers["X-Linked-Etag"] == f'"{SHA256}"' and headers["X-Linked-Size"] == str(len(CONTENT))

    assert raw_request("HEAD", location)[0] == 403, "a signed GET URL refuses HEAD"
    assert raw_request("GET", location, {"Authorization": "Bearer hf_x"})[0] == 400
    assert raw_request("GET", location.replace("Signature=", "Signature=0"))[0] == 403
    assert raw_request("GET", location)[::2] == (200, CONTENT)


def test_hf_hub_download_itself_sends_head_to_the_hub_then_get_to_the_storage_host(tmp_path, hub):
    """The fake is faithful: huggingface_hub's own download succeeds with the same two requests."""
    path = hf_hub_download(REPO, FILE, revision=SHA, cache_dir=tmp_path, endpoint=hub.endpoint)
    assert Path(path).read_bytes() == CONTENT
    assert hub.calls() == [("hub", "HEAD"), ("storage", "GET")]


# --- into the Hugging Face cache (command line and Python) ------------------------------------------


def test_small_file_comes_from_the_hub_itself_with_the_token(tmp_path, hub):
    hub.add_file(REPO, "small.safetensors", CONTENT, small=True)
    hub.gate(REPO, "hf_secret")
    small = HubFile(REPO, "small.safetensors", SHA)
    path = resolve_model_file(small, cache_dir=tmp_path, endpoint=hub.endpoint, token="hf_secret")
    assert path.read_bytes() == CONTENT
    assert hub.calls() == [("hub", "HEAD"), ("hub", "GET")]
    assert {r.headers.get("authorization") for r in hub.requests} == {"Bearer hf_secret"}


def test_blob_already_in_the_cache_is_reused_for_another_commit(tmp_path, hub):
    hub.add_file(REPO, FILE, CONTENT, commit=OTHER_SHA, branch=None)
    first = resolve_model_file(PINNED, cache_dir=tmp_path, endpoint=hub.endpoint)
    seen = len(hub.requests)
    second = resolve_model_file(HubFile(REPO, FILE, OTHER_SHA), cache_dir=tmp_path, endpoint=hub.endpoint)
    assert second != first and second.read_bytes() == CONTENT
    assert hub.calls()[seen:] == [("hub", "HEAD")], "the same bytes must not be downloaded twice"
    assert os.path.realpath(second) == os.path.realpath(first)


def test_without_symbolic_links_the_snapshot_holds_the_file(tmp_path, hub, monkeypatch):
    def no_symlinks(*args, **kwargs):
        raise OSError("symbolic links are not supported here")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    path = resolve_model_file(PINNED, cache_dir=tmp_path, endpoint=hub.endpoint)
    assert path.is_file() and not path.is_symlink() and path.read_bytes() == CONTENT
    assert hub.calls() == [("hub", "HEAD"), ("storage", "GET")]
    assert resolve_model_file(PINNED, cache_dir=tmp_path, endpoint=hub.endpoint) == path
    assert len(hub.requests) == 2


@pytest.mark.parametrize("fault", ["drop", "short"])
def test_broken_download_leaves_nothing_in_the_cache(tmp_path, hub, fault):
    hub.storage_fault = fault
    with pytest.raises(ModelNotAvailableError) as info:
        resolve_model_file(PINNED, cache_dir=tmp_path, endpoint=hub.endpoint)
    assert f"the download from {hub.storage_endpoint.removeprefix('http://')} failed" in str(info.value)
    assert PINNED.url(hub.endpoint) in str(info.value)
    repo_dir = tmp_path / "models--org--tiny-model"
    assert not (repo_dir / "snapshots").exists() and files_under(repo_dir / "blobs") == []

    hub.storage_fault = None  # the next try downloads the file
    assert resolve_model_file(PINNED, cache_dir=tmp_path, endpoint=hub.endpoint).read_bytes() == CONTENT


def test_an_endpoint_that_is_no_hub_is_named(tmp_path):
    """A plain web server at the endpoint (a proxy, a captive portal) answers without X-Repo-Commit."""
    site = tmp_path / "site"
    (site / REPO / "resolve" / SHA).mkdir(parents=True)
    (site / REPO / "resolve" / SHA / FILE).write_bytes(CONTENT)
    handler = partial(SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            with pytest.raises(ModelNotAvailableError) as info:
                resolve_model_file(PINNED, cache_dir=tmp_path / "cache", endpoint=endpoint)
        finally:
            server.shutdown()
    message = str(info.value)
    assert f"{endpoint} does not answer like the Hugging Face Hub" in message and "X-Repo-Commit" in message
    assert not (tmp_path / "cache").exists()


# --- into a model folder (what ComfyUI does) ---------------------------------------------------------


def test_download_dir_gets_the_file_under_its_local_name_and_next_time_no_request(tmp_path, hub):
    models, cache = tmp_path / "models" / "depth", tmp_path / "cache"
    path = resolve_model_file(
        PINNED, model_dirs=[models], cache_dir=cache, endpoint=hub.endpoint, download_dir=models
    )
    assert path == models / LOCAL_NAME and path.read_bytes() == CONTENT
    assert hub.calls() == [("hub", "HEAD"), ("storage", "GET")]
    assert files_under(models) == [LOCAL_NAME], "no temporary or huggingface_hub metadata files"
    assert not cache.exists(), "a download into the model folder does not also fill the cache"

    again = resolve_model_file(
        PINNED, model_dirs=[models], cache_dir=cache, endpoint=hub.endpoint, download_dir=models
    )
    assert again == path and len(hub.requests) == 2


def test_download_dir_is_searched_even_when_not_among_the_model_dirs(tmp_path, hub):
    folder = tmp_path / "downloads"
    kwargs = {"cache_dir": tmp_path / "cache", "endpoint": hub.endpoint, "download_dir": folder}
    assert resolve_model_file(PINNED, **kwargs) == folder / LOCAL_NAME
    assert resolve_model_file(PINNED, **kwargs) == folder / LOCAL_NAME
    assert len(hub.requests) == 2


def test_file_in_the_hf_cache_is_used_instead_of_downloading_into_download_dir(tmp_path, hub):
    snapshot = prefill_cache(tmp_path / "cache", REPO, FILE, CONTENT)
    models = tmp_path / "models"
    found = resolve_model_file(
        PINNED, model_dirs=[models], cache_dir=tmp_path / "cache", endpoint=hub.endpoint, download_dir=models
    )
    assert found == snapshot and hub.requests == []
    assert not models.exists()


def test_file_in_an_earlier_model_dir_wins_over_download_dir(tmp_path, hub):
    user, default = tmp_path / "user", tmp_path / "default"
    (user / LOCAL_NAME).parent.mkdir(parents=True)
    (user / LOCAL_NAME).write_bytes(CONTENT)
    found = resolve_model_file(
        PINNED, model_dirs=[user, default], endpoint=hub.endpoint, download_dir=default
    )
    assert found == user / LOCAL_NAME and hub.requests == []


@pytest.mark.parametrize("fault", ["drop", "short"])
def test_broken_download_leaves_no_file_under_the_final_name(tmp_path, hub, fault):
    hub.storage_fault = fault
    models = tmp_path / "models"
    kwargs = {"model_dirs": [models], "cache_dir": tmp_path / "cache", "endpoint": hub.endpoint}
    with pytest.raises(ModelNotAvailableError) as info:
        resolve_model_file(PINNED, download_dir=models, **kwargs)
    assert f"save it as {models / LOCAL_NAME}" in str(info.value)
    assert files_under(models) == [], "neither a half-written file nor a temporary file may stay"

    hub.storage_fault = None
    assert resolve_model_file(PINNED, download_dir=models, **kwargs).read_bytes() == CONTENT
    assert files_under(models) == [LOCAL_NAME]


def test_file_being_downloaded_is_not_under_its_final_name(tmp_path, hub):
    """While the bytes arrive (or after a hard kill in the middle), ComfyUI's model list and the next
    run see no file under the final name: only a hidden temporary file."""
    hub.storage_fault = "stall"
    models = tmp_path / "models"
    outcome: list[BaseException] = []

    def download() -> None:
        try:
            resolve_model_file(
                PINNED, cache_dir=tmp_path / "cache", endpoint=hub.endpoint, download_dir=models
            )
        except BaseException as err:
            outcome.append(err)

    worker = Thread(target=download)
    worker.start()
    try:
        assert hub.stalled.wait(timeout=30), "the download did not start"
        (partial_file,) = models.iterdir()  # created before the GET was sent
        assert partial_file.name.startswith(f".{LOCAL_NAME}.") and partial_file.name.endswith(".incomplete")
    finally:
        hub.release.set()
        worker.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], ModelNotAvailableError)
    assert files_under(models) == []


def test_wrong_bytes_of_the_right_size_are_refused(tmp_path, hub):
    """The Hub gives a large file's sha256 as its etag: damaged bytes never get the final name."""
    hub.storage_fault = "corrupt"
    models = tmp_path / "models"
    with pytest.raises(
        ModelNotAvailableError, match=f"do not have the sha256 the Hub announced \\({SHA256}\\)"
    ):
        resolve_model_file(PINNED, endpoint=hub.endpoint, cache_dir=tmp_path / "cache", download_dir=models)
    assert files_under(models) == []
