"""Model file resolution: local paths, model folders, the Hub cache, real downloads from a loopback
fake Hub, and every failure a user can meet (offline, unreachable, refused, pickled)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants
from safetensors.torch import save

from depthstyle.depthstyle_core.errors import CheckpointError, HubAccessError, ModelNotAvailableError
from depthstyle.depthstyle_core.hub.resolve import HubFile, resolve_model_file

from .fake_hub import OTHER_SHA, SHA, FakeHub, closed_endpoint, prefill_cache

REPO = "org/tiny-model"
FILE = "model.safetensors"
CONTENT = save({"w": torch.arange(6.0).reshape(2, 3)}, metadata={"format": "pt"})
PINNED = HubFile(REPO, FILE, SHA)
FAST = 1.0  # seconds: a failure must come well before hf_hub_download's ~23 s of retries


@pytest.fixture(autouse=True)
def _online_without_token(monkeypatch):
    """Every test starts online (whatever the environment says) and without a token. Telemetry is
    off: huggingface_hub 2.x otherwise fetches an agent registry from the real Hub once per process."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)


@pytest.fixture
def hub():
    with FakeHub() as fake:
        yield fake


def expect_error(error_type, source, **kwargs):
    """Resolve ``source`` expecting ``error_type``; return the message and the seconds it took."""
    start = time.perf_counter()
    with pytest.raises(error_type) as info:
        resolve_model_file(source, **kwargs)
    return str(info.value), time.perf_counter() - start


def test_url_is_the_resolve_url():
    hub_file = HubFile(REPO, FILE, SHA)
    assert hub_file.url("http://hub.test/") == f"http://hub.test/{REPO}/resolve/{SHA}/{FILE}"
    assert hub_file.url() == f"{constants.ENDPOINT}/{REPO}/resolve/{SHA}/{FILE}"
    assert hub_file.local_filename == FILE
    assert HubFile(REPO, "sub/x.safetensors", SHA).local_filename == "x.safetensors"
    assert HubFile(REPO, FILE, SHA, local_name="tiny.safetensors").local_filename == "tiny.safetensors"


def test_existing_local_path_is_used_before_anything_else(tmp_path, hub):
    hub.add_file(REPO, FILE, b"served")
    local = tmp_path / "mine.safetensors"
    local.write_bytes(CONTENT)
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "mine.safetensors").write_bytes(CONTENT)
    assert resolve_model_file(local, model_dirs=[tmp_path / "dir"]) == local
    assert resolve_model_file(str(local)) == local
    assert hub.requests == []


def test_name_is_found_in_the_first_model_dir_that_has_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first, second, third = (tmp_path / name for name in ("first", "second", "third"))
    for folder in (first, second, third):
        (folder / "styles").mkdir(parents=True)
    (second / "styles" / "candy.safetensors").write_bytes(CONTENT)
    (third / "styles" / "candy.safetensors").write_bytes(CONTENT)
    found = resolve_model_file("styles/candy.safetensors", model_dirs=[first, second, third])
    assert found == second / "styles" / "candy.safetensors"


def test_hub_file_in_a_model_dir_needs_no_hub(tmp_path):
    (tmp_path / "tiny.safetensors").write_bytes(CONTENT)
    hub_file = HubFile(REPO, FILE, SHA, local_name="tiny.safetensors")
    endpoint = closed_endpoint()
    found = resolve_model_file(hub_file, model_dirs=[tmp_path], cache_dir=tmp_path, endpoint=endpoint)
    assert found == tmp_path / "tiny.safetensors"


def test_missing_local_path_is_named(tmp_path):
    missing = tmp_path / "nope.safetensors"
    message, _ = expect_error(ModelNotAvailableError, missing)
    assert str(missing) in message

    message, _ = expect_error(ModelNotAvailableError, "nope.safetensors", model_dirs=[tmp_path / "models"])
    assert str(tmp_path / "models" / "nope.safetensors") in message


@pytest.mark.parametrize("revision", [SHA, "main"])
def test_cached_file_is_used_without_any_request(tmp_path, hub, revision):
    snapshot = prefill_cache(tmp_path, REPO, FILE, CONTENT, revision=SHA)
    found = resolve_model_file(HubFile(REPO, FILE, revision), cache_dir=tmp_path, endpoint=hub.endpoint)
    assert found == snapshot
    assert hub.requests == []


