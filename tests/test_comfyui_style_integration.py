"""The style nodes inside a real ComfyUI: schemas, the train and stylise workflows, errors, Cancel, resume.

Set COMFYUI_DIR to a ComfyUI checkout (its own Python is used when ``$COMFYUI_DIR/.venv`` exists).
As in test_comfyui_integration.py, this checkout is linked into a temporary custom_nodes folder and
ComfyUI runs on the CPU with all its data in a temporary base directory and the Hub switched off.
Training uses tiny sizes, a random-weight VGG-16 saved under the name of the real one and a tiny
random-weight Depth Anything, so the real loading code runs and every run takes seconds.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from depthstyle.depthstyle_core.models.transformer_net import TransformerNet
from depthstyle.depthstyle_core.style_model import load_style_model, save_style_model
from depthstyle.nodes.model_choices import HUB_STYLE_CHOICE
from depthstyle.trainers.run.loss_log import LossLog
from depthstyle.trainers.run.paths import TrainPaths
from depthstyle.trainers.run.state import load_train_state

from .comfyui_server import (
    REPO,
    RUN_TIMEOUT,
    ComfyUIServer,
    comfyui_python,
    message,
    offline_server,
    pack_base,
    skip_unless_comfyui,
    ui_to_api,
)
from .factories import picture, write_comfy_loss_models
from .fake_hub import SHA, prefill_cache

pytestmark = pytest.mark.integration
skip_unless_comfyui(__name__)

LOADER, STYLIZE, TRAIN = "DepthStyle_StyleModelLoader", "DepthStyle_Stylize", "DepthStyle_TrainStyle"
PHOTO_SIZE = (97, 61)  # odd width and height: the stylised image must come back at exactly this size
CONTENT_SIZES = {"a.png": (48, 40), "b.jpg": (40, 56), "sub/c.png": (64, 64)}
CROP = 32  # image_size and style_size of the test runs
PRESET = "preset.safetensors"  # a style model in the folder before ComfyUI starts
TINY = {"batch_size": 1, "image_size": CROP, "style_size": CROP}


@pytest.fixture(scope="module")
def comfy(tmp_path_factory) -> ComfyUIServer:
    """A ComfyUI with this pack, test pictures, a content folder, tiny depth and VGG-16 models, started
    with --force-fp32."""
    base = pack_base(tmp_path_factory, "comfy_style_base")
    picture(*PHOTO_SIZE, seed=1).save(base / "input" / "example.png")
    picture(40, 40, seed=2).save(base / "input" / "style.png")
    for index, (name, size) in enumerate(CONTENT_SIZES.items()):
        path = base / "input" / "content_photos" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        picture(*size, seed=10 + index).save(path)
    (base / "input" / "empty_folder").mkdir()
    models = write_comfy_loss_models(base, depth_seed=1)
    save_style_model(models / "styles" / PRESET, TransformerNet().eval())
    (models / "styles" / "preset.state.safetensors").write_bytes(b"a resume file: never listed as a model")
    with offline_server(base, extra_args=("--force-fp32",)) as server:
        yield server


def styles_dir(comfy: ComfyUIServer) -> Path:
    return comfy.base_dir / "models" / "depthstyle" / "styles"


def api_workflow(name: str) -> dict:
    return json.loads((REPO / "tests" / "workflows" / f"{name}_api.json").read_text())


def train_prompt(save_name: str, **settings) -> dict:
    """The train workflow's API twin at tiny sizes (3 steps) under ``save_name``."""
    prompt = api_workflow("train_style")
    prompt["3"]["inputs"].update({"iterations": 3, "checkpoint_every": 2, **TINY, "save_name": save_name})
    prompt["3"]["inputs"].update(settings)
    return prompt


def succeeded(entry: dict) -> dict:
    assert entry["status"]["status_str"] == "success", entry["status"]
    return entry


def images(comfy: ComfyUIServer, entry: dict, node_id: str) -> list[np.ndarray]:
    shown = entry["outputs"][node_id]["images"]
    return [np.asarray(Image.open(io.BytesIO(comfy.view(i))).convert("RGB")).astype(np.int16) for i in shown]


