"""Style-model files: our safetensors format, community fast_neural_style files, and pickle conversion.

Our files carry the architecture in the safetensors metadata (see
:meth:`TransformerNetConfig.to_metadata`), so the file alone rebuilds the network. A file without that
metadata is taken to be a community pytorch/examples model (the default architecture). Pickled
``.pth`` files are never loaded here; :func:`convert_pickle_to_safetensors` turns one into safetensors on
explicit request and is the only place that unpickles (with ``weights_only=True``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from .checkpoint import (
    load_state_dict_strict,
    read_pickled_state_dict,
    read_safetensors,
    write_safetensors_atomic,
)
from .hub.resolve import HubFile, resolve_model_file
from .models.transformer_net import TransformerNet, TransformerNetConfig

FORMAT = "depthstyle-style-model"
FORMAT_VERSION = "1"
WHAT = "a style model (TransformerNet)"
_LEGACY_INSTANCE_NORM = re.compile(r"in\d+\.(running_mean|running_var|num_batches_tracked)$")


def save_style_model(
    path: str | os.PathLike, net: TransformerNet, *, extra_metadata: Mapping[str, str] | None = None
) -> Path:
    """Write ``net`` atomically as safetensors, its architecture and ``extra_metadata`` in the header."""
    metadata = {"format_name": FORMAT, "format_version": FORMAT_VERSION, **net.config.to_metadata()}
    extra = dict(extra_metadata or {})
    clash = sorted(set(extra) & (set(metadata) | {"format"}))
    if clash:
        raise ValueError(f"extra_metadata may not override {clash}")
    if not all(isinstance(v, str) for v in extra.values()):
        raise ValueError("extra_metadata values must be strings")
    tensors = {key: value.detach().cpu() for key, value in net.state_dict().items()}
    return write_safetensors_atomic(path, tensors, {**metadata, **extra})


def load_style_model(
    source: str | os.PathLike | HubFile,
    *,
    model_dirs: Sequence[str | os.PathLike] = (),
    cache_dir: str | os.PathLike | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
) -> tuple[TransformerNet, dict[str, str]]:
    """Load a style model (eval mode, fp32, CPU) and the file's metadata.

    Raises CheckpointError for a pickle, a damaged file, or a file that holds another model.
    """
    path = resolve_model_file(
        source, model_dirs=model_dirs, cache_dir=cache_dir, endpoint=endpoint, token=token
    )
    tensors, metadata = read_safetensors(path)
    net = build_style_model(tensors, metadata, source=str(path))
    return net, metadata


def build_style_model(
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str] | None = None,
    *,
    source: str = "<memory>",
) -> TransformerNet:
    """Rebuild the network from a state dict and metadata (no metadata: community architecture)."""
    config = TransformerNetConfig.from_metadata(metadata or {})
    state = dict(tensors)
    if config.norm == "instance":
        state = {key: value for key, value in state.items() if not _LEGACY_INSTANCE_NORM.search(key)}
    net = TransformerNet(config)
    load_state_dict_strict(
        net,
        {key: value.float() if value.is_floating_point() else value for key, value in state.items()},
        what=WHAT,
        source=source,
        file_keys=list(tensors),
    )
    return net.train(False)


def convert_pickle_to_safetensors(src_pth: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Convert a pickled community style model (a ``state_dict``) into our safetensors format.

    Unpickles with ``torch.load(weights_only=True)``, which refuses arbitrary objects; the result is
    checked by building the network before anything is written.
    """
    src = Path(src_pth)
    state = read_pickled_state_dict(src)
    net = build_style_model(state, source=str(src))
    return save_style_model(dst, net, extra_metadata={"converted_from": src.name})
