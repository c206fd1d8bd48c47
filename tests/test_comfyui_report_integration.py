"""The structure report node inside a real ComfyUI: schema, the example workflow and its API twin, the
figure and the numbers it outputs, the style distance with a style image, and a clear error.

Set COMFYUI_DIR to a ComfyUI checkout. As in the other integration files, this checkout is linked into a
temporary custom_nodes folder; ComfyUI runs on the CPU with the Hub off, and every network is a tiny
random-weight model saved under the real file name, so the real loading code runs.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from depthstyle.depthstyle_core.models.transformer_net import TransformerNet
from depthstyle.depthstyle_core.report.metrics import METRIC_NAMES
from depthstyle.depthstyle_core.style_model import save_style_model

from .comfyui_media import CLIP, write_clip
from .comfyui_server import (
    REPO,
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

REPORT = "DepthStyle_StructureReport"
PHOTO_SIZE = (97, 61)  # width, height: odd on purpose
PANEL_HEIGHT = 256  # draw_structure_figure's default


@pytest.fixture(scope="module")
def comfy(tmp_path_factory) -> ComfyUIServer:
    base = pack_base(tmp_path_factory, "comfy_report_base")
    picture(*PHOTO_SIZE, seed=1).save(base / "input" / "example.png")
    picture(40, 40, seed=2).save(base / "input" / "style.png")
    write_clip(base / "input" / "clip.mp4")
    models = write_comfy_loss_models(base, depth_seed=1)
    torch.manual_seed(0)
    save_style_model(models / "styles" / "my_style.safetensors", TransformerNet().eval())
    with offline_server(base) as server:
        yield server


def api_workflow() -> dict:
    return json.loads((REPO / "tests" / "workflows" / "structure_report_api.json").read_text())


def fast(prompt: dict) -> dict:
    """The depth network at 28 px instead of 518: the same code, seconds faster on a CPU."""
    prompt["5"]["inputs"]["resolution"] = 28
    return prompt


def succeeded(entry: dict) -> dict:
    assert entry["status"]["status_str"] == "success", entry["status"]
    return entry


def shown_image(comfy: ComfyUIServer, entry: dict, node_id: str) -> np.ndarray:
    (image,) = entry["outputs"][node_id]["images"]
    return np.asarray(Image.open(io.BytesIO(comfy.view(image))).convert("RGB"))


def test_report_node_is_registered_with_its_schema(comfy):
    info = comfy.get_json("/object_info")[REPORT]
    assert info["category"] == "DepthStyle/depth" and info["output_node"] is True
    order = info["input_order"]
    assert order["required"] == ["image", "stylized_image", "depth_model", "resolution", "edge_tolerance"]
    assert order["optional"] == ["style_image", "video"]
    required = info["input"]["required"]
    assert required["depth_model"][0] == "DEPTHSTYLE_DEPTH_MODEL"
    assert {k: required["resolution"][1][k] for k in ("default", "min", "step")} == {
        "default": 518,
        "min": 14,
        "step": 14,
    }
    assert (required["edge_tolerance"][1]["default"], required["edge_tolerance"][1]["min"]) == (2, 0)
    assert info["input"]["optional"]["style_image"][0] == "IMAGE"
    assert info["output"] == ["IMAGE", "STRING"] and info["output_name"] == ["report", "metrics"]


def test_workflow_is_served_as_a_template_and_matches_its_api_twin(comfy):
    assert "structure_report" in comfy.get_json("/workflow_templates").get("depthstyle", [])
    workflow = comfy.get_json("/api/workflow_templates/depthstyle/structure_report.json")
    assert workflow == json.loads((REPO / "workflows" / "structure_report.json").read_text())
    twin = {key: {k: v for k, v in node.items() if k != "_meta"} for key, node in api_workflow().items()}
    assert ui_to_api(workflow, comfy.get_json("/object_info")) == twin


def test_workflow_shows_the_figure_and_the_numbers(comfy):
    entry = succeeded(comfy.run(api_workflow()))
    report = entry["outputs"]["5"]
    (text,) = report["text"]
    assert entry["outputs"]["6"]["text"] == [text], "the JSON reaches the text preview"
    numbers = json.loads(text)
    assert numbers["settings"] == {
        "depth_model": "Depth-Anything-V2-Small",
        "depth_resolution": 518,
        "edge_tolerance_px": 2,
        "style": False,
    }
    (metrics,) = numbers["images"]
    assert list(metrics) == list(METRIC_NAMES) and metrics == numbers["mean"]
    assert metrics["style_distance"] is None
    assert (
        0 <= metrics["depth_delta1"] <= 1
        and -1 <= metrics["depth_spearman"] <= 1
        and metrics["depth_absrel"] > 0
    )
    assert 0 <= metrics["edge_f1"] < 1 and -1 <= metrics["ssim"] < 0.99, (
        "a random style model changes the photo"
    )

    figure = shown_image(comfy, entry, "5")
    width, height = PHOTO_SIZE
    panel_width = round(width * PANEL_HEIGHT / height)
    assert figure.shape[0] > PANEL_HEIGHT + 2 * 18 and figure.shape[1] >= 5 * panel_width
    photo = np.asarray(Image.open(comfy.base_dir / "input" / "example.png").convert("RGB"), dtype=np.float64)
    first_panel = figure[26 : 26 + PANEL_HEIGHT, 8 : 8 + panel_width].astype(np.float64)
    assert np.abs(first_panel.mean(axis=(0, 1)) - photo.mean(axis=(0, 1))).max() < 4, "the photo comes first"


def test_the_photo_against_itself_scores_perfectly_and_a_style_image_adds_the_style_distance(comfy):
    prompt = fast(api_workflow())
    del prompt["2"], prompt["3"]
    prompt["7"] = {"class_type": "LoadImage", "inputs": {"image": "style.png"}}
    prompt["5"]["inputs"].update(stylized_image=["1", 0], style_image=["7", 0])
    numbers = json.loads(succeeded(comfy.run(prompt))["outputs"]["5"]["text"][0])
    (metrics,) = numbers["images"]
    assert metrics["ssim"] == pytest.approx(1.0) and metrics["edge_f1"] == 1.0
    assert metrics["depth_absrel"] == pytest.approx(0.0, abs=1e-6) and metrics["depth_delta1"] == 1.0
    assert metrics["depth_spearman"] == pytest.approx(1.0)
    assert metrics["style_distance"] > 0 and numbers["settings"]["style"] is True


def test_a_batch_shows_one_figure_per_pair_and_mismatched_batches_fail_clearly(comfy):
    prompt = fast(api_workflow())
    prompt["8"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["3", 0], "amount": 3}}
    prompt["5"]["inputs"]["stylized_image"] = ["8", 0]
    entry = succeeded(comfy.run(prompt))
    assert len(entry["outputs"]["5"]["images"]) == 3, "one photo serves the whole batch"
    assert len(json.loads(entry["outputs"]["5"]["text"][0])["images"]) == 3

    prompt["9"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 2}}
    prompt["5"]["inputs"]["image"] = ["9", 0]
    error = message(comfy.run(prompt), "execution_error")
    assert error is not None and error["node_type"] == REPORT
    assert "got 2 content images and 3 stylised images" in error["exception_message"]


def video_report(frames: str) -> dict:
    """The clip's frames painted by the any-painting network with ``frames``, reported with video on."""
    prompt = fast(api_workflow())
    del prompt["1"], prompt["2"], prompt["3"]
    prompt["10"] = {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}}
    prompt["11"] = {"class_type": "GetVideoComponents", "inputs": {"video": ["10", 0]}}
    prompt["12"] = {"class_type": "LoadImage", "inputs": {"image": "style.png"}}
    prompt["13"] = {
        "class_type": "DepthStyle_StylizeAnyPainting",
        "inputs": {
            "image": ["11", 0],
            "style_image": ["12", 0],
            "strength": 1.0,
            "depth_preserve": 0.0,
            "style_size": 64,
            "preserve_color": False,
            "frames": frames,
            "tile": 0,
            "model": "MicroAST (built-in, MIT)",
        },
    }
    prompt["5"]["inputs"].update(image=["11", 0], stylized_image=["13", 0], video=True)
    return prompt


def test_with_video_on_the_numbers_say_how_still_a_clip_is(comfy):
    still = json.loads(succeeded(comfy.run(video_report("flow")))["outputs"]["5"]["text"][0])["video"]
    swimming = json.loads(succeeded(comfy.run(video_report("independent")))["outputs"]["5"]["text"][0])[
        "video"
    ]
    assert still["frames"] == CLIP["frames"] and still["flow"].startswith("opencv-dis-medium")
    assert "warp_error_long" not in still, "8 frames: nothing is 10 frames apart"
    assert still["input_warp_error"] == pytest.approx(swimming["input_warp_error"]), "one floor, the photos'"
    assert still["warp_error_x_input"] == pytest.approx(still["warp_error"] / still["input_warp_error"])
    assert still["warp_error"] < 0.5 * swimming["warp_error"], (still, swimming)

    prompt = video_report("flow")
    prompt["5"]["inputs"]["image"] = ["1", 0]
    prompt["1"] = {"class_type": "LoadImage", "inputs": {"image": "example.png"}}
    error = message(comfy.run(prompt), "execution_error")
    assert error is not None and "video needs the frames of one clip" in error["exception_message"]
