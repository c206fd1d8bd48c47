"""Safetensors checkpoints: safe reading, atomic writing, and strict loading with useful errors.

Pickled checkpoints (``.pth``, ``.ckpt``, ...) are refused, never unpickled: loading a pickle can
run arbitrary code. ``depthstyle convert`` turns one into safetensors on explicit request.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors import SafetensorError, safe_open

from .atomic_write import write_bytes_atomic
from .errors import CheckpointError, ModelNotAvailableError

if TYPE_CHECKING:  # torch is imported on first use, so that the Hub lookup (hub/resolve.py) loads without it
    import torch
    from torch import nn

PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".pkl", ".pickle")
SHOWN_KEYS = 8

_VGG_CONVS = {
    "VGG-16": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
    "VGG-19": (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34),
}
_FEATURE_CONV = re.compile(r"features\.(\d+)\.weight$")


def ensure_not_pickle(path: str | os.PathLike, *, read_bytes: bool = True) -> None:
    """Raise CheckpointError if ``path`` is a pickled checkpoint, judged by its suffix and, when
    ``read_bytes``, by its first bytes (zip ``PK`` as written by torch.save, or pickle ``0x80``)."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES or (read_bytes and _looks_pickled(path)):
        target = path.with_suffix(".safetensors")
        if target == path:
            target = path.with_name(f"{path.stem}.converted.safetensors")
        raise CheckpointError(
            f"{path} is a pickled PyTorch checkpoint. DepthStyle never unpickles files, because loading a "
            f"pickle can run arbitrary code. Convert it once with\n"
            f"  depthstyle convert {path} -o {target}\n"
            f"and use the .safetensors file instead."
        )


