"""DepthStyle: depth-aware neural style transfer for ComfyUI, the command line and Python.

ComfyUI imports this file when it loads the pack: it gets ``comfy_entrypoint`` (the V3 API) and nothing
heavy is imported. Python users get the library's main functions as attributes of the package, loaded
on first use, so ``import depthstyle`` stays instant and never imports torch by itself::

    import depthstyle
    photo = depthstyle.load_image("photo.jpg")
    depth = depthstyle.estimate_depth(depthstyle.load_depth_model("small"), photo)
"""

from importlib import import_module

_PUBLIC = {
    "estimate_depth": ".depthstyle_core.depth",
    "load_depth_model": ".depthstyle_core.depth",
    "load_image": ".depthstyle_core.images",
    "save_image": ".depthstyle_core.images",
    "load_vgg16": ".depthstyle_core.models.vgg",
    "load_style_model": ".depthstyle_core.style_model",
    "stylize": ".depthstyle_core.stylize",
    "load_any_style_model": ".depthstyle_core.any_style.model_file",
    "stylize_any": ".depthstyle_core.any_style.stylize",
    "hold_still": ".depthstyle_core.video.hold",
    "clip_warping_errors": ".depthstyle_core.video.warp_error",
    "TrainConfig": ".trainers",
    "train_style": ".trainers",
    "AnyTrainConfig": ".trainers",
    "train_any_style": ".trainers",
    "OptimizeConfig": ".trainers",
    "optimize_style": ".trainers",
    "DatasetConfig": ".trainers.datasets",
    "stylize_dataset": ".trainers.datasets",
}
__all__ = ["comfy_entrypoint", *_PUBLIC]
WEB_DIRECTORY = "./web"  # the frontend extension that shows the structure report's numbers in its node


async def comfy_entrypoint():
    """Return the ComfyUI extension that lists the DepthStyle nodes."""
    from .nodes.extension import DepthStyleExtension

    return DepthStyleExtension()


def __getattr__(name: str) -> object:
    """Load a public function or class of the library the first time it is asked for."""
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_PUBLIC[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
