"""Fixtures shared by the test modules."""

import pytest
import torch
from torch import nn

from depthstyle.depthstyle_core.models.depth_anything import build_depth_anything
from depthstyle.depthstyle_core.models.vgg import VGG16Features

from .factories import random_depth_state_dict


@pytest.fixture(scope="module")
def single_thread():
    """Small convolutions run fastest on one thread, and much faster on a machine shared with other jobs."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def object_info(comfy) -> dict:
    """/object_info of the test module's ComfyUI (each integration module starts its own ``comfy``)."""
    return comfy.get_json("/object_info")


@pytest.fixture(scope="module")
def vgg() -> VGG16Features:
    """VGG-16 features with PyTorch's random initialisation (seed 0): the real network, no download."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return VGG16Features()


@pytest.fixture(scope="module")
def depth_net() -> nn.Module:
    """The tiny random-weight Depth Anything of tests/factories.py."""
    return build_depth_anything(random_depth_state_dict(seed=1))


@pytest.fixture(scope="session")
def dataset_reference(tmp_path_factory):
    """The generated dataset of tests/dataset_helpers.py stylised once by one process: ``(photos,
    paintings, output folder, exit status, stderr)``; every other run on the tree must end equal to it."""
    from .dataset_helpers import stylize_dataset_cli, write_tree

    root = tmp_path_factory.mktemp("dataset")
    photos, paintings = write_tree(root)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code, said = stylize_dataset_cli(photos, paintings, root / "reference")
    finally:
        torch.set_num_threads(previous)
    return photos, paintings, root / "reference", code, said
