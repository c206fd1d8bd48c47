"""The any-painting node inside a real ComfyUI: its schema, the stylize_any_painting and video_stylize
workflows, depth and masks, a user's own model file; offline, built-in weights, nothing downloaded.

Set COMFYUI_DIR to a ComfyUI checkout. This checkout is linked into a temporary custom_nodes folder and
ComfyUI runs on the CPU with the Hub off. The depth model is a tiny random-weight one; the any-painting
network is the real built-in one. Each result is compared with the library run here on the same inputs.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from depthstyle.depthstyle_core.any_style.model_file import load_any_style_model, save_any_style_model
from depthstyle.depthstyle_core.any_style.stylize import stylize_any
from depthstyle.depthstyle_core.depth import DEPTH_MODELS, estimate_depth, load_depth_model
from depthstyle.depthstyle_core.images import load_image

from .comfyui_media import CLIP, decode, shown_image, succeeded, write_clip
from .comfyui_server import REPO, ComfyUIServer, offline_server, pack_base, skip_unless_comfyui, ui_to_api
from .factories import write_depth_checkpoint
from .style_helpers import textured_images

pytestmark = pytest.mark.integration
skip_unless_comfyui(__name__)

NODE = "DepthStyle_StylizeAnyPainting"
BUILTIN = "MicroAST (built-in, MIT)"
PHOTO_SIZE = (97, 61)  # odd sides: the output must come back at exactly this size
PAINTING = REPO / "tests" / "data" / "any_style" / "style.png"


@pytest.fixture(scope="module")
def comfy(tmp_path_factory) -> ComfyUIServer:
    base = pack_base(tmp_path_factory, "comfy_any_painting")
    width, height = PHOTO_SIZE
    photo = textured_images(1, height, width, seed=30)[0].permute(1, 2, 0).numpy()
    Image.fromarray((photo * 255).round().astype(np.uint8)).save(base / "input" / "example.png")
    Image.open(PAINTING).save(base / "input" / "style.png")
    write_clip(base / "input" / "clip.mp4")
    models = base / "models" / "depthstyle"
    write_depth_checkpoint(models / "depth" / DEPTH_MODELS["small"].hub_file.local_filename, seed=7)
    tuned = load_any_style_model()
    with torch.no_grad():
        tuned.decoder.dec3[10].conv_layer.bias.add_(0.2)  # a visibly different "fine-tuned" model
    save_any_style_model(models / "any_style" / "tuned.safetensors", tuned)
    with offline_server(base) as server:
        yield server


@pytest.fixture(scope="module")
def depth_model(comfy):
    return load_depth_model(
        comfy.base_dir / "models" / "depthstyle" / "depth" / DEPTH_MODELS["small"].hub_file.local_filename
    )


def api_workflow(name: str) -> dict:
    return json.loads((REPO / "tests" / "workflows" / f"{name}_api.json").read_text())


def input_image(comfy: ComfyUIServer, name: str) -> torch.Tensor:
    array = np.asarray(Image.open(comfy.base_dir / "input" / name).convert("RGB")).copy()
    return torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255.0


def test_the_node_is_registered_with_its_inputs_and_the_model_combo(object_info, comfy):
    assert NODE in object_info, comfy.log_tail()
    node = object_info[NODE]
    assert node["display_name"] == "DepthStyle Stylize Any Painting (instant)"
    assert node["category"] == "DepthStyle/style"
    assert node["input_order"] == {
        "required": [
            "image",
            "style_image",
            "strength",
            "depth_preserve",
            "style_size",
            "preserve_color",
            "frames",
            "tile",
        ],
        "optional": ["depth_model", "depth_map", "mask", "model", "precision", "scale"],
    }
    required, optional = node["input"]["required"], node["input"]["optional"]
    assert required["strength"][1]["default"] == 1.0 and required["depth_preserve"][1]["default"] == 0.5
    assert required["style_size"][1]["default"] == 512 and required["frames"][1]["options"] == [
        "independent",
        "shared",
        "flow",
    ]
    assert optional["model"][1]["options"] == [BUILTIN, "tuned.safetensors"]
    assert optional["depth_model"][0] == "DEPTHSTYLE_DEPTH_MODEL" and optional["mask"][0] == "MASK"
    assert node["output"] == ["IMAGE"] and node["output_name"] == ["stylized"]
    assert "depthstyle_any_style" in comfy.get_json("/models")


@pytest.mark.parametrize("name", ["stylize_any_painting", "video_stylize"])
def test_ui_workflows_are_served_as_templates_and_match_their_api_twins(comfy, object_info, name):
    assert name in comfy.get_json("/workflow_templates").get("depthstyle", [])
    workflow = comfy.get_json(f"/api/workflow_templates/depthstyle/{name}.json")
    assert workflow == json.loads((REPO / "workflows" / f"{name}.json").read_text())
    twin = {key: {k: v for k, v in node.items() if k != "_meta"} for key, node in api_workflow(name).items()}
    assert ui_to_api(workflow, object_info) == twin


def with_depth_turned_on(object_info) -> dict:
    """The stylize_any_painting template as queued once the user unmutes its optional depth group."""
    workflow = json.loads((REPO / "workflows" / "stylize_any_painting.json").read_text())
    muted = [node for node in workflow["nodes"] if node.get("mode") == 2]
    assert {node["type"] for node in muted} == {
        "DepthStyle_DepthModelLoader",
        "DepthStyle_EstimateDepth",
        "PreviewImage",
    }
    for node in muted:
        node["mode"] = 0
    return ui_to_api(workflow, object_info)


def test_the_workflow_gives_the_library_result_with_depth(comfy, depth_model, object_info):
    entry = succeeded(comfy.run(with_depth_turned_on(object_info)))
    photo, painting = input_image(comfy, "example.png"), input_image(comfy, "style.png")
    with torch.inference_mode():
        depth = estimate_depth(depth_model, photo)
        expected = stylize_any(load_any_style_model(), photo, painting, depth=depth, depth_preserve=0.5)[0]
        plain = stylize_any(load_any_style_model(), photo, painting)[0]
    result = shown_image(comfy, entry, "5")
    width, height = PHOTO_SIZE
    assert result.shape == (3, height, width)
    assert (result - expected).abs().max() <= 1 / 255 + 1e-6, "ComfyUI and the library must agree"
    change = (result - plain).abs()
    assert change.max() > 0.03 and change.mean() > 0.001, "depth_preserve held the near parts back"
    assert (result - photo[0]).abs().mean() > 0.05, "the photo was painted"
    assert shown_image(comfy, entry, "7").shape == (3, height, width), "the depth preview is shown"


def test_a_depth_map_from_any_node_drives_depth_preserve_and_wins_over_a_depth_model(
    comfy, depth_model, object_info
):
    photo, painting = input_image(comfy, "example.png"), input_image(comfy, "style.png")
    with torch.inference_mode():
        depth = estimate_depth(depth_model, photo)
        expected = stylize_any(load_any_style_model(), photo, painting, depth=depth, depth_preserve=0.5)[0]
        inverted = stylize_any(load_any_style_model(), photo, painting, depth=1 - depth, depth_preserve=0.5)[
            0
        ]
    prompt = with_depth_turned_on(object_info)
    del prompt["4"]["inputs"]["depth_model"]
    prompt["4"]["inputs"]["depth_map"] = ["6", 0]  # the depth node's map, as any depth pack's would come
    result = shown_image(comfy, succeeded(comfy.run(prompt)), "5")
    assert (result - expected).abs().max() <= 1 / 255 + 1e-6, "the map gives what the depth model gives"

    prompt["9"] = {"class_type": "ImageInvert", "inputs": {"image": ["6", 0]}}  # near and far swapped
    prompt["4"]["inputs"].update(depth_map=["9", 0], depth_model=["3", 0])
    result = shown_image(comfy, succeeded(comfy.run(prompt)), "5")
    assert (result - inverted).abs().max() <= 1 / 255 + 1e-6, "with both connected, the map is used"
    assert (result - expected).abs().mean() > 0.01


def shown_images(comfy: ComfyUIServer, entry: dict, node_id: str) -> list[torch.Tensor]:
    return [
        torch.from_numpy(np.asarray(Image.open(io.BytesIO(comfy.view(image))).convert("RGB")).copy())
        .permute(2, 0, 1)
        .float()
        / 255.0
        for image in entry["outputs"][node_id]["images"]
    ]


def test_masks_and_depth_maps_shorter_than_the_batch_are_taken_in_turn(comfy, object_info):
    """Two maps for three images: 1, 2, 1, as ComfyUI's own nodes repeat a batch."""
    width, height = PHOTO_SIZE
    ramp = torch.linspace(1, 0, width).view(1, 1, 1, width).expand(1, 3, height, width)
    for name, picture in (("near_left.png", ramp), ("near_right.png", ramp.flip(-1))):
        Image.fromarray((picture[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(
            comfy.base_dir / "input" / name
        )
    prompt = api_workflow("stylize_any_painting")
    prompt.update(
        {
            "10": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 3}},
            "11": {"class_type": "LoadImage", "inputs": {"image": "near_left.png"}},
            "12": {"class_type": "LoadImage", "inputs": {"image": "near_right.png"}},
            "13": {"class_type": "ImageBatch", "inputs": {"image1": ["11", 0], "image2": ["12", 0]}},
            "14": {"class_type": "ImageToMask", "inputs": {"image": ["13", 0], "channel": "red"}},
        }
    )
    prompt["4"]["inputs"].update(image=["10", 0], depth_map=["13", 0], depth_preserve=1.0)
    photo, painting = input_image(comfy, "example.png"), input_image(comfy, "style.png")
    left = load_image(comfy.base_dir / "input" / "near_left.png")
    for wired, settings in (
        ("depth_map", {"depth": left[:, :1], "depth_preserve": 1.0}),
        ("mask", {"mask": left[:, 0]}),
    ):
        if wired == "mask":
            del prompt["4"]["inputs"]["depth_map"]
            prompt["4"]["inputs"].update(mask=["14", 0], depth_preserve=0.0)
        first, second, third = shown_images(comfy, succeeded(comfy.run(prompt)), "5")
        assert torch.equal(first, third) and (first - second).abs().mean() > 0.02, wired
        with torch.inference_mode():
            expected = stylize_any(load_any_style_model(), photo, painting, **settings)[0]
        assert (first - expected).abs().max() <= 1 / 255 + 1e-6, wired


def test_scale_paints_larger_strokes_and_comes_back_at_the_photos_size(comfy):
    prompt = api_workflow("stylize_any_painting")
    prompt["4"]["inputs"]["scale"] = 0.5
    result = shown_image(comfy, succeeded(comfy.run(prompt)), "5")
    photo, painting = input_image(comfy, "example.png"), input_image(comfy, "style.png")
    with torch.inference_mode():
        expected = stylize_any(load_any_style_model(), photo, painting, scale=0.5)[0]
        full = stylize_any(load_any_style_model(), photo, painting)[0]
    assert result.shape == photo[0].shape
    assert (result - expected).abs().max() <= 1 / 255 + 1e-6
    assert (result - full).abs().mean() > 0.02, "another brush size than scale 1"


def test_without_a_depth_model_a_mask_of_zero_returns_the_photo_and_a_users_model_is_used(comfy):
    prompt = api_workflow("stylize_any_painting")
    prompt["8"] = {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 8, "height": 8}}
    prompt["4"]["inputs"]["mask"] = ["8", 0]
    entry = succeeded(comfy.run(prompt))
    photo, painting = input_image(comfy, "example.png"), input_image(comfy, "style.png")
    assert torch.equal(shown_image(comfy, entry, "5"), photo[0]), "mask 0 is the photo, bit for bit"

    prompt = api_workflow("stylize_any_painting")
    prompt["4"]["inputs"].update(model="tuned.safetensors", strength=0.6)
    entry = succeeded(comfy.run(prompt))
    tuned = load_any_style_model(comfy.base_dir / "models" / "depthstyle" / "any_style" / "tuned.safetensors")
    with torch.inference_mode():
        expected = stylize_any(tuned, photo, painting, strength=0.6)[0]
        builtin = stylize_any(load_any_style_model(), photo, painting, strength=0.6)[0]
    result = shown_image(comfy, entry, "5")
    assert (result - expected).abs().max() <= 1 / 255 + 1e-6
    assert (result - builtin).abs().mean() > 0.02, "the user's model, not the built-in one"


