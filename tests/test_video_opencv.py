"""The optical flow needs OpenCV, which the pack does not install itself: a second OpenCV package beside
the one a ComfyUI environment already has would overwrite its files. Without one, the error says what to
install; the package lists name none."""

from __future__ import annotations

import sys
from importlib.metadata import requires

import pytest

from depthstyle.depthstyle_core.errors import SettingsError
from depthstyle.depthstyle_core.video.flow import DISFlow, FlowUnavailableError, flow_problem

from .comfyui_server import REPO

OPENCV_PACKAGES = (
    "opencv-python",
    "opencv-python-headless",
    "opencv-contrib-python",
    "opencv-contrib-python-headless",
)


def test_without_opencv_the_flow_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(FlowUnavailableError, match="pip install opencv-python-headless") as raised:
        DISFlow()
    assert isinstance(raised.value, SettingsError)
    assert "needs OpenCV" in flow_problem()


def test_with_opencv_there_is_no_problem():
    assert flow_problem() is None
    assert DISFlow("fast").name.startswith("opencv-dis-fast ")


def test_what_users_install_never_adds_an_opencv_package():
    """requirements.txt (ComfyUI-Manager) and the distribution's own requirements (pip) bring PyAV but no
    OpenCV; the ``video`` extra brings one for command-line users."""
    comfy_requirements = (REPO / "requirements.txt").read_text().lower().split()
    installed = [line.replace(" ", "") for line in requires("depthstyle")]
    base = [line for line in installed if ";" not in line]
    assert not any(name in comfy_requirements or name in base for name in OPENCV_PACKAGES)
    assert 'opencv-python-headless;extra=="video"' in installed
    assert "av>=14.2" in comfy_requirements and "av>=14.2" in base
