"""Training with several processes (torch.distributed, gloo on the CPU), started by torchrun.

Two processes x batch 1 must train what one process x batch 2 trains; only rank 0 writes, in the
single-process format; a stop on any process stops all of them; resume continues at the exact step,
also with another number of processes as long as the global batch is the same; a NaN on one
process stops both; a process that dies or hangs makes the other exit with an error in bounded time.
Tiny random VGG and Depth Anything models, 32 px crops, a few steps.

How close is "the same weights"? Two fp32 computations of one gradient that differ only in rounding
(batch 2 at once, or 2 x batch 1 averaged, even inside one process) do not end at weights within
1e-5 of each other after a few Adam steps: Adam divides each coordinate by its own running
magnitude, so coordinates whose true gradient is (nearly) zero, such as the conv biases in front of
an instance norm, move by up to ~lr on rounding noise alone (max 3e-4 after one step, 2e-3 after
four, measured). The weights are therefore compared by the size of their difference relative to
how far training moved them (0.008 measured, against 1.14 without gradient averaging), and the
calibration, computed from the same weights on both sides, to a relative 1e-5 (measured: 0 to 9e-8).
The logged losses after the first step inherit the weights' rounding noise, and how much depends on
the CPU's kernels (2.2e-4 at step 3 on one machine, 1e-7 on another), so their tolerance is measured
in the same run: the reference trained again with every VGG weight nudged by one unit in the last
place (two nudges) shows how far rounding alone moves each step's losses (7e-5 to 1.3e-4 at step 3
here, against 9e-4 without gradient averaging). The processes and the references use PyTorch's
native CPU convolutions (oneDNN off): oneDNN's batch-size-dependent summation order multiplies that
rounding noise by about 30.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from depthstyle.depthstyle_core.depth import load_depth_model
from depthstyle.depthstyle_core.errors import TrainingError
from depthstyle.depthstyle_core.images import load_image, save_image
from depthstyle.depthstyle_core.models.transformer_net import TransformerNet
from depthstyle.depthstyle_core.models.vgg import load_vgg16
from depthstyle.depthstyle_core.style_model import load_style_model
from depthstyle.depthstyle_core.stylize import stylize
from depthstyle.trainers.distributed import process_device
from depthstyle.trainers.fast.config import TrainConfig
from depthstyle.trainers.fast.job import train_style
from depthstyle.trainers.run.state import load_train_state

from .distributed_helpers import native_convolutions, nudged, rounding_floor, torchrun
from .factories import smooth_images, write_depth_checkpoint, write_vgg_checkpoint
from .process_helpers import agentless_processes, lose_one, wait_until

WORKER = Path(__file__).with_name("distributed_worker.py")
SETTINGS = {
    "iterations": 3,
    "batch_size": 1,
    "image_size": 32,
    "style_size": 48,
    "depth_resolution": 28,
    "checkpoint_every": 2,
    "log_every": 1,
    "preview_every": 2,
}
LOGGED_TERMS = ("total", "content", "style", "depth")
CALIBRATION_REL = 1e-5
RUN_FILES = {
    "style.safetensors",
    "style.state.safetensors",
    "style.log.json",
    "style.log.csv",
    "style.loss.png",
    "style.preview.png",
}


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_style_model(path)[0].state_dict()


def max_difference(a: Path, b: Path) -> float:
    first, second = weights(a), weights(b)
    assert first.keys() == second.keys()
    return max(float((first[k] - second[k]).abs().max()) for k in first)


def relative_difference(path: Path, reference: Path) -> float:
    """How far a run's weights end from the reference's, relative to how far the reference moved
    from the initial weights (seed 0)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        initial = TransformerNet().state_dict()
    ours, theirs = weights(path), weights(reference)
    apart = torch.cat([(ours[k] - theirs[k]).flatten() for k in theirs])
    moved = torch.cat([(theirs[k] - initial[k]).flatten() for k in theirs])
    return float(apart.norm() / moved.norm())


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("inputs")
    files = {
        "vgg": str(write_vgg_checkpoint(root / "models" / "vgg" / "vgg16.tv_in1k.safetensors")),
        "depth": str(write_depth_checkpoint(root / "models" / "depth" / "tiny.safetensors", seed=1)),
        "style": str(save_image(smooth_images(1, 48, 56, seed=99), root / "style.png")),
        "content": str(root / "photos"),
    }
    for index, image in enumerate(smooth_images(6, 40, 48, seed=1)):
        save_image(image, root / "photos" / f"{index}.png")
    return files


