"""The networks as ONNX files, for apps, browsers (onnxruntime-web) and game engines.

A trained style network takes one input, ``photo``; the any-painting network takes ``photo`` and
``painting``. Both are ``[N,3,H,W]`` RGB in 0..1 of any height and width from 8 pixels up (odd sizes
included: the graph pads and crops as PyTorch does), and give ``stylized`` ``[N,3,H,W]`` in 0..1. The
painting is used at the size it is given; the built-in network was trained with paintings about 512 px
on their long side. Strength, masks and depth are left to the application (blend ``stylized`` with the
photo). The file's metadata names the model, its architecture and the weights' licence.

Exporting needs the ``onnx`` and ``onnxscript`` packages (``pip install "depthstyle[onnx]"``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from .atomic_write import write_bytes_atomic
from .errors import SettingsError
from .models.microast import MicroAST
from .models.padding import MIN_SIDE
from .models.transformer_net import TransformerNet

OPSET = 18
"""Supported by onnxruntime from 1.14 on (also onnxruntime-web) and by OpenVINO and TensorRT."""
MAX_SIDE = 16384
EXAMPLE_SIZE = (97, 131)


class _Stylizer(nn.Module):
    """A trained style network as a graph: photo -> stylised photo, clamped to 0..1."""

    def __init__(self, net: TransformerNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, photo: Tensor) -> Tensor:
        return self.net(photo).clamp(0, 1)


class _AnyPainter(nn.Module):
    """The any-painting network as a graph: photo, painting -> the photo painted, clamped to 0..1."""

    def __init__(self, net: MicroAST) -> None:
        super().__init__()
        self.net = net

    def forward(self, photo: Tensor, painting: Tensor) -> Tensor:
        return self.net(photo, painting).clamp(0, 1)


def _onnx():  # noqa: ANN202 - the onnx module, checked before the export starts
    try:
        import onnx
        import onnxscript  # noqa: F401 - torch.onnx's exporter needs it
    except ImportError as exc:
        raise SettingsError(
            f"exporting to ONNX needs the onnx and onnxscript packages: pip install onnx onnxscript ({exc})"
        ) from exc
    return onnx


def export_onnx(
    net: TransformerNet | MicroAST, path: str | Path, metadata: Mapping[str, str], *, opset: int = OPSET
) -> Path:
    """Write ``net`` to ``path`` as ONNX with dynamic batch, height and width, and ``metadata`` (name,
    licence, ...) in the file; the file appears only when it is complete. The caller's network is left as
    it was."""
    onnx = _onnx()
    path = Path(path)
    net = copy.deepcopy(net).float()
    side = lambda name: torch.export.Dim(name, min=MIN_SIDE, max=MAX_SIDE)  # noqa: E731
    batch = torch.export.Dim("batch", min=1, max=1024)
    photo = torch.rand(2, 3, *EXAMPLE_SIZE, generator=torch.Generator().manual_seed(0))
    photo_shape = {0: batch, 2: side("height"), 3: side("width")}
    if isinstance(net, MicroAST):
        graph, inputs, names = _AnyPainter(net), (photo, torch.rand(1, 3, 64, 80)), ["photo", "painting"]
        shapes = {"photo": photo_shape, "painting": {2: side("painting_height"), 3: side("painting_width")}}
    elif isinstance(net, TransformerNet):
        graph, inputs, names, shapes = _Stylizer(net), (photo,), ["photo"], {"photo": photo_shape}
    else:
        raise SettingsError(
            f"only style networks and the any-painting network export, not {type(net).__name__}"
        )
    graph.train(False)
    with torch.no_grad():
        program = torch.onnx.export(
            graph,
            inputs,
            dynamo=True,
            input_names=names,
            output_names=["stylized"],
            dynamic_shapes=shapes,
            opset_version=opset,
            verbose=False,
        )
    model = program.model_proto
    for key, value in {"producer": "DepthStyle", **metadata}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    return write_bytes_atomic(path, onnx.shape_inference.infer_shapes(model).SerializeToString())
