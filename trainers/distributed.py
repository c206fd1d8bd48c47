"""Work shared by several processes (training one style, stylising a dataset): the team of processes
and what they agree on.

``torchrun`` starts one process per GPU (and per machine) and tells each, in its environment, its
rank, the world size and where to meet; ``init_process_group(init_method="env://")`` reads that, so
this module never reads the environment itself. DistributedDataParallel averages the gradients
(NCCL on CUDA, gloo on the CPU). Host-side decisions (stop now? which files failed?) travel over a
separate gloo group so that they never wait for the GPU.

A :class:`Team` of one process does nothing collective: single-process training runs the same code.
Every collective has a timeout, and a failure while talking to the other processes becomes a
:class:`~..depthstyle_core.errors.DistributedTrainingError`, so a process whose partner died exits
with a clear message instead of hanging.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from ..depthstyle_core.errors import DistributedTrainingError, TrainingError

DEFAULT_TIMEOUT_S = 600.0
T = TypeVar("T")


def launched_by_torchrun() -> bool:
    """Whether ``torchrun`` (torch.distributed.elastic) started this process."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_torchelastic_launched()


@dataclass(frozen=True)
class Team:
    """The processes doing one job: this one is ``rank`` of ``world_size``; rank 0 writes files.

    ``control`` is the gloo process group for host-side values (None for a single process). ``role``,
    ``after_failure`` and ``same_inputs`` word the errors for the job (training by default): what the
    processes do, what is kept and how to go on after one is lost, and what every machine must share.
    """

    rank: int = 0
    world_size: int = 1
    control: Any = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    role: str = "training"
    after_failure: str = "The last checkpoint is kept: start the run again with --resume (resume=True)."
    same_inputs: str = "the same content images at the same path, the same style image and the same options"

    @property
    def is_main(self) -> bool:
        """True in the process that writes files and reports progress."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """True when other processes take part (world size above 1)."""
        return self.world_size > 1

    @contextlib.contextmanager
    def talking(self, what: str) -> Iterator[None]:
        """Turn a failure of the communication inside the block into a :class:`DistributedTrainingError`
        that says which process noticed it and why this usually happens."""
        try:
            yield
        except (TrainingError, torch.cuda.OutOfMemoryError):
            raise
        except RuntimeError as exc:
            if not self.is_distributed:
                raise
            raise DistributedTrainingError(
                f"{self.role} process {self.rank} of {self.world_size} lost contact with the others while "
                f"{what}: {exc}. Another process probably stopped or failed (see its messages) or did not "
                f"answer within {self.timeout_s:g} s. {self.after_failure}"
            ) from exc

    def any(self, flag: bool) -> bool:
        """True on every process if ``flag`` is True on any of them."""
        if not self.is_distributed:
            return flag
        import torch.distributed as dist

        value = torch.tensor([int(flag)], dtype=torch.int32)
        with self.talking("agreeing whether to stop"):
            dist.all_reduce(value, op=dist.ReduceOp.MAX, group=self.control)
        return bool(value.item())

    def all_true(self, flag: Tensor) -> bool:
        """True on every process if the boolean ``flag`` (a device tensor) is True on all of them."""
        if not self.is_distributed:
            return bool(flag)
        import torch.distributed as dist

        value = flag.to(torch.int32).reshape(1)
        with self.talking("checking the losses"):
            dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return bool(value.item())

    def mean(self, tensor: Tensor) -> Tensor:
        """The average of ``tensor`` over the processes (a new tensor; ``tensor`` itself is unchanged)."""
        if not self.is_distributed:
            return tensor
        import torch.distributed as dist

        total = tensor.detach().clone()
        with self.talking("averaging the losses"):
            dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total / self.world_size

    def mean_terms(self, terms: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Each loss term averaged over the processes: the term of the whole global batch, because
        every term is a mean over equally many samples per process."""
        names = sorted(terms)
        if not self.is_distributed or not names:
            return dict(terms)
        averaged = self.mean(torch.stack([terms[name].detach().float() for name in names]))
        return dict(zip(names, averaged.unbind(), strict=True))

    def gather_rows(self, rows: Tensor) -> tuple[Tensor, int]:
        """Every process's ``rows`` (the same shape on each) stacked in rank order, and the index of
        this process's first row. Gradients flow back to the process that made each row, so a loss
        over the whole step trains every process's share of it."""
        if not self.is_distributed:
            return rows, 0
        with self.talking("sharing the paintings' signals"):
            return _GatherRows.apply(rows, self.rank, self.world_size), self.rank * rows.shape[0]

    def from_main(self, value: T) -> T:
        """Rank 0's ``value`` on every process (any picklable object; rank 0's argument wins)."""
        if not self.is_distributed:
            return value
        import torch.distributed as dist

        box = [value]
        with self.talking("receiving the saved run from process 0"):
            dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def gather(self, value: T, what: str) -> list[T]:
        """Every process's ``value`` (any picklable object), in rank order, on every process; ``what``
        names the exchange in the error when a process is lost."""
        if not self.is_distributed:
            return [value]
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.world_size
        with self.talking(what):
            dist.all_gather_object(gathered, value, group=self.control)
        return gathered

    def union(self, names: set[str]) -> set[str]:
        """The union of every process's ``names``."""
        parts = self.gather(sorted(names), "collecting the unreadable files")
        return {name for part in parts for name in part}

    def check_same(self, facts: Mapping[str, str]) -> None:
        """Raise :class:`TrainingError` on every process unless all of them have the same ``facts``
        (e.g. the settings and the content images' fingerprint) as rank 0."""
        if not self.is_distributed:
            return
        gathered = self.gather(dict(facts), "comparing the settings of the processes")
        main = gathered[0]
        for rank, other in enumerate(gathered):
            differing = [what for what in main if other.get(what) != main[what]]
            if differing:
                raise TrainingError(
                    f"{self.role} process {rank} does not see the same {', '.join(differing)} as process 0. "
                    f"Every machine needs {self.same_inputs}."
                )

    def prepare_model(self, net: nn.Module, device: torch.device) -> nn.Module:
        """``net`` wrapped so that its gradients are averaged over the processes (the net itself
        for a single process). The style network has no buffers (instance norm), so nothing else
        is synchronised."""
        if not self.is_distributed:
            return net
        if any(isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm)) for module in net.modules()):
            raise TrainingError(
                "batch norm cannot be trained by several processes: its statistics would cover only "
                "each process's slice of the batch. Use --norm instance (the default) or one process."
            )
        from torch.nn.parallel import DistributedDataParallel

        with self.talking("sharing the initial weights"):
            return DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)


