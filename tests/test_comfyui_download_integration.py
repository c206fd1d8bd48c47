"""Model downloads inside a real ComfyUI, online, from a fake Hub that serves files as the real Hub does
(a 302 to a storage host on another loopback address that answers only GET).

Built-in models that are nowhere local land in the model folders (``models/depthstyle/depth`` and
``vgg``) under the names the README lists, with exactly HEAD on the Hub and GET on the storage host,
and are found there next time without any request. A built-in model already in the Hugging Face cache
is used from there. A Hub style model chosen in the style loader stays in the Hugging Face cache.

Set COMFYUI_DIR to a ComfyUI checkout; ComfyUI runs on the CPU on 127.0.0.1 with HF_ENDPOINT pointing
at the fake Hub (set before it starts: huggingface_hub reads it at import time).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from depthstyle.depthstyle_core.depth import DEPTH_MODELS
from depthstyle.depthstyle_core.models.transformer_net import TransformerNet
from depthstyle.depthstyle_core.models.vgg import VGG16_HUB
from depthstyle.depthstyle_core.style_model import save_style_model
from depthstyle.nodes.model_choices import BUILTIN_DEPTH_MODELS

from .comfyui_server import REPO, online_server, pack_base, skip_unless_comfyui
from .factories import write_depth_checkpoint, write_vgg_checkpoint
from .fake_hub import FakeHub, prefill_cache

pytestmark = pytest.mark.integration
skip_unless_comfyui(__name__)

SMALL, BASE = DEPTH_MODELS["small"].hub_file, DEPTH_MODELS["base"].hub_file
LABEL = {key: label for label, key in BUILTIN_DEPTH_MODELS.items()}
STYLE_REPO, STYLE_FILE = "someone/styles", "candy.safetensors"
TINY_TRAINING = {"iterations": 2, "checkpoint_every": 2, "batch_size": 1, "image_size": 32, "style_size": 32}


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("served")
    files = {
        "small": write_depth_checkpoint(folder / "small.safetensors", seed=1, layout="hf"),
        "base": write_depth_checkpoint(folder / "base.safetensors", seed=2, layout="hf"),
        "vgg": write_vgg_checkpoint(folder / "vgg.safetensors"),
        "style": save_style_model(folder / "style.safetensors", TransformerNet().eval()),
    }
    return {key: path.read_bytes() for key, path in files.items()}


@pytest.fixture(scope="module")
def hub(served):
    with FakeHub() as fake:
        fake.add_file(SMALL.repo_id, SMALL.filename, served["small"], commit=SMALL.revision)
        fake.add_file(VGG16_HUB.repo_id, VGG16_HUB.filename, served["vgg"], commit=VGG16_HUB.revision)
        fake.add_file(STYLE_REPO, STYLE_FILE, served["style"])
        yield fake


@pytest.fixture(scope="module")
def comfy(tmp_path_factory, hub, served):
    """A ComfyUI online against the fake Hub, with no model in its model folders; Base is in its
    Hugging Face cache only."""
    base = pack_base(tmp_path_factory, "comfy_download_base")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(base / "input" / "example.png")
    prefill_cache(
        base / "hf_home" / "hub", BASE.repo_id, BASE.filename, served["base"], revision=BASE.revision
    )
    with online_server(base, hub.endpoint) as server:
        yield server


def models_dir(comfy, kind: str):
    return comfy.base_dir / "models" / "depthstyle" / kind


def succeeded(entry: dict) -> dict:
    assert entry["status"]["status_str"] == "success", entry["status"]
    return entry


def train_with_depth(save_name: str, precision: str) -> dict:
    """The train workflow's API twin at tiny sizes, on the loaded picture, with the depth model."""
    prompt = json.loads((REPO / "tests" / "workflows" / "train_style_api.json").read_text())
    prompt["2"]["inputs"]["precision"] = precision
    prompt["3"]["inputs"].update(
        TINY_TRAINING, save_name=save_name, content_folder="", content_images=["1", 0]
    )
    return prompt


def test_builtin_models_are_downloaded_into_the_model_folders_once(comfy, hub, served):
    succeeded(comfy.run(train_with_depth("first", "fp32")))
    # The depth loader ran first, then the train node loaded VGG-16: each with the two requests of
    # hf_hub_download, and nothing else (ComfyUI itself sent nothing to the Hub).
    assert hub.calls() == [("hub", "HEAD"), ("storage", "GET")] * 2
    assert [r.path.split("/resolve/")[0] for r in hub.requests if r.server == "hub"] == [
        f"/{SMALL.repo_id}",
        f"/{VGG16_HUB.repo_id}",
    ]
    depth, vgg = models_dir(comfy, "depth"), models_dir(comfy, "vgg")
    assert sorted(p.name for p in depth.iterdir()) == [SMALL.local_filename]
    assert sorted(p.name for p in vgg.iterdir()) == [VGG16_HUB.local_filename]
    assert (depth / SMALL.local_filename).read_bytes() == served["small"]
    assert (vgg / VGG16_HUB.local_filename).read_bytes() == served["vgg"]
    assert not (comfy.base_dir / "hf_home" / "hub" / "models--timm--vgg16.tv_in1k").exists()

    # Another precision makes ComfyUI run the depth loader again; the train node always runs.
    succeeded(comfy.run(train_with_depth("second", "bf16")))
    assert len(hub.requests) == 4, "the second run must find both files in the model folders"


def test_builtin_model_in_the_hf_cache_is_used_from_there(comfy, hub):
    seen = len(hub.requests)
    prompt = json.loads((REPO / "tests" / "workflows" / "depth_preview_api.json").read_text())
    prompt["2"]["inputs"]["model"] = LABEL["base"]
    prompt["3"]["inputs"]["resolution"] = 28
    succeeded(comfy.run(prompt))
    assert len(hub.requests) == seen
    assert not (models_dir(comfy, "depth") / BASE.local_filename).exists()


def test_hub_style_model_is_kept_in_the_hf_cache(comfy, hub, served):
    seen = len(hub.requests)
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {
            "class_type": "DepthStyle_StyleModelLoader",
            "inputs": {"model": "(from hub_repo_id)", "hub_repo_id": STYLE_REPO, "hub_filename": STYLE_FILE},
        },
        "3": {
            "class_type": "DepthStyle_Stylize",
            "inputs": {
                "image": ["1", 0],
                "style_model": ["2", 0],
                "strength": 1.0,
                "preserve_color": False,
                "tile_size": 0,
            },
        },
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    succeeded(comfy.run(prompt))
    assert hub.calls()[seen:] == [("hub", "HEAD"), ("storage", "GET")]
    snapshot = comfy.base_dir / "hf_home" / "hub" / "models--someone--styles" / "snapshots"
    assert [p.read_bytes() for p in snapshot.glob(f"*/{STYLE_FILE}")] == [served["style"]]
    assert list(models_dir(comfy, "styles").rglob(STYLE_FILE)) == []
