"""DepthStyle inside a real ComfyUI: registration, model folders, the example workflow, errors, Cancel.

Set COMFYUI_DIR to a ComfyUI checkout (its own Python is used when ``$COMFYUI_DIR/.venv`` exists).
The pack under test is this checkout, linked into a temporary custom_nodes folder; ComfyUI runs on
the CPU, listens on 127.0.0.1 only and keeps all its data in a temporary base directory. Models are
tiny random-weight Depth Anything checkpoints, and the Hub is switched off (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from depthstyle.depthstyle_core.depth import DEPTH_MODELS
from depthstyle.nodes.model_choices import BUILTIN_DEPTH_MODELS

from .comfyui_server import (
    REPO,
    RUN_TIMEOUT,
    ComfyUIServer,
    comfyui_python,
    message,
    offline_server,
    skip_unless_comfyui,
    ui_to_api,
)
from .factories import write_depth_checkpoint

pytestmark = pytest.mark.integration
skip_unless_comfyui(__name__)

INPUT_SIZE = (97, 61)  # odd width and height: the outputs must come back at exactly this size
LOADER, ESTIMATE = "DepthStyle_DepthModelLoader", "DepthStyle_EstimateDepth"
USER_MODEL = "user_tiny_depth.safetensors"


def write_input_image(path: Path) -> None:
    """A picture with structure (gradients and a disc), so that depth cannot come out flat."""
    width, height = INPUT_SIZE
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    disc = ((x - 60) ** 2 + (y - 25) ** 2 < 15**2).astype(np.float32)
    rgb = np.stack([x / width, y / height, 0.3 + 0.6 * disc], axis=-1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((rgb * 255).astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A ComfyUI with this pack, a user model folder from extra_model_paths.yaml, and tiny models."""
    base = tmp_path_factory.mktemp("comfy_base")
    user_models = tmp_path_factory.mktemp("user_models")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "depthstyle").symlink_to(REPO, target_is_directory=True)
    write_input_image(base / "input" / "example.png")
    default_depth_dir = base / "models" / "depthstyle" / "depth"
    write_depth_checkpoint(default_depth_dir / DEPTH_MODELS["small"].hub_file.local_filename, seed=1)
    write_depth_checkpoint(user_models / "depth" / USER_MODEL, seed=2, layout="hf")
    (user_models / "depth" / "legacy.pth").write_bytes(b"not listed: only .safetensors files are")
    extra_paths = base / "extra_model_paths.yaml"
    extra_paths.write_text(f"depthstyle_test:\n    base_path: {user_models}\n    depthstyle_depth: depth\n")
    with offline_server(base, extra_paths) as server:
        yield server, user_models / "depth"


@pytest.fixture(scope="module")
def comfy(setup) -> ComfyUIServer:
    return setup[0]


def api_workflow() -> dict:
    return json.loads((REPO / "tests" / "workflows" / "depth_preview_api.json").read_text())


def output_image(comfy: ComfyUIServer, entry: dict, node_id: str) -> np.ndarray:
    images = entry["outputs"][node_id]["images"]
    assert len(images) == 1, images
    return np.asarray(Image.open(io.BytesIO(comfy.view(images[0]))).convert("RGB")).astype(np.int16)


