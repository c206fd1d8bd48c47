"""``depthstyle stylize-dataset`` with two processes (gloo on the CPU): under torchrun they write exactly
what one process writes, each image once; when one of them is killed or hangs mid-run the other stops
with an error within the collective timeout, and a rerun ends with the tree and manifest of an
uninterrupted run, without painting a finished image again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .dataset_helpers import IMAGES, OPTIONS, stylize_dataset_cli, tree_files

pytestmark = pytest.mark.usefixtures("single_thread")


def arguments(photos: Path, paintings: Path, out: Path, *extra: str) -> list[str]:
    command = [
        "--device",
        "cpu",
        "stylize-dataset",
        "--content-dir",
        str(photos),
        "--style-dir",
        str(paintings),
    ]
    return [*command, "-o", str(out), *OPTIONS, *extra]


def recorded(out: Path) -> list[str]:
    """The outputs in the manifest (complete lines only)."""
    if not (out / "manifest.csv").is_file():
        return []
    lines = (out / "manifest.csv").read_text().split("\n")[1:-1]
    return [line.split(",")[4] for line in lines]


def test_two_processes_under_torchrun_write_what_one_process_writes(dataset_reference, tmp_path):
    photos, paintings, reference, _, _ = dataset_reference
    out = tmp_path / "out"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    done = subprocess.run(
        [*command, "-m", "depthstyle", *arguments(photos, paintings, out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    said = done.stdout + done.stderr
    assert done.returncode == 1, said[-4000:]  # torchrun's own status when a process ends with another than 0
    assert said.count("exitcode  : 3") == 1 and "rank      : 0" in said
    assert tree_files(out) == tree_files(reference)  # same bytes: images, manifest, skipped.csv
    assert said.count(f"stylised {IMAGES} images in") == 1 and "2 processes share the photos" in said
    assert said.count("skipped 2 unreadable photos") == 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(("fate", "victim"), [("killed", 0), ("frozen", 1)])
def test_a_lost_process_stops_the_other_and_a_rerun_finishes_the_dataset(
    dataset_reference, tmp_path, fate, victim
):
    """Two processes given torchrun's environment but no torchrun agent, as on two machines (a local
    agent would end the survivor itself). Rank 0 writes the manifest: killing it must lose nothing
    recorded; freezing rank 1 must make rank 0 give up within the timeout."""
    photos, paintings, reference, _, _ = dataset_reference
    timeout, out, port = 5, tmp_path / "out", free_port()
    processes, logs = [], []
    for rank in (0, 1):
        env = {
            **os.environ,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "WORLD_SIZE": "2",
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "TORCHELASTIC_RUN_ID": "test",
            "OMP_NUM_THREADS": "1",
        }
        logs.append(tmp_path / f"rank{rank}.log")
        args = arguments(photos, paintings, out, "--workers", "1", "--collective-timeout", str(timeout))
        with open(logs[-1], "w") as log:
            command = [sys.executable, "-m", "depthstyle", *args]
            processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
    survivor = processes[1 - victim]
    try:
        deadline = time.monotonic() + 120
        while len(recorded(out)) < 40:
            assert all(p.poll() is None for p in processes), "a process ended early"
            assert time.monotonic() < deadline, "the manifest did not grow"
            time.sleep(0.01)
        os.kill(processes[victim].pid, signal.SIGKILL if fate == "killed" else signal.SIGSTOP)
        hit = time.monotonic()
        code = survivor.wait(timeout=timeout + 60)
        waited = time.monotonic() - hit
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    message = logs[1 - victim].read_text()
    assert code == 2, message[-3000:]
    assert waited < timeout + 20, waited
    assert f"stylising process {1 - victim} of 2 lost contact with the others" in message
    assert "run the same command again to finish the dataset" in message
    finished = recorded(out)
    assert 40 <= len(finished) < IMAGES
    before = {output: (out / output).stat().st_mtime_ns for output in finished}
    reference_files = tree_files(reference)
    assert all((out / output).read_bytes() == reference_files[output] for output in finished)
    code, said = stylize_dataset_cli(photos, paintings, out)
    assert code == 3 and f"stylised {IMAGES - len(finished)} images" in said
    assert {output: (out / output).stat().st_mtime_ns for output in finished} == before
    assert tree_files(out) == reference_files  # no temporary file left, same bytes
