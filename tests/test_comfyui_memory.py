"""DepthStyle inside ComfyUI's model management, in a real ComfyUI: our networks are registered in
``current_loaded_models`` while in use and between prompts, a model ComfyUI already holds stays loaded
after Stylize Any Painting and Optimize Style run, and "Unload models" (``POST /free``) unloads ours.

A probe folder (tests/comfyui_probe) is linked into custom_nodes beside the pack: it lists what the
model management holds and loads a small model of ComfyUI's own kind, standing for the diffusion model
of a busy graph.
"""

from __future__ import annotations

import json
import time

import pytest
from PIL import Image

from depthstyle.depthstyle_core.depth import DEPTH_MODELS

from .comfyui_media import succeeded
from .comfyui_server import REPO, ComfyUIServer, message, offline_server, pack_base, skip_unless_comfyui
from .factories import write_comfy_loss_models, write_depth_checkpoint
from .style_helpers import textured_images

pytestmark = pytest.mark.integration
skip_unless_comfyui(__name__)

PAINTING = REPO / "tests" / "data" / "any_style" / "style.png"
DEPTH_LOADER = {
    "class_type": "DepthStyle_DepthModelLoader",
    "inputs": {"model": "Depth-Anything-V2-Small (Apache-2.0)", "precision": "fp32"},
}


@pytest.fixture(scope="module")
def comfy(tmp_path_factory) -> ComfyUIServer:
    base = pack_base(tmp_path_factory, "comfy_memory")
    (base / "custom_nodes" / "depthstyle_probe").symlink_to(REPO / "tests" / "comfyui_probe")
    photo = textured_images(1, 48, 64, seed=5)[0].permute(1, 2, 0).numpy()
    Image.fromarray((photo * 255).round().astype("uint8")).save(base / "input" / "example.png")
    Image.open(PAINTING).save(base / "input" / "style.png")
    write_comfy_loss_models(base, depth_seed=2)
    with offline_server(base) as server:
        yield server


def loaded(comfy: ComfyUIServer) -> list[str]:
    return comfy.get_json("/depthstyle_probe/loaded")["loaded"]


def any_painting_prompt() -> dict:
    prompt = json.loads((REPO / "tests" / "workflows" / "stylize_any_painting_api.json").read_text())
    prompt["3"] = DEPTH_LOADER
    prompt["4"]["inputs"]["depth_model"] = ["3", 0]
    return prompt


def optimize_prompt() -> dict:
    prompt = json.loads((REPO / "tests" / "workflows" / "optimize_with_depth_api.json").read_text())
    prompt["4"]["inputs"].update(size=64, steps=2)
    return {key: prompt[key] for key in ("1", "2", "3", "4", "5")}


def test_our_networks_are_managed_by_comfyui_beside_its_own_models(comfy):
    status, _ = comfy.request("/depthstyle_probe/hold", {})
    assert status == 200 and loaded(comfy) == ["ComfyProbeNet"]

    succeeded(comfy.run(any_painting_prompt()))
    assert loaded(comfy) == ["ComfyProbeNet", "DepthAnythingV2", "MicroAST"], "ours join, ComfyUI's stays"
    prompt = any_painting_prompt()
    prompt["4"]["inputs"]["strength"] = 0.5  # a new run of the node, with the same networks
    succeeded(comfy.run(prompt))
    assert loaded(comfy) == ["ComfyProbeNet", "DepthAnythingV2", "MicroAST"], "kept between prompts, once"

    succeeded(comfy.run(optimize_prompt()))
    assert "ComfyProbeNet" in loaded(comfy), "Optimize Style frees what it needs, not every model"

    status, _ = comfy.request("/free", {"unload_models": True})
    assert status == 200
    deadline = time.monotonic() + 30
    while loaded(comfy) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert loaded(comfy) == [], "Unload models unloads ours too"
    succeeded(comfy.run(any_painting_prompt()))  # and they load again when needed
    assert loaded(comfy) == ["DepthAnythingV2", "MicroAST"]


def test_optimize_style_loads_the_depth_model_only_when_the_depth_loss_counts(comfy):
    prompt = optimize_prompt()
    prompt["3"]["inputs"]["model"] = "Depth-Anything-V2-Base (CC-BY-NC-4.0, non-commercial)"  # not here
    prompt["4"]["inputs"]["depth_weight"] = 0.0
    succeeded(comfy.run(prompt))  # the loader would fail here: it did not run
    prompt["4"]["inputs"]["depth_weight"] = 5.0
    error = message(comfy.run(prompt), "execution_error")
    assert error is not None and error["node_id"] == "3" and "is not available" in error["exception_message"]


def test_a_depth_model_file_rewritten_under_its_name_is_loaded_again(comfy):
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "3": DEPTH_LOADER,
        "6": {
            "class_type": "DepthStyle_EstimateDepth",
            "inputs": {"image": ["1", 0], "depth_model": ["3", 0], "resolution": 28, "normalization": "raw"},
        },
        "7": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
    }
    path = comfy.base_dir / "models" / "depthstyle" / "depth" / DEPTH_MODELS["small"].hub_file.local_filename
    before = comfy.run(prompt)
    write_depth_checkpoint(path, seed=9)  # another model under the same name
    after = comfy.run(prompt)
    images = [succeeded(entry)["outputs"]["7"]["images"][0] for entry in (before, after)]
    assert comfy.view(images[0]) != comfy.view(images[1]), "the new file was loaded and run"
