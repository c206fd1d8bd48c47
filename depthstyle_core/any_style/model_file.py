"""Any-painting model files: the built-in weights shipped in the package, our safetensors format, and
the one-off conversion of the authors' four pickled state dicts.

Our file holds the four parts' tensors under the prefixes ``content_encoder.``, ``style_encoder.``,
``modulator.`` and ``decoder.`` (the published names below them) and ``architecture: MicroAST`` in the
metadata, like our style models. The built-in file, ``weights/microast.safetensors``, was converted from
the authors' published files (MIT, licence text beside it in ``weights/LICENSE``) by
:func:`convert_microast_checkpoints`; it loads with no download and no network.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from ..checkpoint import (
    load_state_dict_strict,
    read_pickled_state_dict,
    read_safetensors,
    write_safetensors_atomic,
)
from ..errors import CheckpointError, ModelNotAvailableError
from ..hub.resolve import resolve_model_file
from ..models.microast import ARCHITECTURE, PARTS, MicroAST

FORMAT = "depthstyle-any-style-model"
FORMAT_VERSION = "1"
WHAT = "an any-painting model (MicroAST)"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
BUILTIN_WEIGHTS = WEIGHTS_DIR / "microast.safetensors"


def load_any_style_model(
    path: str | os.PathLike | None = None,
    device: torch.device | str | None = None,
    *,
    model_dirs: Sequence[str | os.PathLike] = (),
) -> MicroAST:
    """The any-painting network (eval mode, fp32), from the built-in weights or from ``path``.

    ``path`` is a file of the same architecture (for example one fine-tuned by a user), or a file name
    looked up in ``model_dirs``. Raises CheckpointError for a file of another kind, naming what it is.
    """
    source = BUILTIN_WEIGHTS if path is None else resolve_model_file(path, model_dirs=model_dirs)
    if path is None and not BUILTIN_WEIGHTS.is_file():
        raise ModelNotAvailableError(
            f"the built-in any-painting weights are missing from the installed package ({BUILTIN_WEIGHTS}); "
            "reinstall DepthStyle"
        )
    tensors, metadata = read_safetensors(source)
    model = build_any_style_model(tensors, metadata, source=str(source))
    return model.to(device) if device is not None else model


def build_any_style_model(
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str] | None = None,
    *,
    source: str = "<memory>",
) -> MicroAST:
    """Rebuild the network from our file's tensors and metadata (strict: every key, every shape)."""
    architecture = (metadata or {}).get("architecture", ARCHITECTURE)
    if architecture != ARCHITECTURE:
        hint = " Load it with --model (the Stylize node) instead." if architecture == "TransformerNet" else ""
        raise CheckpointError(f"{source} holds a {architecture!r} model, not {WHAT}.{hint}")
    model = MicroAST()
    state = {key: value.float() for key, value in tensors.items()}
    load_state_dict_strict(model, state, what=WHAT, source=source)
    return model.train(False)


def save_any_style_model(
    path: str | os.PathLike, model: MicroAST, *, extra_metadata: Mapping[str, str] | None = None
) -> Path:
    """Write ``model`` atomically as safetensors with its architecture (and ``extra_metadata``)."""
    metadata = {"format_name": FORMAT, "format_version": FORMAT_VERSION, "architecture": ARCHITECTURE}
    clash = sorted(set(extra_metadata or {}) & (set(metadata) | {"format"}))
    if clash:
        raise ValueError(f"extra_metadata may not override {clash}")
    tensors = {key: value.detach().cpu().float() for key, value in model.state_dict().items()}
    return write_safetensors_atomic(path, tensors, {**metadata, **(extra_metadata or {})})


def find_microast_parts(sources: Sequence[str | os.PathLike]) -> dict[str, Path]:
    """The authors' four files by part, from the files or folders named: each part is the file whose
    name starts with the part's name (``content_encoder_iter_160000.pth.tar``, ...)."""
    files: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            files.extend(sorted(p for p in source.iterdir() if p.is_file()))
        elif source.is_file():
            files.append(source)
        else:
            raise ModelNotAvailableError(f"file to convert not found: {source}")
    found: dict[str, Path] = {}
    for part in PARTS:
        matches = [f for f in files if f.name.startswith(part)]
        if len(matches) > 1:
            raise CheckpointError(
                f"several files could be the {part}: {', '.join(map(str, matches))}; name only one"
            )
        if matches:
            found[part] = matches[0]
    missing = [part for part in PARTS if part not in found]
    if missing:
        raise CheckpointError(
            f"the MicroAST weights come as four files ({', '.join(f'{p}_*.pth.tar' for p in PARTS)}); "
            f"missing: {', '.join(missing)}. Name the four files or the folder that holds them."
        )
    return found


def convert_microast_checkpoints(sources: Sequence[str | os.PathLike], dst: str | os.PathLike) -> Path:
    """Convert the authors' four pickled state dicts into one safetensors file of our format.

    Unpickles with ``torch.load(weights_only=True)``, which refuses anything but plain tensors; the
    network is built (strictly) before anything is written.
    """
    tensors: dict[str, torch.Tensor] = {}
    parts = find_microast_parts(sources)
    for part, path in parts.items():
        state = read_pickled_state_dict(path)
        tensors.update({f"{part}.{key}": value for key, value in state.items()})
    model = build_any_style_model(tensors, source=" + ".join(str(p) for p in parts.values()))
    converted_from = ", ".join(path.name for path in parts.values())
    return save_any_style_model(dst, model, extra_metadata={"converted_from": converted_from})