def _looks_pickled(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(9)
    header_len = int.from_bytes(head[:8], "little")
    if len(head) == 9 and head[8:] == b"{" and header_len <= path.stat().st_size - 8:
        return False  # a safetensors header: u64 length, then JSON (its first byte may be 0x80 too)
    return head.startswith(b"PK\x03\x04") or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


@contextmanager
def _opened(path: str | os.PathLike) -> Iterator:
    """safe_open with our errors: missing file, pickle, or a damaged file named with what to do."""
    path = Path(path)
    if not path.is_file():
        raise ModelNotAvailableError(f"Model file not found: {path}")
    ensure_not_pickle(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            yield handle
    except SafetensorError as err:
        raise CheckpointError(_damaged_message(path, err)) from err


def _damaged_message(path: Path, err: Exception) -> str:
    if path.is_symlink():
        blob = path.resolve()
        remove = f"Delete {path} and the cached blob it points to ({blob}), then run again to download it"
    else:
        remove = "Delete it and download it again, or export it again if you made it yourself"
    return (
        f"{path} is damaged: it is not a complete safetensors file ({err}). It was probably cut off "
        f"during a download or copy. {remove}."
    )


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors of a safetensors file (on the CPU) and its header metadata."""
    with _opened(path) as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}, dict(handle.metadata() or {})


def read_safetensors_keys(path: str | os.PathLike, prefix: str = "") -> dict[str, torch.Tensor]:
    """Only the tensors whose names start with ``prefix``; the others are never read from disk
    (VGG-16 needs 59 MB of ``features.*`` out of a 553 MB file)."""
    with _opened(path) as handle:
        return {key: handle.get_tensor(key) for key in handle.keys() if key.startswith(prefix)}


def list_safetensors_keys(path: str | os.PathLike) -> list[str]:
    """The tensor names of a safetensors file, read from its header only."""
    with _opened(path) as handle:
        return list(handle.keys())


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header (empty if it has none)."""
    with _opened(path) as handle:
        return dict(handle.metadata() or {})


def write_safetensors_atomic(
    path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> Path:
    """Write a safetensors file so that ``path`` is either the old file or the complete new one.

    See :func:`write_bytes_atomic`. ``format: pt`` is added to the metadata. Unlike
    ``safetensors.save_file``, which makes private 0600 files, the file gets the usual permissions.
    """
    from safetensors.torch import save

    data = save(
        {key: tensor.detach().contiguous() for key, tensor in tensors.items()},
        metadata={"format": "pt", **(metadata or {})},
    )
    return write_bytes_atomic(path, data)


def describe_checkpoint(keys: Iterable[str]) -> str | None:
    """Name the kind of model a set of state-dict keys belongs to, or None if unknown."""
    names = set(keys)

    def has(prefix: str) -> bool:
        return any(name.startswith(prefix) for name in names)

    if has("pretrained.blocks.") and has("depth_head."):
        return "Depth Anything V2 (original layout)"
    if has("backbone.embeddings.") and has("neck.") and has("head."):
        return "Depth Anything V2 (Hugging Face layout)"
    if {"conv1.conv2d.weight", "deconv3.conv2d.weight"} <= names and has("res1."):
        return "style model (TransformerNet)"
    if has("content_encoder.enc1.") and has("decoder.dec3."):
        return "any-painting model (MicroAST)"
    if has("enc1.0.conv_layer.") or has("dec3.10.conv_layer.") or has("weight1.0.conv_layer."):
        return "one part of the authors' MicroAST weights (convert all four with `depthstyle convert`)"
    if has("ConvBlock.") and has("DeconvBlock."):
        return "fast-neural-style model in rrmina's layout (ConvBlock/DeconvBlock; DepthStyle cannot load it)"
    return _describe_vgg(names)


def _describe_vgg(names: set[str]) -> str | None:
    """VGG is recognised by the indices of its convolutions inside ``features``."""
    convs = tuple(sorted(int(m[1]) for m in map(_FEATURE_CONV.match, names) if m))
    for label, full in _VGG_CONVS.items():
        if convs == full:
            return f"{label} (timm/torchvision)"
    prefix_of = [label for label, full in _VGG_CONVS.items() if convs == full[: len(convs)]]
    if len(convs) >= 2 and prefix_of:
        label = prefix_of[0] if len(prefix_of) == 1 else "VGG"
        return f"{label} features, truncated (timm/torchvision)"
    return None


def load_state_dict_strict(
    module: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    what: str,
    source: str,
    file_keys: Iterable[str] | None = None,
) -> None:
    """Load ``state_dict`` into ``module`` with strict key and shape checks.

    On any difference raise CheckpointError listing missing and unexpected keys (first few and
    counts), shape mismatches, and what the file looks like. ``file_keys`` are all the keys of
    the file, for that description, when ``state_dict`` is only a selection of them.
    """
    expected = module.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    wrong_shape = [
        f"{key}: file {list(state_dict[key].shape)} vs expected {list(expected[key].shape)}"
        for key in expected
        if key in state_dict and tuple(state_dict[key].shape) != tuple(expected[key].shape)
    ]
    if missing or unexpected or wrong_shape:
        all_keys = list(state_dict) if file_keys is None else list(file_keys)
        message = _mismatch_message(what, source, missing, unexpected, wrong_shape, all_keys, expected)
        raise CheckpointError(message)
    module.load_state_dict(dict(state_dict), strict=True)


def _mismatch_message(
    what: str,
    source: str,
    missing: list[str],
    unexpected: list[str],
    wrong_shape: list[str],
    file_keys: list[str],
    expected: Mapping[str, torch.Tensor],
) -> str:
    lines = [
        f"{source} does not fit {what}: {len(missing)} missing keys, {len(unexpected)} unexpected keys, "
        f"{len(wrong_shape)} shape mismatches."
    ]
    for title, items in (("Missing", missing), ("Unexpected", unexpected), ("Wrong shape", wrong_shape)):
        if items:
            more = f", ... and {len(items) - SHOWN_KEYS} more" if len(items) > SHOWN_KEYS else ""
            lines.append(f"{title} ({len(items)}): {', '.join(items[:SHOWN_KEYS])}{more}")
    looks_like = describe_checkpoint(file_keys)
    if looks_like:
        lines.append(f"This file looks like: {looks_like}.")
    prefix = _extra_prefix(file_keys, expected)
    if prefix:
        lines.append(f"Its keys carry an extra prefix {prefix!r}; strip it before loading.")
    return "\n".join(lines)


def _extra_prefix(file_keys: list[str], expected: Mapping[str, torch.Tensor]) -> str | None:
    """A common first name component (such as ``module.``) that, removed, gives the expected keys."""
    firsts = {key.split(".", 1)[0] for key in file_keys}
    if len(firsts) != 1 or not file_keys:
        return None
    prefix = f"{firsts.pop()}."
    stripped = {key[len(prefix) :] for key in file_keys}
    return prefix if stripped & set(expected) else None


def read_pickled_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of a pickled checkpoint, for ``depthstyle convert`` only (on explicit request).

    Unpickles with ``torch.load(weights_only=True)``, which refuses anything but plain tensors and
    containers; a ``{"state_dict": ...}`` wrapper is opened. Raises CheckpointError otherwise.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelNotAvailableError(f"file to convert not found: {path}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"cannot read {path} as a PyTorch checkpoint of plain tensors ({type(exc).__name__}: {exc})"
        ) from exc
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else loaded
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return state
