"""The structure report's numbers shown inside its node, in ComfyUI's real frontend: headless Chromium
opens the page of a real ComfyUI, loads the structure_report template, queues it from the page and
reads the numbers in the node; a screenshot is written beside the test's files.

Needs COMFYUI_DIR, the `playwright` package (a test dependency) and a Chromium executable (Debian's
`chromium`; CI installs it). Playwright's own browser download is not used.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image

from depthstyle.depthstyle_core.models.transformer_net import TransformerNet
from depthstyle.depthstyle_core.style_model import save_style_model

from .comfyui_server import ComfyUIServer, offline_server, pack_base, skip_unless_comfyui
from .factories import write_comfy_loss_models
from .style_helpers import textured_images

pytestmark = pytest.mark.integration
skip_unless_comfyui(__name__)
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
if CHROMIUM is None:
    pytest.skip("no Chromium executable (install Debian's `chromium`)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


@pytest.fixture(scope="module")
def comfy(tmp_path_factory) -> ComfyUIServer:
    base = pack_base(tmp_path_factory, "comfy_report_frontend")
    photo = textured_images(1, 61, 97, seed=1)[0].permute(1, 2, 0).numpy()
    Image.fromarray((photo * 255).round().astype("uint8")).save(base / "input" / "example.png")
    models = write_comfy_loss_models(base, depth_seed=1)
    torch.manual_seed(0)
    save_style_model(models / "styles" / "my_style.safetensors", TransformerNet().eval())
    with offline_server(base) as server:
        yield server


def test_the_report_node_shows_its_numbers_and_preview_any_still_does(comfy, tmp_path):
    workflow = comfy.get_json("/api/workflow_templates/depthstyle/structure_report.json")
    report = next(node for node in workflow["nodes"] if node["type"] == "DepthStyle_StructureReport")
    report["widgets_values"][0] = 28  # the depth network at 28 px: the same code, seconds faster
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1100})
            page.goto(comfy.url, wait_until="networkidle", timeout=120_000)
            page.wait_for_function("window.app && window.app.graph", timeout=120_000)
            page.evaluate("async (w) => { await window.app.loadGraphData(w); }", workflow)
            page.evaluate("async () => { await window.app.queuePrompt(0, 1); }")
            shown = page.wait_for_function(
                """(id) => {
                    const node = window.app.graph.getNodeById(id);
                    const widget = node.widgets?.find((w) => w.name === "numbers");
                    return widget && widget.value ? widget.value : null;
                }""",
                arg=report["id"],
                timeout=120_000,
            ).json_value()
            page.keyboard.press("Escape")  # the first-run template dialog, if it opened
            page.evaluate(
                """([x, y]) => {
                    const canvas = window.app.canvas;
                    canvas.ds.scale = 1;
                    canvas.ds.offset = [120 - x, 160 - y];
                    canvas.setDirty(true, true);
                }""",
                report["pos"],
            )
            page.wait_for_timeout(500)
            page.screenshot(path=str(tmp_path / "structure_report.png"))
            prompt = page.evaluate("async () => (await window.app.graphToPrompt()).output")
        finally:
            browser.close()
    numbers = json.loads(shown)
    assert {"edge_f1", "ssim", "depth_absrel"} <= set(numbers["mean"]), numbers
    history = comfy.get_json("/history")
    (entry,) = history.values()
    assert entry["outputs"]["6"]["text"] == [shown], "Preview Any shows the same numbers"
    assert "numbers" not in prompt[str(report["id"])]["inputs"], "the shown numbers are not sent back"
    print(f"\nscreenshot: {tmp_path / 'structure_report.png'}")