SINGLE = Team()


class _GatherRows(torch.autograd.Function):
    """All processes' rows in rank order; the backward pass sums each row's gradient over the
    processes (every process's loss may use every row) and hands each process those of its own rows."""

    @staticmethod
    def forward(ctx, rows: Tensor, rank: int, world_size: int) -> Tensor:
        import torch.distributed as dist

        parts = [torch.empty_like(rows) for _ in range(world_size)]
        dist.all_gather(parts, rows.contiguous())
        ctx.own = slice(rank * rows.shape[0], (rank + 1) * rows.shape[0])
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        import torch.distributed as dist

        total = grad.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total[ctx.own], None, None


def process_device(device: str | torch.device) -> torch.device:
    """The device of this torchrun process: ``cuda`` becomes ``cuda:LOCAL_RANK``; ``cpu`` stays."""
    import torch.distributed as dist

    device = torch.device(device)
    if device.type != "cuda":
        return device
    local_rank = dist.get_node_local_rank(fallback_rank=0)
    count = torch.cuda.device_count()
    if device.index is not None and device.index != local_rank:
        raise TrainingError(
            f"under torchrun give --device cuda, not {device}: each process uses the GPU of its local "
            f"rank (this one is local rank {local_rank})"
        )
    if local_rank >= count:
        raise TrainingError(
            f"the process with local rank {local_rank} has no GPU: {count} visible on this machine. "
            f"Start at most {count} processes per machine (torchrun --nproc_per_node={count})."
        )
    return torch.device("cuda", local_rank)


@contextlib.contextmanager
def join_torchrun(
    device: str | torch.device, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Iterator[tuple[Team, torch.device]]:
    """Join the process group that torchrun describes (NCCL for CUDA, gloo for the CPU); yield the
    :class:`Team` and this process's device, and leave the group afterwards.

    ``timeout_s`` bounds every collective: a process whose partner died or hangs raises after it.
    After an error the group is not torn down (that can block on a broken NCCL group): the process
    is about to exit anyway.
    """
    import torch.distributed as dist

    device = process_device(device)
    timeout = datetime.timedelta(seconds=timeout_s)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", init_method="env://", timeout=timeout, device_id=device)
        control = dist.new_group(backend="gloo", timeout=timeout)
    else:
        dist.init_process_group("gloo", init_method="env://", timeout=timeout)
        control = dist.group.WORLD
    team = Team(dist.get_rank(), dist.get_world_size(), control, timeout_s)
    yield team, device
    dist.destroy_process_group()
