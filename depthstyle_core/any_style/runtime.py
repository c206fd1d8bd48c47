"""The any-painting network's parts on the runtime chosen for them (:mod:`..runtimes`): compiled for
OpenVINO once per network and weights, falling back to torch when OpenVINO cannot compile them, and
the working memory OpenVINO holds let go on request. openvino is imported only here, as it is optional.
"""

from __future__ import annotations

import warnings

from ..errors import DeviceError
from ..models.microast import MicroAST, MicroASTParts
from ..runtimes.choice import OPENVINO, openvino_problem


def openvino_parts(model: MicroAST) -> MicroASTParts:
    """``model``'s parts compiled for OpenVINO, once per network and weights."""
    from ..runtimes.openvino_parts import openvino_microast

    return openvino_microast(model)


def network_parts(model: MicroAST, runtime: str) -> MicroASTParts | None:
    """``model`` compiled for OpenVINO. Should OpenVINO fail to compile it, ``auto`` says so and stays
    on torch (None); ``openvino`` asked for by name is an error that names the way out."""
    try:
        return openvino_parts(model)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        if runtime == OPENVINO:
            raise DeviceError(
                f"OpenVINO could not compile the any-painting network ({reason}): use the runtime torch "
                "(--runtime torch), or update openvino"
            ) from exc
        warnings.warn(
            f"OpenVINO could not compile the any-painting network ({reason}), so it runs on torch",
            RuntimeWarning,
            stacklevel=4,
        )
        return None


def release_runtime_memory(model: MicroAST) -> None:
    """Let go of the working memory OpenVINO holds for ``model`` between calls (a host such as ComfyUI
    calls this when its work is done); nothing happens when the model never ran there."""
    if openvino_problem() is not None:
        return
    from ..runtimes.openvino_parts import compiled_microast

    compiled = compiled_microast(model)
    if compiled is not None:
        compiled.release_memory()
