"""An example ``depthstyle compare`` run on this machine, with RANDOM-WEIGHT networks.

Nothing here is trained: the depth network is the tests' tiny random-weight Depth Anything
(``tests/factories.py``), VGG-16 has PyTorch's random initialisation and the two "style models" are
untrained TransformerNets (seeds 0 and 1) whose last layer is rescaled so that their output spans the
visible range (an untrained one paints nearly black). The numbers show what the table looks like and
that the command runs end to end, not how good any model is. The photos are scikit-image's sample
images (a test-only dependency), scaled to ``--size`` on the longer side.

Run from the repository root: python bench/compare_example.py [--size 256] [--resolution 518]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import command_and_machine
from PIL import Image
from safetensors.torch import save_file

from depthstyle.cli import main as depthstyle_main
from depthstyle.depthstyle_core.images import pil_to_tensor
from depthstyle.depthstyle_core.models.transformer_net import TransformerNet
from depthstyle.depthstyle_core.models.vgg import VGG16_HUB, VGG16Features
from depthstyle.depthstyle_core.style_model import save_style_model

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
STYLE = "hubble_deep_field"
MODELS = ("random_seed0", "random_seed1")
RESULTS = Path(__file__).parent / "results"


OUTPUT_MEAN, OUTPUT_STD = 127.5, 50.0  # on the network's 0..255 scale


def visible_random_net(seed: int, calibration: torch.Tensor) -> TransformerNet:
    """An untrained TransformerNet whose last layer is rescaled so that, on ``calibration``, its output has
    mean ``OUTPUT_MEAN`` and standard deviation ``OUTPUT_STD`` (0..255)."""
    torch.manual_seed(seed)
    net = TransformerNet().train(False)
    last = net.deconv3.conv2d
    with torch.no_grad():
        raw = net(calibration) * 255.0
        factor = OUTPUT_STD / float(raw.std())
        last.weight.mul_(factor)
        last.bias.copy_((last.bias - raw.mean()) * factor + OUTPUT_MEAN)
    return net


def write_models(folder: Path, calibration: torch.Tensor) -> None:
    """Random-weight depth, VGG-16 and style networks under the names the command looks for."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' model factories
    from tests.factories import write_depth_checkpoint

    write_depth_checkpoint(folder / "depth" / "random_tiny.safetensors", seed=1)
    torch.manual_seed(0)
    (folder / "vgg").mkdir()
    vgg = {k: v.contiguous() for k, v in VGG16Features().state_dict().items()}
    save_file(vgg, str(folder / "vgg" / VGG16_HUB.local_filename))
    for seed, name in enumerate(MODELS):
        save_style_model(folder / "styles" / f"{name}.safetensors", visible_random_net(seed, calibration))


def write_photos(folder: Path, size: int) -> Path:
    """The sample photos scaled to ``size`` on the longer side, and the style image; returns its path."""
    import skimage.data

    folder.mkdir(parents=True)
    for name in (*PHOTOS, STYLE):
        image = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
        image.save(folder / f"{name}.png")
    return folder / f"{STYLE}.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--resolution", type=int, default=518)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        style = write_photos(work / "photos", args.size)
        write_models(work / "models", pil_to_tensor(Image.open(work / "photos" / f"{PHOTOS[0]}.png")))
        (work / "photos" / style.name).rename(work / style.name)
        out = work / "out"
        argv = [
            "--models-dir",
            str(work / "models"),
            "compare",
            "--models",
            *(f"{m}.safetensors" for m in MODELS),
        ]
        # Relative paths from inside the scratch folder, so that the results name no folder of this machine.
        argv += ["--images", "photos", "--style", style.name, "-o", "out"]
        argv += ["--depth-model", "random_tiny.safetensors", "--resolution", str(args.resolution)]
        here = Path.cwd()
        os.chdir(work)
        try:
            started = time.perf_counter()
            code = depthstyle_main(argv)
            seconds = time.perf_counter() - started
        finally:
            os.chdir(here)
        if code != 0:
            raise SystemExit(f"depthstyle compare exited with {code}")
        table = (out / "table.md").read_text()
        summary = json.loads((out / "summary.json").read_text())
    run = {**command_and_machine(), "seconds": round(seconds, 1), "photos": list(PHOTOS), "size": args.size}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "compare_example_cpu.json").write_text(json.dumps({"run": run, **summary}, indent=2) + "\n")
    header = [
        "# Example `depthstyle compare` table (random weights)",
        "",
        "**Every network here has random weights** (the tests' tiny Depth Anything, VGG-16, two untrained",
        "TransformerNets with their last layer rescaled to a visible output range): the table shows the",
        "format and that the command runs end to end, not model quality.",
        f"Photos: scikit-image's {', '.join(PHOTOS)}, {args.size} px on the longer side;",
        f"style image: {STYLE}.",
        "",
        "```",
        run["command"],
        "```",
        "",
        f"torch {run['torch']}, Python {run['python']}, {run['threads']} threads, {run['machine']}; "
        f"the compare command took {run['seconds']} s.",
        "",
        "",
    ]
    (RESULTS / "compare_example_cpu.md").write_text("\n".join(header) + table)
    print("\n".join(header) + table)


if __name__ == "__main__":
    main()
