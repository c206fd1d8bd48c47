"""One process of the any-painting trainer's distributed test, run as a script under torchrun (2
processes, gloo).

``python -m torch.distributed.run --standalone --nproc_per_node=2 tests/any_distributed_worker.py SPEC``
where SPEC is a JSON file written by ``tests/test_any_train_distributed.py``: the model files, the
photo and painting folders, the output folder and the settings. Each process trains through the real
``join_torchrun`` and ``train_any_style``, once as it should ("ddp") and once without averaging the
gradients over the processes ("no_averaging", the control that shows the test can fail), and writes
what it saw to ``<out>/rank<R>.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from unittest import mock

import torch

from depthstyle.depthstyle_core.depth import load_depth_model
from depthstyle.depthstyle_core.models.vgg import load_vgg16
from depthstyle.trainers.any_style.config import AnyTrainConfig
from depthstyle.trainers.any_style.job import train_any_style
from depthstyle.trainers.distributed import Team, join_torchrun


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec["out"])
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False  # see the module docstring of test_train_distributed.py
    report: dict = {"results": {}}
    with join_torchrun("cpu", timeout_s=60) as (team, device):
        common = {
            "config": AnyTrainConfig(**spec["config"]),
            "vgg": load_vgg16(spec["vgg"]),
            "depth_model": load_depth_model(spec["depth"]),
            "device": device,
            "team": team,
        }
        result = train_any_style(spec["photos"], spec["paintings"], out / "ddp" / "any", **common)
        report["results"]["ddp"] = {"steps": result.steps_done, "world_size": team.world_size}
        with mock.patch.object(Team, "prepare_model", lambda self, net, device: net):
            train_any_style(spec["photos"], spec["paintings"], out / "no_averaging" / "any", **common)
    (out / f"rank{team.rank}.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
