"""The templates on a first run, as a new user meets them: a fresh ComfyUI (its own input/example.png and
nothing else), this pack alone, no model file and no Hub. Each template is fetched where the template
browser fetches it, the painting (and clip) its note asks for is uploaded as the frontend uploads it,
and the graph is queued as the frontend converts it (muted nodes left out).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from depthstyle.depthstyle_core.any_style.model_file import load_any_style_model
from depthstyle.depthstyle_core.any_style.stylize import stylize_any
from depthstyle.depthstyle_core.images import load_image

from .comfyui_media import shown_image, succeeded, write_clip
from .comfyui_server import (
    REPO,
    ComfyUIServer,
    message,
    offline_server,
    pack_base,
    skip_unless_comfyui,
    ui_to_api,
)

pytestmark = pytest.mark.integration
skip_unless_comfyui(__name__)

PAINTING = REPO / "tests" / "data" / "any_style" / "style.png"
TEMPLATE_URL = "/api/workflow_templates/depthstyle/{}.json"


@pytest.fixture(scope="module")
def comfy(tmp_path_factory) -> ComfyUIServer:
    base = pack_base(tmp_path_factory, "comfy_first_run")
    shutil.copy(Path(os.environ["COMFYUI_DIR"]) / "input" / "example.png", base / "input" / "example.png")
    with offline_server(base) as server:
        yield server


def downloaded_files(comfy: ComfyUIServer) -> list[Path]:
    places = [comfy.base_dir / "hf_home", comfy.base_dir / "models"]
    return [p for place in places if place.exists() for p in place.rglob("*") if p.is_file()]


def with_uploads(comfy: ComfyUIServer, workflow: dict, tmp_path: Path) -> dict:
    """The workflow once the user has loaded what its note asks for: a painting in place of the
    placeholder style.png, a clip in place of clip.mp4."""
    for node in workflow["nodes"]:
        values = node.get("widgets_values")
        if node["type"] == "LoadImage" and values[0] == "style.png":
            values[0] = comfy.upload(PAINTING, "my painting.png")
        elif node["type"] == "LoadVideo" and values[0] == "clip.mp4":
            write_clip(tmp_path / "clip.mp4")
            values[0] = comfy.upload(tmp_path / "clip.mp4", "my clip.mp4")
    return workflow


def test_the_any_painting_template_says_what_is_missing_then_paints_offline(comfy, object_info, tmp_path):
    workflow = comfy.get_json(TEMPLATE_URL.format("stylize_any_painting"))
    with pytest.raises(RuntimeError, match=r"style\.png") as refused:  # nothing loaded yet
        comfy.queue_prompt(ui_to_api(workflow, object_info))
    assert '"2"' in str(refused.value), "the error belongs to the Painting node"

    entry = succeeded(comfy.run(ui_to_api(with_uploads(comfy, workflow, tmp_path), object_info)))
    photo = load_image(comfy.base_dir / "input" / "example.png")
    with torch.inference_mode():
        expected = stylize_any(load_any_style_model(), photo, load_image(PAINTING))[0]
    result = shown_image(comfy, entry, "5")
    assert result.shape == expected.shape
    assert (result - expected).abs().max() <= 1 / 255 + 1e-6, "the built-in network, without depth"
    assert (result - photo[0]).abs().mean() > 0.05, "the photo was painted"
    assert downloaded_files(comfy) == [], "nothing was downloaded or written into the model folders"


def test_every_template_runs_or_names_the_model_it_needs(comfy, object_info, tmp_path):
    names = comfy.get_json("/workflow_templates")["depthstyle"]
    assert len(names) == len(list((REPO / "workflows").glob("*.json")))
    outcomes = {}
    for name in names:
        workflow = with_uploads(comfy, comfy.get_json(TEMPLATE_URL.format(name)), tmp_path)
        entry = comfy.run(ui_to_api(workflow, object_info))  # accepted: every node and input is valid
        error = message(entry, "execution_error")
        if error is None:
            outcomes[name] = succeeded(entry) and "ran"
            continue
        text = error["exception_message"]
        assert "is not available" in text and os.sep.join(("models", "depthstyle")) in text, (name, text)
        outcomes[name] = "needs a model"
    assert outcomes == {
        "stylize_any_painting": "ran",
        "depth_preview": "needs a model",
        "stylize_with_depth_preview": "needs a model",
        "depth_masked_stylize": "needs a model",
        "optimize_with_depth": "needs a model",
        "structure_report": "needs a model",
        "train_style": "needs a model",
        "video_stylize": "needs a model",
    }


def test_a_depth_model_that_is_not_used_is_not_loaded(comfy, object_info, tmp_path):
    """The depth group turned on, but depth_preserve 0: the model that cannot be had is never asked
    for (its loader does not run); at 0.5 the missing model is named."""
    workflow = with_uploads(comfy, comfy.get_json(TEMPLATE_URL.format("stylize_any_painting")), tmp_path)
    for node in workflow["nodes"]:
        if node.get("mode") == 2 and node["type"] == "DepthStyle_DepthModelLoader":
            node["mode"] = 0
    prompt = ui_to_api(workflow, object_info)
    assert prompt["4"]["inputs"]["depth_model"] == ["3", 0]
    prompt["4"]["inputs"]["depth_preserve"] = 0.0
    succeeded(comfy.run(prompt))  # the loader would fail here: it did not run
    assert downloaded_files(comfy) == []
    prompt["4"]["inputs"]["depth_preserve"] = 0.5
    error = message(comfy.run(prompt), "execution_error")
    assert error is not None and error["node_id"] == "3" and "is not available" in error["exception_message"]