def output_image(comfy: ComfyUIServer, entry: dict, node_id: str) -> np.ndarray:
    (image,) = images(comfy, entry, node_id)
    return image


def metadata(path: Path) -> dict[str, str]:
    return load_style_model(path)[1]


# --- registration and workflows -------------------------------------------------------------------


def test_style_nodes_are_registered_with_their_schemas(object_info, comfy):
    assert {LOADER, STYLIZE, TRAIN} <= set(object_info), comfy.log_tail()
    loader, stylize, train = object_info[LOADER], object_info[STYLIZE], object_info[TRAIN]
    assert loader["category"] == stylize["category"] == "DepthStyle/style"
    assert train["category"] == "DepthStyle/train"
    assert train["output_node"] is True and not loader["output_node"] and not stylize["output_node"]

    assert loader["input_order"] == {
        "required": ["model"],
        "optional": ["hub_repo_id", "hub_filename", "hub_revision"],
    }
    model = loader["input"]["required"]["model"][1]
    assert model["options"] == [PRESET, HUB_STYLE_CHOICE], "state files must not be listed as models"
    assert model["default"] == PRESET
    revision = loader["input"]["optional"]["hub_revision"][1]
    assert revision["default"] == "main" and "commit id" in revision["tooltip"]
    assert loader["output"] == ["DEPTHSTYLE_STYLE_MODEL"] and loader["output_name"] == ["style_model"]

    assert stylize["input_order"] == {
        "required": ["image", "style_model", "strength", "preserve_color", "tile_size"],
        "optional": ["precision", "scale", "frames", "mask"],
    }
    required = stylize["input"]["required"]
    assert required["style_model"][0] == "DEPTHSTYLE_STYLE_MODEL"
    strength = required["strength"][1]
    assert (strength["default"], strength["min"], strength["max"], strength["step"]) == (1.0, 0.0, 1.0, 0.01)
    assert required["preserve_color"][0] == "BOOLEAN" and required["preserve_color"][1]["default"] is False
    tile = required["tile_size"][1]
    assert (tile["default"], tile["min"], tile["step"]) == (0, 0, 8)
    assert stylize["input"]["optional"]["precision"][1]["options"] == ["fp32", "fp16", "bf16"]
    assert stylize["output"] == ["IMAGE"]

    assert train["input_order"]["required"] == [
        "style_image",
        "content_folder",
        "save_name",
        "resume",
        "iterations",
        "checkpoint_every",
        "batch_size",
        "image_size",
        "style_size",
        "learning_rate",
        "seed",
        "content_weight",
        "style_weight",
        "depth_weight",
        "tv_weight",
    ]
    assert train["input_order"]["optional"] == ["content_images", "depth_model"]
    inputs = {**train["input"]["required"], **train["input"]["optional"]}
    defaults = {name: inputs[name][1].get("default") for name in train["input_order"]["required"][1:]}
    assert defaults == {
        "content_folder": "",
        "save_name": "my_style",
        "resume": False,
        "iterations": 40000,
        "checkpoint_every": 1000,
        "batch_size": 4,
        "image_size": 256,
        "style_size": 512,
        "learning_rate": 0.001,
        "seed": 0,
        "content_weight": 1.0,
        "style_weight": 5.0,
        "depth_weight": 5.0,
        "tv_weight": 1e-6,
    }
    assert inputs["seed"][1]["control_after_generate"] is False, "a random seed per queue breaks resume"
    assert inputs["iterations"][1]["min"] == 1
    assert inputs["depth_model"][0] == "DEPTHSTYLE_DEPTH_MODEL"
    assert "depth_weight is ignored" in inputs["depth_model"][1]["tooltip"]
    assert train["output"] == ["DEPTHSTYLE_STYLE_MODEL", "IMAGE", "IMAGE"]
    assert train["output_name"] == ["style_model", "loss_curve", "preview"]