def test_both_nodes_are_registered_with_their_schemas(object_info, comfy):
    assert LOADER in object_info and ESTIMATE in object_info, comfy.log_tail()
    loader, estimate = object_info[LOADER], object_info[ESTIMATE]
    assert loader["category"] == estimate["category"] == "DepthStyle/depth"
    assert loader["input_order"] == {"required": ["model", "precision"]}
    models = loader["input"]["required"]["model"][1]["options"]
    assert models[:3] == list(BUILTIN_DEPTH_MODELS)
    assert USER_MODEL in models and "legacy.pth" not in models
    assert loader["input"]["required"]["precision"][1]["options"] == ["fp32", "fp16", "bf16"]
    assert "CC-BY-NC-4.0" in loader["description"] and "Apache-2.0" in loader["description"]
    assert loader["output"] == ["DEPTHSTYLE_DEPTH_MODEL"]

    assert estimate["input_order"] == {"required": ["image", "depth_model", "resolution", "normalization"]}
    resolution = estimate["input"]["required"]["resolution"]
    assert resolution[0] == "INT"
    assert {k: resolution[1][k] for k in ("default", "min", "max", "step")} == {
        "default": 518,
        "min": 14,
        "max": 4096,
        "step": 14,
    }
    assert estimate["input"]["required"]["normalization"][1]["options"] == ["per_image", "per_batch", "raw"]
    assert estimate["input"]["required"]["depth_model"][0] == "DEPTHSTYLE_DEPTH_MODEL"
    assert estimate["output"] == ["IMAGE", "IMAGE"]
    assert estimate["output_name"] == ["depth", "depth_colored"]


def test_user_model_folder_from_extra_model_paths_survives_registration(comfy):
    files = comfy.get_json("/models/depthstyle_depth")
    assert USER_MODEL in files, "the folder from extra_model_paths.yaml was dropped"
    assert DEPTH_MODELS["small"].hub_file.local_filename in files, "our default folder is missing"
    assert "legacy.pth" not in files
    assert {"depthstyle_styles", "depthstyle_vgg"} <= set(comfy.get_json("/models"))


def test_ui_workflow_is_served_as_a_template_and_matches_its_api_twin(comfy, object_info):
    templates = comfy.get_json("/workflow_templates").get("depthstyle", [])
    assert set(templates) == {
        "depth_preview",
        "optimize_with_depth",
        "stylize_with_depth_preview",
        "train_style",
        "depth_masked_stylize",
        "video_stylize",
        "structure_report",
        "stylize_any_painting",
    }
    workflow = comfy.get_json("/api/workflow_templates/depthstyle/depth_preview.json")
    assert workflow == json.loads((REPO / "workflows" / "depth_preview.json").read_text())
    expected = {key: {k: v for k, v in node.items() if k != "_meta"} for key, node in api_workflow().items()}
    assert ui_to_api(workflow, object_info) == expected


def test_depth_preview_workflow_returns_input_sized_depth(comfy):
    entry = comfy.run(api_workflow())
    assert entry["status"]["status_str"] == "success", entry["status"]
    depth, colored = output_image(comfy, entry, "4"), output_image(comfy, entry, "5")
    assert depth.shape == colored.shape == (INPUT_SIZE[1], INPUT_SIZE[0], 3)
    assert (depth[..., 0] == depth[..., 1]).all() and (depth[..., 0] == depth[..., 2]).all(), "depth not grey"
    assert depth.min() == 0 and depth.max() == 255, "per_image depth must span the full range"
    assert depth.std() > 10
    assert np.abs(colored[..., 0] - colored[..., 2]).max() > 50, "the colourised preview is grey"


def test_local_file_in_user_folder_loads_and_runs(comfy):
    prompt = api_workflow()
    prompt["2"]["inputs"]["model"] = USER_MODEL
    prompt["3"]["inputs"].update(resolution=28, normalization="per_batch")
    entry = comfy.run(prompt)
    assert entry["status"]["status_str"] == "success", entry["status"]
    depth = output_image(comfy, entry, "4")
    assert depth.shape == (INPUT_SIZE[1], INPUT_SIZE[0], 3)
    assert depth.max() - depth.min() > 100