def test_video_workflow_paints_a_clip_held_still_by_flow_and_keeps_rate_and_size(comfy, depth_model):
    entry = succeeded(comfy.run(api_workflow("video_stylize")))
    (saved,) = entry["outputs"]["7"]["images"]
    path = comfy.base_dir / "output" / saved["subfolder"] / saved["filename"]
    assert path.suffix == ".mp4" and saved["subfolder"] == "video"
    frames, rate = decode(path)
    assert frames.shape == (CLIP["frames"], 3, CLIP["height"], CLIP["width"])
    assert rate == CLIP["fps"]
    source, _ = decode(comfy.base_dir / "input" / "clip.mp4")
    painting = input_image(comfy, "style.png")
    model = load_any_style_model()
    with torch.inference_mode():
        depth = estimate_depth(depth_model, source, normalization="per_batch")
        settings = {"depth": depth, "depth_preserve": 0.5}
        expected = stylize_any(model, source, painting, frames="flow", **settings)
        independent = stylize_any(model, source, painting, **settings)
    assert (frames - source).abs().mean() > 0.05, "the clip was painted"
    blocks = [F.avg_pool2d(t, 8) for t in (frames, expected, independent)]
    error = (blocks[0] - blocks[1]).abs().mean()
    assert error < 0.02, "the saved clip is the flow-held result (up to video compression)"
    assert error < (blocks[0] - blocks[2]).abs().mean(), "and nearer to it than to the independent result"


