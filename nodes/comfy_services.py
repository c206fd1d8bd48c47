"""ComfyUI services handed to the library as plain arguments and callbacks.

The library never imports ComfyUI: it takes ``on_progress(done, total, preview)``, ``should_stop()``,
devices and model folders. This module builds those from ComfyUI's progress bar, interrupt flag,
model management and ``folder_paths``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import comfy.model_management as model_management
import comfy.utils
import folder_paths
import torch
from comfy.cli_args import args
from comfy.model_patcher import ModelPatcher

from ..depthstyle_core.errors import ModelNotAvailableError
from ..depthstyle_core.images import tensor_to_pil, to_rgb
from ..depthstyle_core.models.vgg import VGG16Features, load_vgg16

DEPTH_FOLDER = "depthstyle_depth"
STYLE_FOLDER = "depthstyle_styles"
VGG_FOLDER = "depthstyle_vgg"
ANY_STYLE_FOLDER = "depthstyle_any_style"
MODEL_SUBFOLDERS = {
    DEPTH_FOLDER: "depth",
    STYLE_FOLDER: "styles",
    VGG_FOLDER: "vgg",
    ANY_STYLE_FOLDER: "any_style",
}
MODEL_EXTENSIONS = frozenset({".safetensors"})


def register_model_folders() -> None:
    """Add ``<models_dir>/depthstyle/{depth,styles,vgg,any_style}`` under our folder keys and list only
    safetensors.

    Only adds: folders the user registered for these keys in ``extra_model_paths.yaml`` (loaded before
    any pack) stay, and stay first, so they are searched first and downloads are pointed there.
    """
    for key, subfolder in MODEL_SUBFOLDERS.items():
        default_folder = os.path.join(folder_paths.models_dir, "depthstyle", subfolder)
        folder_paths.add_model_folder_path(key, default_folder)
        paths, _ = folder_paths.folder_names_and_paths[key]
        folder_paths.folder_names_and_paths[key] = (paths, set(MODEL_EXTENSIONS))


def model_dirs(key: str) -> list[str]:
    """Every folder registered for ``key``, in search order, each once."""
    return list(dict.fromkeys(folder_paths.get_folder_paths(key)))


def model_files(key: str) -> list[str]:
    """The model files in the folders of ``key`` (names relative to their folder), for a combo."""
    return folder_paths.get_filename_list(key)


def model_file_path(key: str, name: str) -> str:
    """The full path of a file listed by ``model_files``. A name that is in no folder (a workflow made
    on another machine, a file moved away) is a :class:`ModelNotAvailableError` naming the folders."""
    path = folder_paths.get_full_path(key, name)
    if path is None:
        raise ModelNotAvailableError(
            f"{name} is not available: it is in none of the model folders for {key} "
            f"({', '.join(model_dirs(key))}). Put the file there (or make it: styles come from DepthStyle "
            "Train Style), press R in the browser to refresh the lists, and choose it."
        )
    return path


def model_file_fingerprint(key: str, name: str) -> tuple[str, int, int] | None:
    """(path, mtime_ns, size) of a listed model file, None if it is missing: changes when the file is
    rewritten (a style trained again under the same name), so ComfyUI reloads it instead of caching."""
    path = folder_paths.get_full_path(key, name)
    if path is None:
        return None
    stat = os.stat(path)
    return path, stat.st_mtime_ns, stat.st_size


def folder_fingerprint(folder: str | os.PathLike) -> tuple[tuple[str, int, int], ...]:
    """Every file under ``folder`` with its size and modification time: changes when a file is added,
    removed or rewritten (empty for a folder that does not exist; the node's own error says so)."""
    root = Path(folder)
    if not root.is_dir():
        return ()
    stats = sorted((str(p.relative_to(root)), p.stat()) for p in root.rglob("*") if p.is_file())
    return tuple((name, stat.st_size, stat.st_mtime_ns) for name, stat in stats)


def save_folder(key: str) -> str:
    """The folder new files of ``key`` are written to: the first registered one (a folder from
    ``extra_model_paths.yaml`` if the user set one, else ``models/depthstyle/...``). Built-in models
    that are found nowhere are downloaded there too."""
    return model_dirs(key)[0]


def load_builtin_vgg() -> VGG16Features:
    """The VGG-16 loss network, as every DepthStyle node loads it: from the ``depthstyle_vgg`` folders,
    else the Hugging Face cache, else downloaded once (pinned commit) into ``save_folder(VGG_FOLDER)``.
    Read from disk once per folder set: the same network (and its place in ComfyUI's memory
    management) serves every prompt."""
    return _vgg_from(tuple(model_dirs(VGG_FOLDER)), save_folder(VGG_FOLDER))


@functools.lru_cache(maxsize=1)
def _vgg_from(folders: tuple[str, ...], download_dir: str) -> VGG16Features:
    return load_vgg16(model_dirs=list(folders), download_dir=download_dir)


def repeat_to_batch(tensor: torch.Tensor | None, batch: int) -> torch.Tensor | None:
    """A mask or depth-map batch made as long as the image batch as ComfyUI's own nodes do it: repeated
    in turn (2 masks for 5 images: 1, 2, 1, 2, 1), or cut when longer. None stays None."""
    return None if tensor is None else comfy.utils.repeat_to_batch_size(tensor, batch)


def input_directory() -> str:
    """ComfyUI's input folder (where LoadImage finds its files)."""
    return folder_paths.get_input_directory()


def output_device() -> torch.device:
    """Where node outputs live: ComfyUI's intermediate device (the CPU unless ``--gpu-only``)."""
    return model_management.intermediate_device()


def to_comfy_image(images: torch.Tensor) -> torch.Tensor:
    """``[B,C,H,W]`` -> ComfyUI IMAGE ``[B,H,W,3]``: float32 on the intermediate device, values as given
    (raw depth may exceed 1; everything else the library returns is already in 0..1)."""
    return to_rgb(images).movedim(1, -1).contiguous().to(device=output_device(), dtype=torch.float32)


def to_comfy_mask(masks: torch.Tensor) -> torch.Tensor:
    """``[B,1,H,W]`` -> ComfyUI MASK ``[B,H,W]``, float32 on the intermediate device."""
    return masks[:, 0].contiguous().to(device=output_device(), dtype=torch.float32)


def offload_device() -> torch.device:
    """Where a loaded model waits between runs."""
    return model_management.unet_offload_device()


_PATCHER_SLOT = "_depthstyle_patcher"  # the module attribute that holds its _PatcherSlot


class _PatcherSlot:
    """Holds the ModelPatcher of a module; a copy of the module (``copy.deepcopy``) starts without one,
    so that ComfyUI never manages a copy through the original's patcher."""

    __slots__ = ("patcher",)

    def __init__(self, patcher: ModelPatcher | None) -> None:
        self.patcher = patcher

    def __deepcopy__(self, memo: dict) -> _PatcherSlot:
        return _PatcherSlot(None)


def managed(module: torch.nn.Module) -> ModelPatcher:
    """The ModelPatcher through which ComfyUI manages ``module``, made once per module: ComfyUI loads it,
    keeps it between prompts while memory allows, and unloads it when it needs the room ("Unload models",
    another model's load, out-of-memory handling)."""
    slot = module.__dict__.get(_PATCHER_SLOT)
    if slot is None or slot.patcher is None:
        patcher = ModelPatcher(
            module,
            load_device=model_management.get_torch_device(),
            offload_device=offload_device(),
            size=model_management.module_size(module),
        )
        slot = module.__dict__[_PATCHER_SLOT] = _PatcherSlot(patcher)
    return slot.patcher


@contextmanager
def on_compute_device(module: torch.nn.Module, memory_required: int = 0) -> Iterator[torch.device]:
    """``module`` loaded on ComfyUI's compute device for the block, through ComfyUI's model management
    (:func:`managed`): room is made for its weights plus ``memory_required`` bytes (the work's own
    estimate) by unloading what ComfyUI can spare, and the module stays loaded after the block."""
    patcher = managed(module)
    model_management.load_models_gpu([patcher], memory_required=int(memory_required), force_full_load=True)
    yield patcher.load_device


@contextmanager
def device_with_room(memory_required: int) -> Iterator[torch.device]:
    """ComfyUI's compute device with room made for ``memory_required`` bytes: ComfyUI unloads only as
    many of its models as that needs (least recently used first), so a job of seconds does not make
    the next prompt reload everything. The cache is emptied afterwards, also after Cancel or an error."""
    device = model_management.get_torch_device()
    model_management.free_memory(int(memory_required), device)
    try:
        yield device
    finally:
        model_management.soft_empty_cache()


def loop_precision() -> str:
    """The precision of training and optimisation, as ComfyUI chooses it for its compute device: bf16
    where ComfyUI would run a model in bf16 on a CUDA device (the loops autocast only there), else
    fp32. ``--force-fp32`` always gives fp32."""
    device = model_management.get_torch_device()
    return "bf16" if device.type == "cuda" and model_management.should_use_bf16(device) else "fp32"


def module_bytes(*modules: torch.nn.Module | None) -> int:
    """The size of the weights of ``modules`` (None counts 0)."""
    return sum(model_management.module_size(m) for m in modules if m is not None)


@contextmanager
def training_device() -> Iterator[torch.device]:
    """ComfyUI's compute device with every model ComfyUI manages unloaded first: training needs all the
    memory it can get (core's own trainer evicts everything too). The cache is emptied afterwards,
    also after Cancel or an error, so the loss networks' copies do not stay in VRAM."""
    device = model_management.get_torch_device()
    model_management.unload_all_models()
    model_management.soft_empty_cache()
    try:
        yield device
    finally:
        model_management.soft_empty_cache()


def progress_callback() -> Callable[[int, int, torch.Tensor | None], None]:
    """``on_progress(done, total, preview)`` that drives the node's progress bar.

    Every call also checks Cancel: ComfyUI's progress hook raises its interrupt exception first.
    ``preview`` is an RGB image ``[3,H,W]`` (or a batch, of which the first is shown) in 0..1.
    """
    bar = comfy.utils.ProgressBar(1)

    def on_progress(done: int, total: int, preview: torch.Tensor | None = None) -> None:
        shown = None
        if preview is not None:
            first = preview[0] if preview.ndim == 4 else preview
            shown = ("JPEG", tensor_to_pil(first), args.preview_size)
        bar.update_absolute(done, total, shown)

    return on_progress


def should_stop() -> bool:
    """``should_stop()`` for the library: raises ComfyUI's interrupt exception after Cancel.

    Raising (instead of returning True) lets ComfyUI report the run as interrupted, not failed.
    """
    model_management.throw_exception_if_processing_interrupted()
    return False
