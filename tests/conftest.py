"""Fixtures shared by the test modules."""

import pytest
import torch


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