@pytest.mark.parametrize("revision", [SHA, "main"])
def test_download_fills_the_cache_and_the_second_call_is_offline(tmp_path, hub, revision):
    hub.add_file(REPO, FILE, CONTENT)
    hub_file = HubFile(REPO, FILE, revision)

    path = resolve_model_file(hub_file, cache_dir=tmp_path, endpoint=hub.endpoint)

    repo_dir = tmp_path / "models--org--tiny-model"
    snapshot = repo_dir / "snapshots" / SHA / FILE
    blob = repo_dir / "blobs" / hashlib.sha256(CONTENT).hexdigest()
    assert path == snapshot
    assert blob.read_bytes() == CONTENT and path.read_bytes() == CONTENT
    assert os.readlink(snapshot) == f"../../blobs/{blob.name}"
    if revision == "main":
        assert (repo_dir / "refs" / "main").read_text() == SHA
    # What hf_hub_download sends: HEAD on the Hub (its 302 is not followed), GET on the storage host.
    assert hub.calls() == [("hub", "HEAD"), ("storage", "GET")]
    assert hub.requests[0].path == f"/{REPO}/resolve/{revision}/{FILE}"
    assert sorted(p.name for p in (repo_dir / "blobs").iterdir()) == [blob.name], "a temporary file is left"

    seen = len(hub.requests)
    assert resolve_model_file(hub_file, cache_dir=tmp_path, endpoint=hub.endpoint) == snapshot
    assert len(hub.requests) == seen


