"""The per-image optimisation node inside a real ComfyUI: schema, the example workflow, sizes, Cancel.

Set COMFYUI_DIR to a ComfyUI checkout. As in the other integration modules, this checkout is linked
into a temporary custom_nodes folder, ComfyUI runs on the CPU with its data in a temporary base
directory, the Hub is switched off, and the networks are tiny random-weight files saved under the
names of the real ones.
"""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from PIL import Image

from .comfyui_server import (
    REPO,
    RUN_TIMEOUT,
    ComfyUIServer,
    message,
    offline_server,
    pack_base,
    skip_unless_comfyui,
    ui_to_api,
)
from .factories import picture, write_comfy_loss_models

pytestmark = pytest.mark.integration
skip_unless_comfyui(__name__)

OPTIMIZE = "DepthStyle_OptimizeStyle"
PHOTO_SIZE = (97, 61)  # width, height: odd on purpose
TINY = {"size": 64, "steps": 2}


@pytest.fixture(scope="module")
def comfy(tmp_path_factory) -> ComfyUIServer:
    base = pack_base(tmp_path_factory, "comfy_optimize_base")
    picture(*PHOTO_SIZE, seed=1).save(base / "input" / "example.png")
    picture(50, 40, seed=2).save(base / "input" / "style.png")
    write_comfy_loss_models(base, depth_seed=1)
    with offline_server(base) as server:
        yield server


def workflow_prompt(**settings) -> dict:
    prompt = json.loads((REPO / "tests" / "workflows" / "optimize_with_depth_api.json").read_text())
    prompt["4"]["inputs"].update({**TINY, **settings})
    return prompt


def shown_image(comfy: ComfyUIServer, entry: dict, node_id: str) -> np.ndarray:
    (image,) = entry["outputs"][node_id]["images"]
    return np.asarray(Image.open(io.BytesIO(comfy.view(image))).convert("RGB")).astype(np.int16)


def succeeded(entry: dict) -> dict:
    assert entry["status"]["status_str"] == "success", entry["status"]
    return entry


def test_the_node_is_registered_with_its_schema(object_info, comfy):
    assert OPTIMIZE in object_info, comfy.log_tail()
    node = object_info[OPTIMIZE]
    assert node["category"] == "DepthStyle/style" and "no training" in node["display_name"]
    assert node["input_order"] == {
        "required": [
            "image",
            "style_image",
            "size",
            "steps",
            "content_weight",
            "style_weight",
            "depth_weight",
            "tv_weight",
            "init",
            "seed",
            "strength",
            "preserve_color",
        ],
        "optional": ["depth_model", "depth_map", "mask"],
    }
    required = node["input"]["required"]
    defaults = {name: spec[1].get("default") for name, spec in required.items() if len(spec) > 1}
    assert defaults == {
        "image": None,
        "style_image": None,
        "size": 512,
        "steps": 100,
        "content_weight": 1.0,
        "style_weight": 5.0,
        "depth_weight": 5.0,
        "tv_weight": 1.0,
        "init": "content",
        "seed": 0,
        "strength": 1.0,
        "preserve_color": False,
    }
    assert required["init"][1]["options"] == ["content", "noise", "blend"]
    assert required["size"][1]["min"] == 0 and "0 keeps the input's size" in required["size"][1]["tooltip"]
    assert node["input"]["optional"]["depth_model"][0] == "DEPTHSTYLE_DEPTH_MODEL"
    assert node["input"]["optional"]["mask"][0] == "MASK"
    assert node["output"] == ["IMAGE"] and node["output_name"] == ["optimized"]


def test_the_ui_workflow_is_a_template_and_matches_its_api_twin(comfy, object_info):
    assert "optimize_with_depth" in comfy.get_json("/workflow_templates").get("depthstyle", [])
    workflow = comfy.get_json("/api/workflow_templates/depthstyle/optimize_with_depth.json")
    assert workflow == json.loads((REPO / "workflows" / "optimize_with_depth.json").read_text())
    twin = json.loads((REPO / "tests" / "workflows" / "optimize_with_depth_api.json").read_text())
    assert ui_to_api(workflow, object_info) == {
        key: {k: v for k, v in node.items() if k != "_meta"} for key, node in twin.items()
    }


def test_the_workflow_gives_the_documented_size_and_both_depth_maps(comfy):
    entry = succeeded(comfy.run(workflow_prompt()))
    result = shown_image(comfy, entry, "5")
    assert result.shape == (40, 64, 3), "long side 64, the photo's aspect (97x61)"
    photo = np.asarray(
        Image.open(comfy.base_dir / "input" / "example.png").convert("RGB").resize((64, 40), Image.BICUBIC)
    ).astype(np.int16)
    assert np.abs(result - photo).mean() > 1, "the optimisation changed nothing"
    depths = shown_image(comfy, entry, "9")
    width, height = PHOTO_SIZE  # ImageStitch brings the result's depth to the photo's height
    assert depths.shape == (height, 2 * width + 8, 3), "photo depth | spacing | result depth"


def test_size_zero_keeps_the_photo_size_and_runs_without_a_depth_model(comfy):
    prompt = workflow_prompt(size=0, init="noise")
    for key in ("3", "6", "7", "8", "9"):
        del prompt[key]
    del prompt["4"]["inputs"]["depth_model"]
    entry = succeeded(comfy.run(prompt))
    width, height = PHOTO_SIZE
    assert shown_image(comfy, entry, "5").shape == (height, width, 3)


def test_cancel_stops_the_optimisation_as_interrupted(comfy):
    prompt_id = comfy.queue_prompt(workflow_prompt(steps=10_000, seed=5))
    comfy.wait_until_running(prompt_id, timeout=RUN_TIMEOUT)
    time.sleep(5)  # past the loaders (tiny models): the optimisation is running
    started = time.monotonic()
    status, _ = comfy.request("/interrupt", {})
    assert status == 200
    entry = comfy.wait_for_history(prompt_id, timeout=RUN_TIMEOUT)
    interrupted = message(entry, "execution_interrupted")
    assert interrupted is not None and message(entry, "execution_error") is None, entry["status"]
    assert interrupted["node_type"] == OPTIMIZE
    assert time.monotonic() - started < 20, "Cancel took effect only much later"


def test_a_zero_mask_gives_the_photo_back_exactly(comfy):
    width, height = PHOTO_SIZE
    prompt = workflow_prompt(size=0)
    for key in ("6", "7", "8", "9"):
        del prompt[key]
    prompt["10"] = {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": width, "height": height}}
    prompt["4"]["inputs"]["mask"] = ["10", 0]
    entry = succeeded(comfy.run(prompt))
    photo = np.asarray(Image.open(comfy.base_dir / "input" / "example.png").convert("RGB")).astype(np.int16)
    assert np.array_equal(shown_image(comfy, entry, "5"), photo)


def test_a_depth_map_from_any_node_sets_the_depth_target(comfy):
    plain = shown_image(comfy, succeeded(comfy.run(workflow_prompt())), "5")
    prompt = workflow_prompt()
    prompt["10"] = {"class_type": "ImageInvert", "inputs": {"image": ["6", 0]}}  # near and far swapped
    prompt["4"]["inputs"]["depth_map"] = ["10", 0]
    swapped = shown_image(comfy, succeeded(comfy.run(prompt)), "5")
    assert swapped.shape == plain.shape and np.abs(swapped - plain).max() > 1