@pytest.mark.parametrize("name", ["train_style", "stylize_with_depth_preview"])
def test_ui_workflows_are_served_as_templates_and_match_their_api_twins(comfy, object_info, name):
    assert name in comfy.get_json("/workflow_templates").get("depthstyle", [])
    workflow = comfy.get_json(f"/api/workflow_templates/depthstyle/{name}.json")
    assert workflow == json.loads((REPO / "workflows" / f"{name}.json").read_text())
    twin = {key: {k: v for k, v in node.items() if k != "_meta"} for key, node in api_workflow(name).items()}
    assert ui_to_api(workflow, object_info) == twin


# --- training and stylising -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(comfy) -> tuple[dict, Path]:
    """The train workflow (depth model connected, content folder) run for 3 tiny steps."""
    entry = succeeded(comfy.run(train_prompt("my_style")))
    return entry, styles_dir(comfy) / "my_style.safetensors"


def test_train_workflow_saves_a_loadable_depth_aware_model(comfy, trained):
    entry, path = trained
    net, meta = load_style_model(path)
    assert isinstance(net, TransformerNet)
    assert meta["train.step"] == "3" and meta["train.complete"] == "true"
    assert meta["train.depth_model"] != "none", "the connected depth model must be used"
    config = json.loads(meta["train.config"])
    assert (config["image_size"], config["style_size"], config["batch_size"]) == (CROP, CROP, 1)
    assert config["depth_weight"] == 5.0
    assert config["precision"] == "fp32", "ComfyUI's choice (--force-fp32), not the loop's own 'auto'"
    assert "3 images in" in meta["train.content"], "the content folder (and its sub-folder) is used"
    paths = TrainPaths.for_model(path)
    assert load_train_state(paths.state).step == 3
    assert [r["step"] for r in LossLog.load(paths.log_json).records] == [2, 3]


def test_train_workflow_outputs_the_loss_curve_and_a_stylised_preview(comfy, trained):
    entry, path = trained
    curve = output_image(comfy, entry, "4")
    written = np.asarray(Image.open(TrainPaths.for_model(path).loss_curve).convert("RGB")).astype(np.int16)
    assert curve.shape == written.shape and np.abs(curve - written).max() <= 1
    assert curve.shape[0] > 100 and curve.shape[1] > 100
    colourful = np.abs(curve[..., 0] - curve[..., 2]) > 60
    assert colourful.sum() > 20, "the chart has no coloured loss lines"

    preview = output_image(comfy, entry, "5")
    assert min(preview.shape[:2]) == CROP, "the preview is a content photo at the training size"
    assert preview.std() > 1, "the preview is flat"
    own = images(comfy, entry, "3")
    assert [i.shape for i in own] == [curve.shape, preview.shape], "the output node shows both images"


def test_stylize_workflow_keeps_the_size_and_shows_both_depth_maps(comfy, trained):
    entry = succeeded(comfy.run(api_workflow("stylize_with_depth_preview")))
    width, height = PHOTO_SIZE
    stylised = output_image(comfy, entry, "4")
    assert stylised.shape == (height, width, 3)
    assert stylised.std() > 1
    photo = np.asarray(Image.open(comfy.base_dir / "input" / "example.png").convert("RGB")).astype(np.int16)
    assert np.abs(stylised - photo).mean() > 2, "the style model changed nothing"
    depths = output_image(comfy, entry, "9")
    assert depths.shape == (height, 2 * width + 8, 3), "photo depth | spacing | stylised depth"
    left, right = depths[:, :width, 0], depths[:, width + 8 :, 0]
    assert left.max() - left.min() > 100 and right.max() - right.min() > 100, "per-image depth spans 0..1"


def stylize_only(model: str, **settings) -> dict:
    """The stylise workflow without its depth part."""
    prompt = api_workflow("stylize_with_depth_preview")
    for key in ("5", "6", "7", "8", "9"):
        del prompt[key]
    prompt["2"]["inputs"]["model"] = model
    prompt["3"]["inputs"].update(settings)
    return prompt


