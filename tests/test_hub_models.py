"""Every built-in model and a Hub style model, loaded through the real loaders from a fake Hub that
serves them as the real Hub does (a 302 to a storage host that answers only GET): exactly two requests
each, into the Hugging Face cache (command line, Python) or into a model folder (ComfyUI), and none
the second time. CI runs this file under each tested huggingface_hub version."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from huggingface_hub import constants
from safetensors.torch import load as load_bytes

from depthstyle.depthstyle_core.depth import DEPTH_MODELS, load_depth_model
from depthstyle.depthstyle_core.hub.resolve import HubFile
from depthstyle.depthstyle_core.models.depth_anything import DepthAnythingV2
from depthstyle.depthstyle_core.models.transformer_net import TransformerNet, TransformerNetConfig
from depthstyle.depthstyle_core.models.vgg import VGG16_HUB, VGG16Features, load_vgg16
from depthstyle.depthstyle_core.style_model import load_style_model, save_style_model

from .factories import write_depth_checkpoint, write_vgg_checkpoint
from .fake_hub import FakeHub

STYLE = HubFile("someone/styles", "candy/candy.safetensors", "main")
DEPTH_LAYOUTS = {"small": "hf", "base": "hf", "large": "original"}  # as the pinned Hub files are


@pytest.fixture(autouse=True)
def _online_without_token(monkeypatch):
    """Online whatever the environment says, no token, no telemetry (see test_hub.py)."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The bytes of each model, written by the factories: tiny, random, with the real key names."""
    folder = tmp_path_factory.mktemp("served")
    files = {
        key: write_depth_checkpoint(folder / f"{key}.safetensors", seed=i, layout=DEPTH_LAYOUTS[key])
        for i, key in enumerate(DEPTH_LAYOUTS)
    }
    files["vgg"] = write_vgg_checkpoint(folder / "vgg.safetensors")
    files["style"] = save_style_model(
        folder / "style.safetensors", TransformerNet(TransformerNetConfig()).eval()
    )
    return {key: path.read_bytes() for key, path in files.items()}


@pytest.fixture
def hub(served):
    with FakeHub() as fake:
        for key in DEPTH_LAYOUTS:
            hub_file = DEPTH_MODELS[key].hub_file
            fake.add_file(hub_file.repo_id, hub_file.filename, served[key], commit=hub_file.revision)
        fake.add_file(VGG16_HUB.repo_id, VGG16_HUB.filename, served["vgg"], commit=VGG16_HUB.revision)
        fake.add_file(STYLE.repo_id, STYLE.filename, served["style"])
        yield fake


def load(key: str, **locations) -> torch.nn.Module:
    """Load model ``key`` with the real loader; returns the network."""
    if key in DEPTH_LAYOUTS:
        return load_depth_model(key, **locations).model
    if key == "vgg":
        return load_vgg16(**locations)
    return load_style_model(STYLE, **locations)[0]


def numel(tensors) -> int:
    return sum(t.numel() for t in tensors)


@pytest.mark.parametrize("key", [*DEPTH_LAYOUTS, "vgg", "style"])
def test_into_the_hf_cache_with_two_requests_then_none(tmp_path, hub, served, key):
    locations = {"cache_dir": tmp_path / "cache", "endpoint": hub.endpoint}
    network = load(key, **locations)
    assert hub.calls() == [("hub", "HEAD"), ("storage", "GET")]
    expected_type = {"vgg": VGG16Features, "style": TransformerNet}.get(key, DepthAnythingV2)
    assert type(network) is expected_type
    assert numel(network.state_dict().values()) == numel(load_bytes(served[key]).values()), "another file"

    load(key, **locations)
    assert len(hub.requests) == 2, "the second load must come from the cache without any request"


@pytest.mark.parametrize("key", [*DEPTH_LAYOUTS, "vgg"])
def test_builtin_model_into_a_model_folder_under_its_readme_name(tmp_path, hub, served, key):
    hub_file = VGG16_HUB if key == "vgg" else DEPTH_MODELS[key].hub_file
    folder = tmp_path / "models" / "depthstyle" / ("vgg" if key == "vgg" else "depth")
    locations = {"model_dirs": [folder], "download_dir": folder, "cache_dir": tmp_path / "cache"}
    load(key, endpoint=hub.endpoint, **locations)
    assert hub.calls() == [("hub", "HEAD"), ("storage", "GET")]
    assert sorted(p.name for p in folder.iterdir()) == [hub_file.local_filename]
    assert (folder / hub_file.local_filename).read_bytes() == served[key]
    assert not (tmp_path / "cache").exists()

    load(key, endpoint=hub.endpoint, **locations)
    assert len(hub.requests) == 2


def test_readme_lists_each_builtin_model_with_its_pin_and_local_name():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for kind, hub_file in [
        *(("depth", DEPTH_MODELS[key].hub_file) for key in DEPTH_LAYOUTS),
        ("vgg", VGG16_HUB),
    ]:
        pin = f"| `{hub_file.repo_id}` | `{hub_file.filename}` | `{hub_file.revision}` |"
        row = f"{pin} `{kind}/{hub_file.local_filename}` |"
        assert row in readme, f"README table row missing or outdated: {row}"
