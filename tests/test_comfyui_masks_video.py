"""Depth masks inside a real ComfyUI: the DepthToMask node, Stylize's mask/scale/frames inputs, and the
depth_masked_stylize workflow (the video workflow is tested with the any-painting node it uses).

Set COMFYUI_DIR to a ComfyUI checkout. As in the other integration modules this checkout is linked into a
temporary custom_nodes folder and ComfyUI runs on the CPU, offline, with tiny random-weight models. Each
workflow's result is compared with the library run in this process on the same inputs and models.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from depthstyle.depthstyle_core.depth import DEPTH_MODELS, estimate_depth, load_depth_model
from depthstyle.depthstyle_core.masks import depth_to_mask
from depthstyle.depthstyle_core.style_model import load_style_model, save_style_model
from depthstyle.depthstyle_core.stylize import stylize

from .comfyui_media import shown_image, succeeded
from .comfyui_server import REPO, ComfyUIServer, offline_server, pack_base, skip_unless_comfyui, ui_to_api
from .factories import write_depth_checkpoint
from .style_helpers import lively_net, textured_images

pytestmark = pytest.mark.integration
skip_unless_comfyui(__name__)

MASK_NODE, STYLIZE = "DepthStyle_DepthToMask", "DepthStyle_Stylize"
PHOTO_SIZE = (97, 61)  # odd sides: the outputs must come back at exactly this size


@pytest.fixture(scope="module")
def comfy(tmp_path_factory) -> ComfyUIServer:
    base = pack_base(tmp_path_factory, "comfy_masks_video")
    width, height = PHOTO_SIZE
    photo = textured_images(1, height, width, seed=20)[0].permute(1, 2, 0).numpy()
    Image.fromarray((photo * 255).round().astype(np.uint8)).save(base / "input" / "example.png")
    models = base / "models" / "depthstyle"
    write_depth_checkpoint(models / "depth" / DEPTH_MODELS["small"].hub_file.local_filename, seed=6)
    save_style_model(models / "styles" / "my_style.safetensors", lively_net(seed=4))
    with offline_server(base) as server:
        yield server


@pytest.fixture(scope="module")
def models(comfy):
    """The depth and style models ComfyUI uses, loaded here for the reference results."""
    folder = comfy.base_dir / "models" / "depthstyle"
    depth = load_depth_model(folder / "depth" / DEPTH_MODELS["small"].hub_file.local_filename)
    return depth, load_style_model(folder / "styles" / "my_style.safetensors")[0]


def api_workflow(name: str) -> dict:
    return json.loads((REPO / "tests" / "workflows" / f"{name}_api.json").read_text())


# --- schemas and workflow files ----------------------------------------------------------------------


def test_depth_to_mask_and_the_new_stylize_inputs_are_registered(object_info, comfy):
    assert MASK_NODE in object_info, comfy.log_tail()
    node = object_info[MASK_NODE]
    assert node["category"] == "DepthStyle/depth"
    assert node["input_order"] == {"required": ["depth", "near", "far", "softness", "feather", "invert"]}
    inputs = node["input"]["required"]
    assert inputs["depth"][0] == "IMAGE"
    ranges = {name: tuple(inputs[name][1][k] for k in ("default", "min", "max")) for name in ("near", "far")}
    assert ranges == {"near": (1.0, 0.0, 1.0), "far": (0.5, 0.0, 1.0)}
    assert inputs["softness"][1]["default"] == 0.1 and inputs["feather"][1]["default"] == 0
    assert inputs["invert"][1]["default"] is False
    assert node["output"] == ["MASK"] and node["output_name"] == ["mask"]

    stylize_node = object_info[STYLIZE]
    assert stylize_node["input_order"]["optional"] == ["precision", "scale", "frames", "mask"]
    optional = stylize_node["input"]["optional"]
    assert optional["frames"][1]["options"] == ["independent", "shared", "flow"], "new values go last"
    assert optional["frames"][1]["default"] == "independent"
    scale = optional["scale"][1]
    assert (scale["default"], scale["min"], scale["max"]) == (1.0, 0.1, 4.0)
    assert optional["mask"][0] == "MASK"


@pytest.mark.parametrize("name", ["depth_masked_stylize"])
def test_ui_workflows_are_served_as_templates_and_match_their_api_twins(comfy, object_info, name):
    assert name in comfy.get_json("/workflow_templates").get("depthstyle", [])
    workflow = comfy.get_json(f"/api/workflow_templates/depthstyle/{name}.json")
    assert workflow == json.loads((REPO / "workflows" / f"{name}.json").read_text())
    twin = {key: {k: v for k, v in node.items() if k != "_meta"} for key, node in api_workflow(name).items()}
    assert ui_to_api(workflow, object_info) == twin


# --- the workflows ------------------------------------------------------------------------------------


def example_photo(comfy: ComfyUIServer) -> torch.Tensor:
    photo = np.asarray(Image.open(comfy.base_dir / "input" / "example.png")).copy()
    return torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255.0


def test_depth_masked_workflow_gives_the_library_result(comfy, models):
    entry = succeeded(comfy.run(api_workflow("depth_masked_stylize")))
    depth_model, net = models
    photo = example_photo(comfy)
    with torch.inference_mode():
        mask = depth_to_mask(estimate_depth(depth_model, photo), near=0.5, far=0.0, softness=0.15, feather=4)
        expected = stylize(net, photo, mask=mask)[0]
    result = shown_image(comfy, entry, "8")
    width, height = PHOTO_SIZE
    assert result.shape == (3, height, width)
    assert (result - expected).abs().max() <= 1 / 255 + 1e-6, "ComfyUI and the library must agree"
    assert (result - photo[0]).abs().mean() > 0.05, "the photo was stylised"
    shown_mask = shown_image(comfy, entry, "6")[0]
    assert (shown_mask - mask[0, 0]).abs().max() <= 1 / 255 + 1e-6, "the mask preview shows the mask"


def test_where_the_depth_mask_is_zero_comfyui_returns_the_photo_exactly(comfy, models):
    depth_model, _ = models
    photo = example_photo(comfy)
    with torch.inference_mode():
        middle = float(estimate_depth(depth_model, photo).median())  # the tiny model's depth: split it
    prompt = api_workflow("depth_masked_stylize")
    prompt["5"]["inputs"].update(near=middle, far=0.0, softness=0.0, feather=0)
    entry = succeeded(comfy.run(prompt))
    result, mask = shown_image(comfy, entry, "8"), shown_image(comfy, entry, "6")[0]
    keep, paint = mask == 0, mask == 1
    assert keep.float().mean() > 0.3 and paint.float().mean() > 0.3
    assert torch.equal(result[:, keep], photo[0][:, keep]), "the near part is the photo, unchanged"
    assert (result[:, paint] - photo[0][:, paint]).abs().mean() > 0.05, "the far part is stylised"