def grey_style_model(path: Path, level: float = 127.5) -> None:
    """A style model whose output is nearly flat grey at ``level`` (0..255): its last bias."""
    torch.manual_seed(0)
    net = TransformerNet().eval()
    with torch.no_grad():
        net.deconv3.conv2d.bias.fill_(level)  # the network works in 0..255
    save_style_model(path, net)


def test_stylize_strength_zero_returns_the_photo(comfy, trained):
    photo = np.asarray(Image.open(comfy.base_dir / "input" / "example.png").convert("RGB")).astype(np.int16)
    entry = succeeded(comfy.run(stylize_only("my_style.safetensors", strength=0.0)))
    assert np.array_equal(output_image(comfy, entry, "4"), photo)


def test_stylize_preserve_color_keeps_the_photos_colours(comfy):
    grey_style_model(styles_dir(comfy) / "grey.safetensors")
    photo = np.asarray(Image.open(comfy.base_dir / "input" / "example.png").convert("RGB")).astype(np.float64)
    plain = output_image(comfy, succeeded(comfy.run(stylize_only("grey.safetensors"))), "4")
    kept = output_image(
        comfy, succeeded(comfy.run(stylize_only("grey.safetensors", preserve_color=True))), "4"
    )

    def chroma(image: np.ndarray) -> np.ndarray:
        return image - image.mean(axis=-1, keepdims=True)

    assert np.abs(chroma(plain)).mean() < 0.3 * np.abs(chroma(photo)).mean(), "the grey style is not grey"
    inside = (kept.min(axis=-1) > 1) & (kept.max(axis=-1) < 254)  # not clipped
    assert inside.mean() > 0.5
    assert np.abs(chroma(kept) - chroma(photo))[inside].mean() < 1.5, "the photo's colours were not kept"
    assert np.abs(kept - photo).mean() > 10, "the brightness must come from the style"


def test_stylize_loads_a_style_model_file_replaced_since_the_last_run(comfy):
    # Retraining under the same name rewrites the file: the loader must not serve its cached model.
    path = styles_dir(comfy) / "replaced.safetensors"
    grey_style_model(path, level=60)
    first = output_image(comfy, succeeded(comfy.run(stylize_only(path.name))), "4")
    grey_style_model(path, level=190)
    second = output_image(comfy, succeeded(comfy.run(stylize_only(path.name))), "4")
    assert abs(first.mean() - 60) < 3, "the first model was not used"
    assert abs(second.mean() - 190) < 3, "the loader returned the old model from ComfyUI's cache"


HUB_REPO = "depthstyle-test/styles"


def test_loader_takes_a_pinned_hub_file_from_the_cache_over_a_local_file_of_that_name(comfy, tmp_path):
    grey_style_model(styles_dir(comfy) / "hubbed.safetensors", level=60)  # the same name, locally
    grey_style_model(tmp_path / "hubbed.safetensors", level=200)
    cache = comfy.base_dir / "hf_home" / "hub"
    prefill_cache(cache, HUB_REPO, "hubbed.safetensors", (tmp_path / "hubbed.safetensors").read_bytes())
    hub = {"hub_repo_id": HUB_REPO, "hub_filename": "hubbed.safetensors"}
    for revision in (SHA, "main"):
        prompt = stylize_only(PRESET)
        prompt["2"]["inputs"].update(hub, hub_revision=revision)
        stylised = output_image(comfy, succeeded(comfy.run(prompt)), "4")
        assert abs(stylised.mean() - 200) < 3, f"revision {revision}: not the Hub file"


