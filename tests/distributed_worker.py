"""One training process of the distributed tests, run as a script under torchrun (2 processes, gloo).

``python -m torch.distributed.run --standalone --nproc_per_node=2 tests/distributed_worker.py SPEC``
where SPEC is a JSON file written by ``tests/test_train_distributed.py``: the model and image files,
the output folder and the training settings. Each process runs the same scenarios through the real
``join_torchrun`` and ``train_style`` and writes what it saw to ``<out>/rank<R>.json``: the files it
opened for writing (an audit hook), the results and the error messages.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from unittest import mock

import torch

from depthstyle.depthstyle_core.depth import load_depth_model
from depthstyle.depthstyle_core.errors import TrainingError
from depthstyle.depthstyle_core.images import load_image
from depthstyle.depthstyle_core.models.transformer_net import TransformerNetConfig
from depthstyle.depthstyle_core.models.vgg import load_vgg16
from depthstyle.trainers.data import ContentSource, CropSampler
from depthstyle.trainers.distributed import Team, join_torchrun
from depthstyle.trainers.fast.config import TrainConfig
from depthstyle.trainers.fast.job import train_style


class WriteRecorder:
    """Files opened for writing, or renamed, under ``root`` (an audit hook; it stays installed)."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self.written: list[str] = []
        self.active = True
        sys.addaudithook(self)

    def __call__(self, event: str, args: tuple) -> None:
        if not self.active:
            return
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wxa+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            )
            if writing and isinstance(path, str) and path.startswith(self.root):
                self.written.append(path)
        elif event == "os.rename" and str(args[1]).startswith(self.root):
            self.written.append(str(args[1]))


def poisoned_content(seed_search: int = 60) -> tuple[torch.Tensor, int]:
    """12 images, one of them NaN, and a seed whose first NaN crop is rank 1's share of step 2 or
    later with 2 processes x batch 1 (rank 0's crops stay clean until then)."""
    generator = torch.Generator().manual_seed(5)
    images = torch.rand(12, 3, 36, 36, generator=generator)
    images[2] = float("nan")
    source = ContentSource.from_tensor(images)
    for seed in range(seed_search):
        sampler = CropSampler(source, 32, seed)
        first = next(i for i in range(200) if torch.isnan(sampler.sample(i)).any())
        if first % 2 == 1 and first >= 4:
            return images, seed
    raise AssertionError("no suitable seed")


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec["out"])
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False  # see the module docstring of test_train_distributed.py
    recorder = WriteRecorder(out)
    report: dict = {"results": {}, "errors": {}}
    with join_torchrun("cpu", timeout_s=spec.get("timeout", 60)) as (team, device):
        style = load_image(spec["style"])
        common = {
            "vgg": load_vgg16(spec["vgg"]),
            "depth_model": load_depth_model(spec["depth"]),
            "device": device,
            "team": team,
        }
        config = TrainConfig(**spec["config"])

        def run(name: str, **kwargs) -> None:
            result = train_style(
                style, spec["content"], out / name / "style", config=config, **common, **kwargs
            )
            report["results"][name] = {"steps": result.steps_done, "stopped": result.stopped}

        run("ddp")
        with mock.patch.object(Team, "prepare_model", lambda self, net, device: net):
            run("no_averaging")
        run("stopped", should_stop=stop_after(2, only_rank=1, team=team))
        run("resumed", should_stop=stop_after(2, only_rank=1, team=team))
        run("resumed", resume=True)
        try:
            batch_norm = TrainConfig(**{**spec["config"], "net_config": TransformerNetConfig(norm="batch")})
            train_style(style, spec["content"], out / "batch_norm" / "style", config=batch_norm, **common)
        except TrainingError as exc:
            report["errors"]["batch_norm"] = str(exc)
        images, seed = poisoned_content()
        try:
            nan_config = TrainConfig(
                **{**spec["config"], "seed": seed, "depth_weight": 0.0, "iterations": 40}
            )
            train_style(style, images, out / "nan" / "style", config=nan_config, **common)
        except TrainingError as exc:
            report["errors"]["nan"] = str(exc)
    recorder.active = False
    report["written"] = sorted(set(recorder.written))
    (out / f"rank{team.rank}.json").write_text(json.dumps(report, indent=1))


def stop_after(step: int, only_rank: int, team: Team):
    """``should_stop`` that says yes on one process only, once it is asked before step ``step + 1``."""
    asked = [0]

    def should_stop() -> bool:
        asked[0] += 1
        return team.rank == only_rank and asked[0] > step

    return should_stop


if __name__ == "__main__":
    main(sys.argv[1])