def test_offline_and_not_cached_fails_at_once_with_url_and_folder(tmp_path, hub, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub.add_file(REPO, FILE, CONTENT)
    models, cache = tmp_path / "models" / "depthstyle", tmp_path / "cache"
    message, seconds = expect_error(
        ModelNotAvailableError, PINNED, model_dirs=[models], cache_dir=cache, endpoint=hub.endpoint
    )
    assert seconds < FAST
    assert hub.requests == []
    assert f"{hub.endpoint}/{REPO}/resolve/{SHA}/{FILE}" in message
    assert f"save it as {models / FILE}" in message
    assert "unset HF_HUB_OFFLINE" in message


def test_offline_still_finds_the_cache(tmp_path, hub, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    snapshot = prefill_cache(tmp_path, REPO, FILE, CONTENT, revision=SHA)
    assert resolve_model_file(PINNED, cache_dir=tmp_path, endpoint=hub.endpoint) == snapshot


def test_unreachable_hub_fails_fast_with_url_and_folder(tmp_path):
    endpoint = closed_endpoint()
    models = tmp_path / "models"
    message, seconds = expect_error(
        ModelNotAvailableError, PINNED, model_dirs=[models], cache_dir=tmp_path, endpoint=endpoint
    )
    assert seconds < FAST
    assert f"{endpoint}/{REPO}/resolve/{SHA}/{FILE}" in message
    assert f"save it as {models / FILE}" in message
    assert "cannot be reached" in message and "check the network connection" in message


def test_hub_server_error_fails_fast_without_retries(tmp_path, hub):
    hub.fail_status = 503
    message, seconds = expect_error(ModelNotAvailableError, PINNED, cache_dir=tmp_path, endpoint=hub.endpoint)
    assert seconds < FAST
    assert len(hub.requests) == 1
    assert "HTTP 503" in message and f"{hub.endpoint}/{REPO}/resolve/{SHA}/{FILE}" in message


def test_unknown_repository(tmp_path, hub):
    message, _ = expect_error(HubAccessError, PINNED, cache_dir=tmp_path, endpoint=hub.endpoint)
    assert f"no repository {REPO}" in message and "HF_TOKEN" in message


def test_gated_repository_asks_for_the_licence_and_a_token(tmp_path, hub):
    hub.add_file(REPO, FILE, CONTENT)
    hub.gate(REPO, "hf_secret")
    message, _ = expect_error(HubAccessError, PINNED, cache_dir=tmp_path, endpoint=hub.endpoint)
    assert f"{REPO} is a gated repository" in message
    assert f"Open {hub.endpoint}/{REPO}, accept the licence" in message
    assert "HF_TOKEN" in message and "hf auth login" in message


def test_gated_repository_with_a_token(tmp_path, hub):
    hub.add_file(REPO, FILE, CONTENT)
    hub.gate(REPO, "hf_secret")
    path = resolve_model_file(PINNED, cache_dir=tmp_path, endpoint=hub.endpoint, token="hf_secret")
    assert path.read_bytes() == CONTENT
    assert hub.calls() == [("hub", "HEAD"), ("storage", "GET")]
    head, get = hub.requests
    assert head.headers.get("authorization") == "Bearer hf_secret"
    assert "authorization" not in get.headers, "the token must never reach the storage host"


def test_hf_token_from_the_environment_is_used(tmp_path, hub, monkeypatch):
    hub.add_file(REPO, FILE, CONTENT)
    hub.gate(REPO, "hf_from_env")
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    path = resolve_model_file(PINNED, cache_dir=tmp_path, endpoint=hub.endpoint)
    assert path.read_bytes() == CONTENT


def test_unknown_revision(tmp_path, hub):
    hub.add_file(REPO, FILE, CONTENT)
    message, _ = expect_error(
        HubAccessError, HubFile(REPO, FILE, OTHER_SHA), cache_dir=tmp_path, endpoint=hub.endpoint
    )
    assert f"Revision {OTHER_SHA} does not exist" in message and REPO in message


def test_unknown_file(tmp_path, hub):
    hub.add_file(REPO, FILE, CONTENT)
    missing_file = HubFile(REPO, "other.safetensors", SHA)
    message, _ = expect_error(HubAccessError, missing_file, cache_dir=tmp_path, endpoint=hub.endpoint)
    assert f"File other.safetensors does not exist in the Hub repository {REPO}" in message and SHA in message


@pytest.mark.parametrize("suffix", [".pth", ".ckpt", ".pt", ".bin"])
def test_pickle_suffix_is_refused(tmp_path, suffix):
    path = tmp_path / f"style{suffix}"
    path.write_bytes(CONTENT)  # the suffix alone decides: it is never opened
    message, _ = expect_error(CheckpointError, path)
    assert f"depthstyle convert {path} -o {tmp_path / 'style.safetensors'}" in message
    assert "never unpickles" in message


def test_pickled_hub_file_is_refused_before_any_request(tmp_path, hub):
    hub.add_file(REPO, "pytorch_model.bin", b"\x80\x02")
    with pytest.raises(CheckpointError, match="depthstyle convert"):
        resolve_model_file(HubFile(REPO, "pytorch_model.bin", SHA), cache_dir=tmp_path, endpoint=hub.endpoint)
    assert hub.requests == []


def test_pickled_bytes_under_a_safetensors_name_are_refused(tmp_path):
    path = tmp_path / "model.safetensors"
    torch.save({"w": torch.zeros(2)}, path)
    message, _ = expect_error(CheckpointError, path)
    assert f"{path} is a pickled PyTorch checkpoint" in message
    assert f"-o {tmp_path / 'model.converted.safetensors'}" in message


def start_fresh_python(code: str, args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    """Start ``code`` in a new interpreter, where huggingface_hub reads the HF_* variables at import.
    Its HF_HOME is a fresh folder under ``cwd`` (no stored token) and telemetry is off."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE_"))}
    isolated = {"HF_HOME": str(cwd / "hf_home"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env={**clean, **isolated, **env},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


RESOLVE_IN_CHILD = f"""
    import sys
    from depthstyle.depthstyle_core.hub.resolve import HubFile, resolve_model_file
    try:
        print(resolve_model_file(HubFile({REPO!r}, {FILE!r}, {SHA!r}), cache_dir=sys.argv[1]))
    except Exception as err:
        print(type(err).__name__, err)
"""


def test_hf_endpoint_token_and_offline_variables_work_as_huggingface_hub_defines_them(tmp_path, hub):
    hub.add_file(REPO, FILE, CONTENT)
    hub.gate(REPO, "hf_child")
    offline_env = {"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": hub.endpoint}
    online_env = {"HF_ENDPOINT": hub.endpoint, "HF_TOKEN": "hf_child"}
    # Both children run at once (each imports torch); they use separate caches.
    offline = start_fresh_python(RESOLVE_IN_CHILD, [str(tmp_path / "offline")], offline_env, tmp_path)
    online = start_fresh_python(RESOLVE_IN_CHILD, [str(tmp_path / "online")], online_env, tmp_path)
    offline_out, offline_err = offline.communicate(timeout=120)
    online_out, online_err = online.communicate(timeout=120)

    assert offline_out.startswith("ModelNotAvailableError"), offline_out + offline_err
    assert f"download {hub.endpoint}/{REPO}/resolve/{SHA}/{FILE}" in offline_out
    expected = tmp_path / "online" / "models--org--tiny-model" / "snapshots" / SHA / FILE
    assert online_out.strip() == str(expected), online_out + online_err
    assert expected.read_bytes() == CONTENT
    # Only the online child, with its HF_TOKEN, talked to the Hub; the token stayed on the Hub.
    assert hub.calls() == [("hub", "HEAD"), ("storage", "GET")]
    assert hub.requests[0].headers.get("authorization") == "Bearer hf_child"
    assert "authorization" not in hub.requests[1].headers
