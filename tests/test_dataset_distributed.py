"""``depthstyle stylize-dataset`` with two processes (gloo on the CPU): under torchrun they write exactly
what one process writes, each image once; when one of them is killed or hangs mid-run the other stops
with an error within the collective timeout, and a rerun ends with the tree and manifest of an
uninterrupted run, without painting a finished image again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .dataset_helpers import IMAGES, cli_arguments, stylize_dataset_cli, tree_files
from .process_helpers import agentless_processes, lose_one, wait_until

pytestmark = pytest.mark.usefixtures("single_thread")


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
        [*command, "-m", "depthstyle", *cli_arguments(photos, paintings, out)],
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


@pytest.mark.parametrize(("fate", "victim"), [("killed", 0), ("frozen", 1)])
def test_a_lost_process_stops_the_other_and_a_rerun_finishes_the_dataset(
    dataset_reference, tmp_path, fate, victim
):
    """Two processes given torchrun's environment but no torchrun agent, as on two machines (a local
    agent would end the survivor itself). Rank 0 writes the manifest: killing it must lose nothing
    recorded; freezing rank 1 must make rank 0 give up within the timeout."""
    photos, paintings, reference, _, _ = dataset_reference
    timeout, out = 5, tmp_path / "out"
    args = cli_arguments(photos, paintings, out, "--workers", "1", "--collective-timeout", str(timeout))
    with agentless_processes(args, tmp_path) as processes:
        wait_until(lambda: len(recorded(out)) >= 40, processes, "40 finished images")
        code, waited = lose_one(processes[victim], processes[1 - victim], fate, timeout)
    message = (tmp_path / f"rank{1 - victim}.log").read_text()
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