@pytest.mark.parametrize("key", ["large", "base"])
def test_missing_builtin_model_fails_naming_the_url_and_the_folder(comfy, setup, key):
    # Only Small's file is in the model folder; Base must not pick it up although both come from a
    # Hub file called model.safetensors.
    user_depth_dir = setup[1]
    label = next(label for label, value in BUILTIN_DEPTH_MODELS.items() if value == key)
    prompt = api_workflow()
    prompt["2"]["inputs"]["model"] = label
    entry = comfy.run(prompt)
    error = message(entry, "execution_error")
    assert error is not None, f"{label} must not load another model's file: {entry['status']}"
    assert error["node_type"] == LOADER
    assert error["exception_type"].endswith("ModelNotAvailableError")
    hub_file = DEPTH_MODELS[key].hub_file
    text = error["exception_message"]
    assert hub_file.repo_id in text and hub_file.revision in text
    assert str(user_depth_dir / hub_file.local_filename) in text, "the user's folder comes first"


def test_cancel_interrupts_depth_estimation(comfy):
    prompt = api_workflow()
    prompt["6"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 512}}
    prompt["3"]["inputs"].update(image=["6", 0], resolution=518, normalization="per_batch")
    prompt_id = comfy.queue_prompt(prompt)
    comfy.wait_until_running(prompt_id, timeout=RUN_TIMEOUT)
    time.sleep(1.0)
    started = time.monotonic()
    status, _ = comfy.request("/interrupt", {})
    assert status == 200
    entry = comfy.wait_for_history(prompt_id, timeout=RUN_TIMEOUT)
    interrupted = message(entry, "execution_interrupted")
    assert interrupted is not None and message(entry, "execution_error") is None, entry["status"]
    assert interrupted["node_type"] == ESTIMATE, "the interrupt must stop the depth node while it works"
    assert time.monotonic() - started < 20, "Cancel took effect only after the work was done"


BRIDGE_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    sys.argv = ["main.py", "--cpu", "--base-directory", os.environ["PACK_PARENT"]]
    import comfy.options
    comfy.options.enable_args_parsing()
    import comfy.model_management as mm
    import comfy.utils
    import folder_paths
    import torch
    sys.path.insert(0, os.environ["PACK_PARENT"])
    from depthstyle.nodes import comfy_services as services

    folder_paths.add_model_folder_path("depthstyle_depth", "/user/depth")  # as extra_model_paths.yaml does
    services.register_model_folders()
    services.register_model_folders()
    calls = []
    comfy.utils.set_progress_bar_global_hook(lambda v, t, p, node_id=None: calls.append((v, t, p)))
    on_progress = services.progress_callback()
    on_progress(1, 3, None)
    on_progress(3, 3, torch.rand(2, 3, 20, 30))
    mm.interrupt_current_processing(True)
    try:
        services.should_stop()
        raised = False
    except mm.InterruptProcessingException:
        raised = True
    print(json.dumps({
        "paths": folder_paths.get_folder_paths("depthstyle_depth"),
        "extensions": sorted(folder_paths.folder_names_and_paths["depthstyle_depth"][1]),
        "default": os.path.join(folder_paths.models_dir, "depthstyle", "depth"),
        "calls": [[v, t, None if p is None else [p[0], list(p[1].size), p[2]]] for v, t, p in calls],
        "raised": raised,
        "cleared": not mm.processing_interrupted(),
        "output_device": str(services.output_device()),
    }))
    """
)


def test_comfy_services_bridge_in_comfyuis_own_python(tmp_path):
    (tmp_path / "depthstyle").symlink_to(REPO, target_is_directory=True)
    comfyui_dir = Path(os.environ["COMFYUI_DIR"]).resolve()
    env = {**os.environ, "PACK_PARENT": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [comfyui_python(comfyui_dir), "-c", BRIDGE_SCRIPT],
        cwd=comfyui_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["paths"] == ["/user/depth", result["default"]], "the user's folder must stay, and first"
    assert result["extensions"] == [".safetensors"]
    assert result["calls"] == [[1, 3, None], [3, 3, ["JPEG", [30, 20], 512]]]
    assert result["raised"] and result["cleared"], "Cancel must raise ComfyUI's interrupt and reset the flag"
    assert result["output_device"] == "cpu"
