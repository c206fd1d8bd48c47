"""What users install: the wheel and the Comfy Registry archive carry the built-in weights and their licence.

The registry checks need comfy-cli (``comfy node validate`` / ``comfy node pack``), which CI installs into
a virtual environment of its own and names in COMFY_CLI (it brings many packages the pack does not need).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .comfyui_server import REPO

WEIGHTS = "depthstyle_core/any_style/weights"
SHIPPED = [f"{WEIGHTS}/microast.safetensors", f"{WEIGHTS}/LICENSE", f"{WEIGHTS}/README.md"]


def tracked_copy(destination: Path) -> Path:
    """The files git tracks in this checkout (as they are on disk now), copied into a fresh git repo."""
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in names)):
        if (REPO / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, destination / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run([*git, *command], cwd=destination, check=True, capture_output=True, timeout=60)
    return destination


def test_the_wheel_carries_the_weights_and_their_licence(tmp_path):
    source = tracked_copy(tmp_path / "source")
    packages = [p.parent for p in source.rglob("__init__.py") if "tests" not in p.relative_to(source).parts]
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
        + [str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    assert "Package would be ignored" not in built.stderr
    (wheel,) = tmp_path.glob("depthstyle-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        for name in SHIPPED:
            assert archive.read(f"depthstyle/{name}") == (REPO / name).read_bytes(), name
        names = set(archive.namelist())
        assert not any(n.startswith(("depthstyle/tests/", "depthstyle/bench/")) for n in names)
    for package in packages:
        module = (package / "__init__.py").relative_to(source).as_posix()
        assert f"depthstyle/{module}" in names, (
            f"{module} is missing from the wheel: list it in pyproject.toml"
        )


@pytest.fixture
def comfy_cli() -> str:
    path = os.environ.get("COMFY_CLI")
    if not path:
        pytest.skip("COMFY_CLI is not set: it names comfy-cli's `comfy` (CI installs it)")
    return path


def test_the_registry_archive_validates_and_carries_the_weights(tmp_path, comfy_cli):
    source = tracked_copy(tmp_path / "source")
    comfy = [comfy_cli, "--skip-prompt", "--no-enable-telemetry", "node"]
    validated = subprocess.run([*comfy, "validate"], cwd=source, capture_output=True, text=True, timeout=300)
    said = validated.stdout + validated.stderr
    assert validated.returncode == 0 and "validation checks passed" in said, said
    packed = subprocess.run([*comfy, "pack"], cwd=source, capture_output=True, text=True, timeout=300)
    assert packed.returncode == 0, packed.stdout + packed.stderr
    with zipfile.ZipFile(source / "node.zip") as archive:
        names = set(archive.namelist())
        for name in SHIPPED:
            assert archive.read(name) == (REPO / name).read_bytes(), name
    assert {"__init__.py", "pyproject.toml", "LICENSE", "web/structure_report.js"} <= names
    assert not any(n.startswith(("tests/", "bench/", ".ci/")) for n in names), "the .comfyignore'd folders"
