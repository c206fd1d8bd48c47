"""The example workflows are laid out so that no node covers another, also once the previews are shown.

Checked by hand in a browser (ComfyUI 0.3.64's frontend: each workflow loaded, run, screenshotted); this
test keeps the stored layout honest. A node occupies its stored size plus the title bar and the source badge
drawn above it, and nodes that show progress previews grow by the height measured in that frontend.
"""

from __future__ import annotations

import json

import pytest

from .comfyui_server import REPO

TITLE_AND_BADGE = 30 + 26  # title bar height, plus the "depthstyle" badge above a pack node's title
PREVIEW_GROWTH = {
    "DepthStyle_Stylize": 200,
    "DepthStyle_StylizeAnyPainting": 200,
    "DepthStyle_TrainStyle": 70,
    "DepthStyle_OptimizeStyle": 166,
}  # measured after a run
WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))


def rectangles(workflow: dict) -> list[tuple[str, float, float, float, float]]:
    """(title, left, top, right, bottom) of every node as it appears after a run."""
    boxes = []
    for node in workflow["nodes"]:
        (x, y), (width, height) = node["pos"], node["size"]
        bottom = y + height + PREVIEW_GROWTH.get(node["type"], 0)
        boxes.append((node.get("title", node["type"]), x, y - TITLE_AND_BADGE, x + width, bottom))
    return boxes


def test_every_workflow_is_checked():
    names = {path.stem for path in WORKFLOWS}
    assert {
        "depth_masked_stylize",
        "video_stylize",
        "stylize_with_depth_preview",
        "optimize_with_depth",
        "stylize_any_painting",
    } <= names


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.stem)
def test_no_node_covers_another(path):
    boxes = rectangles(json.loads(path.read_text()))
    overlaps = [
        (a[0], b[0])
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]
    ]
    assert overlaps == []
