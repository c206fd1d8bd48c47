"""Turn a user-typed model name into a file path that cannot leave its model folder.

A save name comes from a text box (a ComfyUI widget, a CLI argument) and ends up as a file that is
written, so it must never reach outside the folder it is meant for: no absolute paths, no drive
letters, no ``..``. Sub-folders are allowed (``portraits/van_gogh``), with ``/`` or ``\\`` as the
separator on every platform, and stay inside the folder. Names that Windows cannot store, or that a
model list would hide (a leading dot), are refused too, so a workflow saved on one system works on
another. Purely lexical: nothing is created and symbolic links the user made are not second-guessed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import SettingsError

MODEL_SUFFIX = ".safetensors"
MAX_COMPONENT_BYTES = 255  # the usual file-name limit (ext4, NTFS, APFS)
_SEPARATORS = re.compile(r"[\\/]")
_DRIVE = re.compile(r"^[A-Za-z]:")
_FORBIDDEN_CHARS = frozenset('<>:"|?*')
_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(1, 10)} | {f"LPT{i}" for i in range(1, 10)}
)


def safe_model_path(folder: str | os.PathLike, name: str, suffix: str = MODEL_SUFFIX) -> Path:
    """``folder / name`` with ``suffix`` added unless ``name`` already ends with it (any case).

    ``name`` may contain sub-folders separated by ``/`` or ``\\``. Raises ``ValueError``, naming the
    problem, for an empty name, an absolute path, a drive letter, a ``.`` or ``..`` component, an empty
    component (``a//b``), a component starting with a dot, characters Windows forbids in file names
    (``< > : " | ? *`` and control characters), a trailing space or dot, a Windows device name
    (``CON``, ``NUL``, ``COM1``, ...), or a component longer than 255 bytes.
    """
    if not isinstance(name, str):
        raise SettingsError(f"the model name must be text, got {type(name).__name__}")
    shown = repr(name)
    stripped = name.strip()
    if not stripped:
        raise SettingsError("the model name is empty: type a name such as my_style")
    if _SEPARATORS.match(stripped) or os.path.isabs(stripped):
        raise SettingsError(f"the model name {shown} is an absolute path: give a name, not a path")
    if _DRIVE.match(stripped):
        raise SettingsError(f"the model name {shown} starts with a drive letter: give a name, not a path")
    if stripped.lower().endswith(suffix.lower()):
        stripped = stripped[: -len(suffix)]
    parts = _SEPARATORS.split(stripped)
    if parts[-1] == "":
        raise SettingsError(
            f"the model name {shown} has no file name (it ends with a folder separator or is only {suffix})"
        )
    for part in parts:
        _check_component(part, shown)
    parts[-1] += suffix
    _check_length(parts[-1], shown)
    base = Path(folder)
    path = base.joinpath(*parts)
    # Defence in depth: the checks above already rule out every way out of the folder.
    if os.path.commonpath([os.path.abspath(base), os.path.abspath(path)]) != os.path.abspath(base):
        raise SettingsError(f"the model name {shown} points outside {base}")
    return path


def _check_component(part: str, shown: str) -> None:
    if part in ("", ".", ".."):
        what = "an empty folder name" if part == "" else f"a '{part}' component"
        raise SettingsError(
            f"the model name {shown} contains {what}: names must stay inside the model folder "
            "(sub-folders are allowed, e.g. portraits/van_gogh)"
        )
    if part.startswith("."):
        raise SettingsError(
            f"the model name {shown} has a part starting with a dot ({part!r}); it would be hidden"
        )
    bad = sorted({c for c in part if c in _FORBIDDEN_CHARS or ord(c) < 32 or ord(c) == 127})
    if bad:
        listed = " ".join(repr(c) for c in bad)
        raise SettingsError(f"the model name {shown} contains characters not allowed in file names: {listed}")
    if part != part.rstrip(" ."):
        raise SettingsError(f"the model name {shown} has a part ending in a space or dot ({part!r})")
    if part.split(".")[0].upper() in _WINDOWS_DEVICES:
        raise SettingsError(
            f"the model name {shown} uses {part.split('.')[0]!r}, a reserved device name on Windows"
        )
    _check_length(part, shown)


def _check_length(part: str, shown: str) -> None:
    if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
        raise SettingsError(
            f"the model name {shown} is too long: at most {MAX_COMPONENT_BYTES} bytes per part"
        )