@pytest.mark.parametrize(
    ("hub", "error_type", "words"),
    [
        (
            {"hub_repo_id": HUB_REPO, "hub_filename": "hubbed.safetensors", "hub_revision": "f" * 40},
            "ModelNotAvailableError",
            [f"/{HUB_REPO}/resolve/{'f' * 40}/hubbed.safetensors", "HF_HUB_OFFLINE", "clear hub_repo_id"],
        ),
        ({"hub_repo_id": HUB_REPO, "hub_filename": ""}, "ValueError", ["hub_filename is empty", HUB_REPO]),
        ({"hub_repo_id": ""}, "ModelNotAvailableError", ["No style model chosen", "hub_repo_id"]),
    ],
)
def test_loader_errors_say_what_to_do(comfy, hub, error_type, words):
    prompt = stylize_only(HUB_STYLE_CHOICE if not hub["hub_repo_id"] else PRESET)
    prompt["2"]["inputs"].update(hub)
    error = message(comfy.run(prompt), "execution_error")
    assert error is not None and error["node_type"] == LOADER
    assert error["exception_type"].endswith(error_type)
    for word in words:
        assert word in error["exception_message"], error["exception_message"]


def test_baseline_training_from_content_images_without_depth_model(comfy):
    prompt = train_prompt("baseline", iterations=2, content_folder="", content_images=["1", 0])
    del prompt["3"]["inputs"]["depth_model"], prompt["2"]
    succeeded(comfy.run(prompt))
    meta = metadata(styles_dir(comfy) / "baseline.safetensors")
    assert meta["train.depth_model"] == "none"
    assert json.loads(meta["train.config"])["depth_weight"] == 0.0, "no depth model: the depth loss is off"
    assert meta["train.content"] == "1 in-memory images"


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("save_name", "words"), [("../escaped", ["'../escaped'", "'..'"]), ("/tmp/absolute", ["absolute path"])]
)
def test_a_save_name_that_cannot_be_a_file_is_refused_when_queued(comfy, save_name, words):
    with pytest.raises(RuntimeError) as refused:
        comfy.queue_prompt(train_prompt(save_name=save_name))
    for word in words:
        assert word in str(refused.value), str(refused.value)
    assert not list((comfy.base_dir / "models").rglob("escaped*"))
    assert not Path("/tmp/absolute.safetensors").exists()


@pytest.mark.parametrize("tile_size", [3, 20000])
def test_a_tile_size_that_cannot_work_is_refused_when_queued(comfy, tile_size):
    prompt = api_workflow("stylize_with_depth_preview")
    stylize = next(key for key, node in prompt.items() if node["class_type"] == "DepthStyle_Stylize")
    prompt[stylize]["inputs"]["tile_size"] = tile_size
    with pytest.raises(
        RuntimeError,
        match=f"tile_size must be 0 \\(automatic\\) or from 160 to 16384 pixels, got {tile_size}",
    ):
        comfy.queue_prompt(prompt)


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"content_folder": ""}, ["No content photos", "content_folder", "content_images"]),
        ({"content_folder": "empty_folder"}, ["no training images in", "empty_folder"]),
    ],
)
def test_bad_names_and_missing_content_fail_with_clear_errors(comfy, settings, words):
    started = time.monotonic()
    entry = comfy.run(train_prompt(**{"save_name": "never_written", **settings}))
    error = message(entry, "execution_error")
    assert error is not None, entry["status"]
    assert error["node_type"] == TRAIN
    for word in words:
        assert word in error["exception_message"], error["exception_message"]
    assert time.monotonic() - started < 20, "the inputs must be checked before training starts"
    assert not list((comfy.base_dir / "models").rglob("never_written*"))


# --- Cancel and resume ----------------------------------------------------------------------------


def wait_for_file(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.is_file():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} was not written within {timeout:.0f} s")
        time.sleep(0.05)


