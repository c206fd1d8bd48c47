"""Example workflows are laid out so that no node covers another, title bars included."""

import json
from itertools import combinations

import pytest

from .comfyui_server import REPO

TITLE_HEIGHT = 30  # LiteGraph draws the title bar above a node's position
LAID_OUT = ["structure_report"]


def boxes(name: str) -> dict[str, tuple[float, float, float, float]]:
    """Each node's (left, top, right, bottom) on the canvas, title bar included."""
    workflow = json.loads((REPO / "workflows" / f"{name}.json").read_text())
    found = {}
    for node in workflow["nodes"]:
        (x, y), (width, height) = node["pos"], node["size"]
        found[f"{node['id']} {node.get('title', node['type'])}"] = (
            x,
            y - TITLE_HEIGHT,
            x + width,
            y + height,
        )
    return found


def overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("name", LAID_OUT)
def test_no_node_covers_another(name):
    placed = boxes(name)
    clashes = [(a, b) for a, b in combinations(placed, 2) if overlap(placed[a], placed[b])]
    assert not clashes, f"{name}: overlapping nodes {clashes}"


def test_the_overlap_check_sees_a_title_bar_under_a_node():
    assert overlap((0, 0, 100, 100), (50, 90, 150, 200))
    assert not overlap((0, 0, 100, 100), (0, 100, 100, 200))
