"""safe_model_path: a typed save name becomes a file inside its model folder, or a clear ValueError."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from depthstyle.depthstyle_core.hub.model_paths import MODEL_SUFFIX, safe_model_path


@pytest.fixture
def folder(tmp_path) -> Path:
    return tmp_path / "styles"


@pytest.mark.parametrize(
    ("name", "relative"),
    [
        ("my_style", "my_style.safetensors"),
        ("my_style.safetensors", "my_style.safetensors"),
        ("Mixed.SafeTensors", "Mixed.safetensors"),
        ("  padded  ", "padded.safetensors"),
        ("v1.2", "v1.2.safetensors"),
        ("style.pth", "style.pth.safetensors"),
        ("Straße é 日本", "Straße é 日本.safetensors"),
        ("portraits/van_gogh", "portraits/van_gogh.safetensors"),
        ("portraits\\van_gogh", "portraits/van_gogh.safetensors"),
        ("a/b/c.safetensors", "a/b/c.safetensors"),
    ],
)
def test_valid_names_land_inside_the_folder(folder, name, relative):
    path = safe_model_path(folder, name)
    assert path == folder.joinpath(*relative.split("/"))
    assert path.name.endswith(MODEL_SUFFIX)
    assert os.path.commonpath([folder, path]) == str(folder)
    assert not folder.exists(), "safe_model_path must not create anything"


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("../evil", "'..'"),
        ("..", "'..'"),
        ("a/../../evil", "'..'"),
        ("a\\..\\..\\evil", "'..'"),
        ("./x", "'.'"),
        ("a//b", "empty folder name"),
        ("/etc/passwd", "absolute"),
        ("\\\\server\\share\\x", "absolute"),
        ("\\x", "absolute"),
        ("C:\\models\\x", "drive letter"),
        ("c:x", "drive letter"),
        ("sub/", "no file name"),
        (".safetensors", "no file name"),
        (".hidden", "dot"),
        ("a/.git/x", "dot"),
        ("a:b", "drive letter"),  # on Windows "a:b" is b relative to drive A's current folder
        ("ab:c", "not allowed"),
        ("..name", "dot"),
        ("what?", "not allowed"),
        ("tab\there", "not allowed"),
        ("nul\x00byte", "not allowed"),
        ("trailing./x", "space or dot"),
        ("dir /x", "space or dot"),
        ("CON", "reserved"),
        ("sub/nul.txt", "reserved"),
        ("com1", "reserved"),
        ("x" * 300, "too long"),
        ("é" * 127, "too long"),  # 254 bytes + the suffix
    ],
)
def test_names_that_escape_or_cannot_be_stored_are_refused(folder, name, words):
    with pytest.raises(ValueError, match="model name") as info:
        safe_model_path(folder, name)
    assert words in str(info.value)
    assert not folder.exists()


def test_a_name_of_255_bytes_with_the_suffix_is_accepted(folder):
    stem = "x" * (255 - len(MODEL_SUFFIX))
    assert safe_model_path(folder, stem).name == stem + MODEL_SUFFIX


def test_other_suffix_and_non_text_names(folder):
    assert safe_model_path(folder, "run", suffix=".json") == folder / "run.json"
    with pytest.raises(ValueError, match="must be text"):
        safe_model_path(folder, None)  # type: ignore[arg-type]


def test_folder_may_be_relative_and_the_result_stays_under_it():
    path = safe_model_path("models/styles", "a/b")
    assert path == Path("models/styles/a/b.safetensors")