def test_cancel_saves_a_checkpoint_and_resume_continues_at_that_step(comfy):
    prompt = train_prompt("cancelled", iterations=100_000, checkpoint_every=4)
    paths = TrainPaths.for_model(styles_dir(comfy) / "cancelled.safetensors")
    prompt_id = comfy.queue_prompt(prompt)
    wait_for_file(paths.state, timeout=RUN_TIMEOUT)  # training runs: the step-4 checkpoint is there
    time.sleep(0.5)
    started = time.monotonic()
    status, _ = comfy.request("/interrupt", {})
    assert status == 200
    entry = comfy.wait_for_history(prompt_id, timeout=RUN_TIMEOUT)
    interrupted = message(entry, "execution_interrupted")
    assert interrupted is not None and message(entry, "execution_error") is None, entry["status"]
    assert interrupted["node_type"] == TRAIN
    assert time.monotonic() - started < 20, "Cancel took effect only much later"

    step = load_train_state(paths.state).step
    assert 4 <= step < 100_000
    meta = metadata(paths.model)  # loadable, and written at the step the run was cancelled at
    assert meta["train.step"] == str(step) and meta["train.complete"] == "false"
    seconds_at_cancel = {r["step"]: r["seconds"] for r in LossLog.load(paths.log_json).records}[step]

    prompt["3"]["inputs"].update(resume=True, iterations=step + 3)
    succeeded(comfy.run(prompt))
    meta = metadata(paths.model)
    assert meta["train.step"] == str(step + 3) and meta["train.complete"] == "true"
    assert load_train_state(paths.state).step == step + 3
    records = {r["step"]: r for r in LossLog.load(paths.log_json).records}
    assert records[step]["seconds"] == seconds_at_cancel, "the log before the cancel must be kept"
    assert max(records) == step + 3 and records[step + 3]["seconds"] > seconds_at_cancel
    assert f"resumed at step {step}, now at step {step + 3}" in comfy.log_tail(20000)


# --- Stylize's output tensor, in ComfyUI's own Python ---------------------------------------------

BRIDGE_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    sys.argv = ["main.py", "--cpu", "--base-directory", os.environ["PACK_PARENT"]]
    import comfy.options
    comfy.options.enable_args_parsing()
    import torch
    sys.path.insert(0, os.environ["PACK_PARENT"])
    from depthstyle.depthstyle_core.models.transformer_net import TransformerNet
    from depthstyle.nodes.stylize_nodes import Stylize

    torch.manual_seed(0)
    net = TransformerNet().eval()
    image = torch.rand(2, 37, 53, 3)
    with torch.inference_mode():  # as ComfyUI runs every node
        out = Stylize.execute(image, net, strength=0.7, preserve_color=False, tile_size=0).args[0]
        tiled = Stylize.execute(image, net, strength=0.7, preserve_color=False, tile_size=160).args[0]
    print(json.dumps({
        "shape": list(out.shape), "dtype": str(out.dtype), "device": str(out.device),
        "min": float(out.min()), "max": float(out.max()), "std": float(out.std()),
        "tiled_equal": bool(torch.equal(out, tiled)),
        "net_device": str(next(net.parameters()).device),
    }))
    """
)


def test_stylize_returns_float32_images_in_0_1_on_the_intermediate_device(tmp_path):
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
    assert result["shape"] == [2, 37, 53, 3]
    assert result["dtype"] == "torch.float32" and result["device"] == "cpu"
    assert 0.0 <= result["min"] and result["max"] <= 1.0 and result["std"] > 0.01
    assert result["tiled_equal"], "an image smaller than the tile is one tile: the same result"
    assert result["net_device"] == "cpu", "the model goes back to the offload device"


def test_photos_added_to_the_content_folder_make_train_style_run_again(comfy):
    folder = comfy.base_dir / "input" / "content_refresh"
    folder.mkdir()
    picture(40, 40, seed=31).save(folder / "a.png")
    prompt = train_prompt("refresh", iterations=2, content_folder="content_refresh")
    model = styles_dir(comfy) / "refresh.safetensors"
    succeeded(comfy.run(prompt))
    first = model.stat().st_mtime_ns
    succeeded(comfy.run(prompt))
    assert model.stat().st_mtime_ns == first, "nothing changed: ComfyUI keeps the result"
    picture(40, 40, seed=32).save(folder / "b.png")
    succeeded(comfy.run(prompt))
    assert model.stat().st_mtime_ns != first and "2 images in" in load_style_model(model)[1]["train.content"]
    assert re.search(
        r"DepthStyle training refresh\.safetensors: step 2/2, .* steps/s, about 0 s left", comfy.log_tail()
    )
