"""The any-painting network's heavy parts compiled for OpenVINO's CPU plugin.

:class:`~..any_style.styled_pass.StyledPass` drives MicroAST through three methods: the content
encoder, a decoder stage and the upsampling head; the painting's signals (and, for partial strength,
the photos' own) come from the style encoder. :class:`OpenVinoMicroAST` offers the same methods
(:class:`~..models.microast.MicroASTParts`), each a compiled OpenVINO graph with any batch and size, so
tiles, pooled video statistics, masks, partial strength and depth all work unchanged: the whole-image
statistics between the parts stay in torch.

Compiled in fp32: on CPUs with bf16, OpenVINO would pick it, which moved the test photo's colours by
up to 19/255 (1.95/255 on average); fp32 keeps them within 0.01/255 of torch. With as many threads as
torch uses, so a setting of ComfyUI's or the user's holds for both.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import torch
from torch import Tensor

from ..models.microast import CHANNELS, EPS, MicroAST, StageSignals, StyleSignals
from ..models.padding import STRIDE, pad_to_valid
from .openvino_graph import image_input, mean_std, module_graph, residual

SIGNAL_FIELDS = ("mean", "std", "weight", "bias")
KEEP_MEMORY_PIXELS = 2_500_000
"""Each part keeps its buffers between calls for images up to this size (a 1920x1080 photo: under
1 GB, held for the next photo of a batch, which then ran 5 to 25 % faster in our runs). Above it, every
call lets them go: they grow with the image (5 GB held after a 4K photo), and with them let go a 4K
photo took 9 s instead of 15 on 2 cores."""


def _compile(model: ov.Model) -> ov.CompiledModel:
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": torch.get_num_threads()}
    return ov.Core().compile_model(model, "CPU", config)


def _compiled(inputs: list[Any], output: Any, name: str) -> ov.CompiledModel:
    return _compile(ov.Model([output], [node.get_node() for node in inputs], name))


def _content_graph(net: MicroAST) -> ov.CompiledModel:
    photo = image_input("photo", 3)
    features = module_graph(net.content_encoder.enc2, module_graph(net.content_encoder.enc1, photo))
    return _compiled([photo], features, "content_features")


def _signals_graph(net: MicroAST) -> ov.CompiledModel:
    """A painting -> its signals, as :meth:`MicroAST.style_signals`: per stage mean, std, weight, bias."""
    painting = image_input("painting", 3)
    first = module_graph(net.style_encoder.enc1, painting)
    second = module_graph(net.style_encoder.enc2, first)
    mod = net.modulator
    outputs = []
    for features, weight, bias in ((second, mod.weight2, mod.bias2), (first, mod.weight1, mod.bias1)):
        outputs += [*mean_std(features, EPS), module_graph(weight, features), module_graph(bias, features)]
    return _compile(ov.Model(outputs, [painting.get_node()], "style_signals"))


def _stage_graph(net: MicroAST, index: int) -> ov.CompiledModel:
    normalized = image_input("normalized", CHANNELS)
    signals = {name: image_input(name, CHANNELS) for name in SIGNAL_FIELDS}
    x = ops.add(ops.multiply(normalized, signals["std"]), signals["mean"]).output(0)
    block = net.decoder.dec1 if index == 0 else net.decoder.dec2
    out = residual(block, x, signals["weight"], signals["bias"])
    return _compiled([normalized, *signals.values()], out, f"stage{index}")


def _head_graph(net: MicroAST) -> ov.CompiledModel:
    features = image_input("features", CHANNELS)
    return _compiled([features], module_graph(net.decoder.dec3, features), "head")


def _array(x: Tensor) -> np.ndarray:
    return x.detach().float().cpu().contiguous().numpy()


class OpenVinoMicroAST:
    """MicroAST's encoders, decoder stages and head on OpenVINO (a
    :class:`~..models.microast.MicroASTParts`); one call at a time, as they share buffers."""

    def __init__(self, net: MicroAST) -> None:
        self._parts = {
            "signals": _signals_graph(net),
            "encoder": _content_graph(net),
            "stage0": _stage_graph(net, 0),
            "stage1": _stage_graph(net, 1),
            "head": _head_graph(net),
        }
        self._lock = threading.Lock()

    def _run(self, part: str, *inputs: Tensor) -> list[Tensor]:
        """``part`` on ``inputs``; its working memory is kept for the next call only for images up to
        :data:`KEEP_MEMORY_PIXELS` (the next photo of a batch)."""
        batch, _, height, width = inputs[0].shape
        pixels = batch * height * width * (1 if part in ("signals", "encoder") else STRIDE * STRIDE)
        with self._lock:
            compiled = self._parts[part]
            result = compiled([_array(x) for x in inputs], share_outputs=False)
            if pixels > KEEP_MEMORY_PIXELS:
                compiled.release_memory()
        return [torch.from_numpy(result[index]) for index in range(len(result))]

    def release_memory(self) -> None:
        """Free the intermediate buffers every part keeps for its next call (they grow to the largest
        image seen: about 5 GB after a 4K photo)."""
        with self._lock:
            for compiled in self._parts.values():
                compiled.release_memory()

    def style_signals(self, style: Tensor) -> StyleSignals:
        values = self._run("signals", pad_to_valid(style))
        first, second = StageSignals(*values[:4]), StageSignals(*values[4:])
        return StyleSignals((first, second))

    def content_features(self, content: Tensor) -> Tensor:
        return self._run("encoder", content)[0]

    def stage(self, index: int, normalized: Tensor, signals: StageSignals) -> Tensor:
        fields = (signals.mean, signals.std, signals.weight, signals.bias)
        return self._run(f"stage{index}", normalized, *fields)[0]

    def head(self, x: Tensor) -> Tensor:
        return self._run("head", x)[0]


_compiled_for: weakref.WeakKeyDictionary[MicroAST, tuple[tuple, OpenVinoMicroAST]]
_compiled_for = weakref.WeakKeyDictionary()


def _weights_key(net: MicroAST) -> tuple:
    """Changes whenever a weight is replaced or changed in place: torch counts in-place writes, except
    to tensors made under ``torch.inference_mode`` (which only an inference-mode block can change)."""
    return tuple((p.data_ptr(), 0 if p.is_inference() else p._version) for p in net.parameters())


def compiled_microast(net: MicroAST) -> OpenVinoMicroAST | None:
    """``net``'s compiled parts if it has been compiled, else None."""
    cached = _compiled_for.get(net)
    return None if cached is None else cached[1]


def openvino_microast(net: MicroAST) -> OpenVinoMicroAST:
    """``net`` compiled for OpenVINO, once per network and its current weights."""
    key = _weights_key(net)
    cached = _compiled_for.get(net)
    if cached is not None and cached[0] == key:
        return cached[1]
    compiled = OpenVinoMicroAST(net)
    _compiled_for[net] = (key, compiled)
    return compiled
