"""Starting the processes of a distributed test by hand: each ``depthstyle`` process with torchrun's
environment but no torchrun agent, as on separate machines (a local agent would end the others itself
when one fails), then killing or freezing one of them and timing how the other gives up."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def agentless_env(rank: int, port: int, world_size: int = 2) -> dict[str, str]:
    """This environment plus what torchrun tells process ``rank`` (one thread for torch)."""
    return {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "WORLD_SIZE": str(world_size),
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "TORCHELASTIC_RUN_ID": "test",
        "OMP_NUM_THREADS": "1",
    }


@contextlib.contextmanager
def agentless_processes(args: list[str], logs: Path) -> Iterator[list[subprocess.Popen]]:
    """Two ``python -m depthstyle ARGS`` processes of one job, their output in ``logs/rank<R>.log``;
    any still running at the end is killed."""
    port = free_port()
    processes = []
    try:
        for rank in (0, 1):
            with open(logs / f"rank{rank}.log", "w") as log:
                command = [sys.executable, "-m", "depthstyle", *args]
                env = agentless_env(rank, port)
                processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def wait_until(
    ready: Callable[[], bool], processes: list[subprocess.Popen], what: str, seconds: float = 120
) -> None:
    """Wait until ``ready()`` while every process runs."""
    deadline = time.monotonic() + seconds
    while not ready():
        assert all(p.poll() is None for p in processes), "a process ended early"
        assert time.monotonic() < deadline, f"{what} did not happen"
        time.sleep(0.01)


def lose_one(
    victim: subprocess.Popen, survivor: subprocess.Popen, fate: str, timeout: float
) -> tuple[int, float]:
    """Kill (``fate`` "killed") or freeze ("frozen") ``victim``; the survivor's exit status and how long
    it took to end."""
    os.kill(victim.pid, signal.SIGKILL if fate == "killed" else signal.SIGSTOP)
    hit = time.monotonic()
    code = survivor.wait(timeout=timeout + 60)
    return code, time.monotonic() - hit