@pytest.fixture(scope="module")
def two_processes(inputs, tmp_path_factory) -> tuple[Path, list[dict]]:
    """Every scenario of tests/distributed_worker.py, run once by 2 processes under torchrun."""
    out = tmp_path_factory.mktemp("two")
    spec = out / "spec.json"
    spec.write_text(json.dumps({**inputs, "out": str(out / "runs"), "config": SETTINGS}))
    done = subprocess.run(torchrun(str(WORKER), str(spec)), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    reports = [json.loads((out / "runs" / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    return out / "runs", reports


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory, single_thread) -> Path:
    """One process x batch 2: what the two processes x batch 1 must reproduce."""
    out = tmp_path_factory.mktemp("one") / "style"
    with native_convolutions():
        return train_style(
            load_image(inputs["style"]),
            inputs["content"],
            out,
            config=TrainConfig(**{**SETTINGS, "batch_size": 2}),
            vgg=load_vgg16(inputs["vgg"]),
            depth_model=load_depth_model(inputs["depth"]),
        ).model_path


@pytest.fixture(scope="module")
def loss_tolerance(inputs, reference, tmp_path_factory, single_thread) -> dict[int, float]:
    """Per logged step, how far from the reference's losses a run may end through rounding alone."""
    single = json.loads(reference.with_name("style.log.json").read_text())["records"]
    floors = []
    for seed in (0, 1):
        with native_convolutions():
            records = train_style(
                load_image(inputs["style"]),
                inputs["content"],
                tmp_path_factory.mktemp(f"nudged{seed}") / "style",
                config=TrainConfig(**{**SETTINGS, "batch_size": 2}),
                vgg=nudged(load_vgg16(inputs["vgg"]), seed),
                depth_model=load_depth_model(inputs["depth"]),
            ).records
        floors.append(rounding_floor(records, single, LOGGED_TERMS))
    return {step: max(CALIBRATION_REL, *(floor[step] for floor in floors)) for step in floors[0]}


def test_two_processes_train_what_one_process_trains_with_the_global_batch(
    two_processes, reference, inputs, tmp_path, single_thread, loss_tolerance
):
    runs, _ = two_processes
    # Measured: 0.008 (the same computation split differently in one process gives the same), and
    # 1.14 for the run whose processes do not average their gradients: the test can tell.
    assert relative_difference(runs / "ddp" / "style.safetensors", reference) < 0.05
    assert relative_difference(runs / "no_averaging" / "style.safetensors", reference) > 0.5
    saved = load_train_state(runs / "ddp" / "style.state.safetensors").info["magnitudes"]
    expected = load_train_state(reference.with_name("style.state.safetensors")).info["magnitudes"]
    assert saved.keys() == expected.keys() == {"content", "style", "depth", "tv"}
    for term, value in expected.items():  # calibrated on the whole global batch ...
        assert saved[term] == pytest.approx(value, rel=CALIBRATION_REL), term
    first_crop_only = train_style(  # ... not on the first process's slice
        load_image(inputs["style"]),
        inputs["content"],
        tmp_path / "one_crop",
        config=TrainConfig(**{**SETTINGS, "iterations": 1}),
        vgg=load_vgg16(inputs["vgg"]),
        depth_model=load_depth_model(inputs["depth"]),
    )
    sliced = load_train_state(first_crop_only.paths.state).info["magnitudes"]
    assert all(abs(sliced[t] / saved[t] - 1) > 0.03 for t in ("content", "depth")), (sliced, saved)
    distributed = json.loads((runs / "ddp" / "style.log.json").read_text())["records"]
    single = json.loads(reference.with_name("style.log.json").read_text())["records"]
    assert [r["step"] for r in distributed] == [r["step"] for r in single] == [1, 2, 3]
    for ours, theirs in zip(distributed, single, strict=True):  # losses averaged over the processes
        for term in LOGGED_TERMS:
            assert ours[term] == pytest.approx(theirs[term], rel=loss_tolerance[ours["step"]]), term
    assert single[0]["depth"] > 0
    unaveraged = json.loads((runs / "no_averaging" / "style.log.json").read_text())["records"]
    off = rounding_floor(unaveraged, single, LOGGED_TERMS)
    assert all(off[step] > 3 * loss_tolerance[step] for step in (2, 3)), (off, loss_tolerance)


def test_only_rank_zero_writes_and_the_files_are_the_single_process_format(two_processes, reference):
    runs, (rank0, rank1) = two_processes
    assert rank1["written"] == []
    written = {Path(p).name for p in rank0["written"] if Path(p).parent == runs / "ddp"}
    assert RUN_FILES <= written
    assert (
        {p.name for p in (runs / "ddp").iterdir()}
        == RUN_FILES
        == {p.name for p in reference.parent.iterdir()}
    )
    net, metadata = load_style_model(runs / "ddp" / "style.safetensors")
    assert metadata["train.step"] == "3" and metadata["train.world_size"] == "2"
    assert load_train_state(runs / "ddp" / "style.state.safetensors").step == 3
    photo = smooth_images(1, 40, 52, seed=7)
    with torch.no_grad():
        styled = stylize(net, photo)
    assert styled.shape == photo.shape and float((styled - photo).abs().mean()) > 0.01


def test_a_stop_on_one_process_stops_both_and_resume_continues_at_the_exact_step(two_processes):
    runs, reports = two_processes
    for report in reports:
        assert report["results"]["stopped"] == {"steps": 2, "stopped": True}  # rank 1 asked, both stopped
        assert report["results"]["resumed"] == {"steps": 3, "stopped": False}
    assert load_style_model(runs / "stopped" / "style.safetensors")[1]["train.step"] == "2"
    assert max_difference(runs / "resumed" / "style.safetensors", runs / "ddp" / "style.safetensors") < 1e-6
    records = json.loads((runs / "resumed" / "style.log.json").read_text())["records"]
    assert [r["step"] for r in records] == [1, 2, 3]


def test_resume_with_another_world_size_needs_the_same_global_batch(
    two_processes, reference, inputs, tmp_path, single_thread
):
    runs, _ = two_processes
    shutil.copytree(runs / "stopped", tmp_path / "run")
    common = {
        "vgg": load_vgg16(inputs["vgg"]),
        "depth_model": load_depth_model(inputs["depth"]),
        "resume": True,
    }
    style = load_image(inputs["style"])
    with pytest.raises(TrainingError) as info:
        train_style(
            style, inputs["content"], tmp_path / "run" / "style", config=TrainConfig(**SETTINGS), **common
        )
    message = str(info.value)
    assert "2 processes x batch 1 = 2 crops per step" in message and "1 process x batch 1 = 1" in message
    one_by_two = TrainConfig(**{**SETTINGS, "batch_size": 2})
    with native_convolutions():
        result = train_style(
            style, inputs["content"], tmp_path / "run" / "style", config=one_by_two, **common
        )
    assert result.resumed_from == 2 and result.steps_done == 3
    assert relative_difference(result.model_path, reference) < 0.05
    assert load_train_state(result.paths.state).info["world_size"] == 1


def test_nan_on_one_process_stops_both_with_the_usual_message(two_processes):
    runs, (rank0, rank1) = two_processes
    message = rank0["errors"]["nan"]
    assert message == rank1["errors"]["nan"]
    assert "NaN or infinite" in message and "The last good checkpoint (step" in message
    _, metadata = load_style_model(runs / "nan" / "style.safetensors")
    kept = int(metadata["train.step"])
    assert kept >= 2 and f"(step {kept})" in message


def cli_training(inputs: dict[str, str], out: Path, *options: str) -> list[str]:
    """``depthstyle train`` arguments for 2 processes x batch 1 on the test photos, depth loss off."""
    return [
        "--models-dir",
        str(Path(inputs["vgg"]).parents[1]),
        "train",
        "--style",
        inputs["style"],
        "--content-dir",
        inputs["content"],
        "-o",
        str(out),
        "--batch-size",
        "1",
        "--image-size",
        "32",
        "--style-size",
        "32",
        "--depth-weight",
        "0",
        "--iterations",
        "100000",
        "--checkpoint-every",
        "2",
        *options,
    ]


@pytest.mark.parametrize("fate", ["killed", "frozen"])
def test_when_a_process_dies_or_hangs_the_other_exits_with_an_error_in_bounded_time(inputs, tmp_path, fate):
    """Two ``depthstyle train`` processes given torchrun's environment but no torchrun agent, as on
    two machines (a local agent would end the survivor itself): the survivor must give up on its
    own, within the collective timeout, and leave a loadable checkpoint."""
    timeout = 3
    out = tmp_path / "style.safetensors"
    args = cli_training(inputs, out, "--collective-timeout", str(timeout))
    with agentless_processes(args, tmp_path) as (survivor, victim):
        state = tmp_path / "style.state.safetensors"
        wait_until(state.exists, [survivor, victim], f"{state} appearing")
        code, waited = lose_one(victim, survivor, fate, timeout)
    message = (tmp_path / "rank0.log").read_text()
    assert code == 2, message[-3000:]
    assert waited < timeout + 20, waited
    assert "depthstyle train: error: training process 0 of 2 lost contact with the others" in message
    net, metadata = load_style_model(out)
    state = load_train_state(tmp_path / "style.state.safetensors")
    assert int(metadata["train.step"]) == state.step >= 2 and state.step % 2 == 0


def test_sigterm_under_torchrun_saves_one_checkpoint_and_every_process_exits(inputs, tmp_path):
    out = tmp_path / "style.safetensors"
    logs = tmp_path / "logs"
    command = torchrun(
        "--redirects", "3", "--log-dir", str(logs), "-m", "depthstyle", *cli_training(inputs, out)
    )
    with open(tmp_path / "torchrun.log", "w") as log:
        launcher = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"}
        )
    try:
        wait_until((tmp_path / "style.state.safetensors").exists, [launcher], "the first checkpoint")
        launcher.send_signal(signal.SIGTERM)
        launcher.wait(timeout=60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    said = [(logs.glob(f"**/{rank}/stderr.log")) for rank in (0, 1)]
    rank0, rank1 = ("".join(p.read_text() for p in found) for found in said)
    state = load_train_state(tmp_path / "style.state.safetensors")
    net, metadata = load_style_model(out)
    assert f"stopped by SIGTERM at step {state.step}/100000: a checkpoint was saved" in rank0
    assert int(metadata["train.step"]) == state.step >= 2
    assert "2 processes x batch 1 = 2 crops per step" in rank0 and "it/s" in rank0
    assert "stopped by" not in rank1 and "it/s" not in rank1 and "crops per step" not in rank1
    records = json.loads((tmp_path / "style.log.json").read_text())["records"]
    assert records[-1]["step"] == state.step


def test_batch_norm_is_refused_on_every_process(two_processes):
    runs, reports = two_processes
    for report in reports:
        assert "batch norm cannot be trained by several processes" in report["errors"]["batch_norm"]
    assert not (runs / "batch_norm").exists()


def test_each_torchrun_process_takes_the_gpu_of_its_local_rank(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")  # as torchrun sets it for the second process of a machine
    assert process_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(TrainingError, match="local rank 1 has no GPU: 1 visible"):
        process_device("cuda")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert process_device("cuda") == torch.device("cuda", 1)
    with pytest.raises(TrainingError, match="give --device cuda, not cuda:3"):
        process_device("cuda:3")
