"""The choices of the model combos: permanent labels for the built-in models, then local files.

Combo values are saved in workflows, so these labels are as permanent as node ids and input names.
The depth labels name the licence because Base and Large may not be used commercially. No ComfyUI
imports here.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..trainers.run.paths import STATE_SUFFIX

BUILTIN_DEPTH_MODELS: dict[str, str] = {
    "Depth-Anything-V2-Small (Apache-2.0)": "small",
    "Depth-Anything-V2-Base (CC-BY-NC-4.0, non-commercial)": "base",
    "Depth-Anything-V2-Large (CC-BY-NC-4.0, non-commercial)": "large",
}
DEFAULT_DEPTH_MODEL = "Depth-Anything-V2-Small (Apache-2.0)"


def depth_model_choices(local_files: Iterable[str]) -> list[str]:
    """The built-in labels (default first), then the local model files sorted by name."""
    local = sorted(set(local_files) - BUILTIN_DEPTH_MODELS.keys())
    return [*BUILTIN_DEPTH_MODELS, *local]


def builtin_depth_model(choice: str) -> str | None:
    """The library's key (``"small"``, ...) of a built-in label, or None for a local file name."""
    return BUILTIN_DEPTH_MODELS.get(choice)


# The style loader's choice for "no local file: load hub_repo_id". Always offered, so a workflow that
# loads from the Hub validates on any machine, whatever style files it has.
HUB_STYLE_CHOICE = "(from hub_repo_id)"


def style_model_choices(local_files: Iterable[str]) -> list[str]:
    """The style model files sorted by name, then :data:`HUB_STYLE_CHOICE`.

    Training-state files (``<name>.state.safetensors``, written beside each trained style for resuming)
    are left out: they are not style models.
    """
    styles = sorted({name for name in local_files if not name.endswith(STATE_SUFFIX)} - {HUB_STYLE_CHOICE})
    return [*styles, HUB_STYLE_CHOICE]


# The any-painting node's choice for the weights that ship inside the package.
BUILTIN_ANY_STYLE_MODEL = "MicroAST (built-in, MIT)"


def any_style_model_choices(local_files: Iterable[str]) -> list[str]:
    """The built-in network first (the default), then the any-painting model files sorted by name
    (training-state files left out)."""
    files = {name for name in local_files if not name.endswith(STATE_SUFFIX)} - {BUILTIN_ANY_STYLE_MODEL}
    return [BUILTIN_ANY_STYLE_MODEL, *sorted(files)]