@pytest.mark.parametrize("tile", [3, 20000])
def test_a_tile_that_cannot_work_is_refused_when_queued(comfy, tile):
    prompt = api_workflow("stylize_any_painting")
    prompt["4"]["inputs"]["tile"] = tile
    with pytest.raises(
        RuntimeError, match=f"tile must be 0 \\(whole images\\) or from 160 to 16384 pixels, got {tile}"
    ):
        comfy.queue_prompt(prompt)


def test_a_model_file_rewritten_under_its_name_is_read_again(comfy):
    """ComfyUI keeps a node's result while its inputs stay the same; a model file trained again under
    the same name must still make the node run again (fingerprint_inputs)."""
    path = comfy.base_dir / "models" / "depthstyle" / "any_style" / "tuned.safetensors"
    original = path.read_bytes()
    prompt = api_workflow("stylize_any_painting")
    prompt["4"]["inputs"]["model"] = "tuned.safetensors"
    before = shown_image(comfy, succeeded(comfy.run(prompt)), "5")
    retrained = load_any_style_model(path)
    with torch.no_grad():
        retrained.decoder.dec3[10].conv_layer.bias.sub_(0.4)
    try:
        save_any_style_model(path, retrained)
        after = shown_image(comfy, succeeded(comfy.run(prompt)), "5")
    finally:
        path.write_bytes(original)
    photo, painting = input_image(comfy, "example.png"), input_image(comfy, "style.png")
    with torch.inference_mode():
        expected = stylize_any(retrained, photo, painting)[0]
    assert (after - expected).abs().max() <= 1 / 255 + 1e-6 and (after - before).abs().mean() > 0.02
