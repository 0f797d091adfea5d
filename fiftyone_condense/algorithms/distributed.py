"""Data parallelism on ``torch.distributed``, as ``torchrun`` starts it (NCCL on GPUs, Gloo on CPUs).

A :class:`Parallel` says which share of the work this process does and moves tensors between the
processes: distillation splits the classes (each rank matches its own classes and the synthetic
images' gradients are summed), evaluation splits the models, embeddings split the images. With one
process every operation is the identity, so single-process code is the same code. FiftyOne-free.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional

import torch
import torch.distributed as dist

TIMEOUT = datetime.timedelta(minutes=10)  # a rank that stops answering fails the others after this


@dataclass(frozen=True)
class Parallel:
    """This process's place among ``world_size`` processes (``rank`` 0 is the main one)."""

    rank: int = 0
    world_size: int = 1

    @classmethod
    def current(cls) -> "Parallel":
        """The initialised default process group's place, or a single process."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def share(self, count: int) -> range:
        """This rank's contiguous block of ``range(count)`` (blocks differ in size by at most one)."""
        return range(count * self.rank // self.world_size, count * (self.rank + 1) // self.world_size)

    def sum_(self, tensors: Iterable[Optional[torch.Tensor]]) -> None:
        """Sum each tensor over the processes, in place (every rank gets the same bits)."""
        if self.active:
            for tensor in tensors:
                if tensor is not None:
                    dist.all_reduce(tensor)

    def broadcast(self, value: Any) -> Any:
        """The main process's ``value`` (any picklable object), on every rank."""
        if not self.active:
            return value
        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        if not self.active:
            return [value]
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def gather_rows(self, rows: torch.Tensor, total: int) -> torch.Tensor:
        """Concatenate each rank's :meth:`share` of ``total`` rows, in order, on every rank (padded
        ``all_gather`` of tensors: no pickling of large matrices)."""
        if not self.active:
            return rows
        home, rows = rows.device, rows.to(_collective_device())
        longest = -(-total // self.world_size)
        padded = torch.zeros((longest, *rows.shape[1:]), dtype=rows.dtype, device=rows.device)
        padded[: len(rows)] = rows
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)
        sizes = [len(Parallel(rank, self.world_size).share(total)) for rank in range(self.world_size)]
        return torch.cat([part[:size] for part, size in zip(parts, sizes)]).to(home)

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def _collective_device() -> torch.device:
    """Where tensors must be for the backend's collectives (NCCL: this rank's GPU)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def init_from_env() -> Parallel:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and the
    rendezvous variables); one process when there is none. NCCL when each rank has a GPU (that rank's
    ``LOCAL_RANK``-th), else Gloo."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or (dist.is_available() and dist.is_initialized()):
        return Parallel.current()
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend, timeout=TIMEOUT)
    return Parallel.current()


def rank_device(parallel: Parallel, requested: torch.device) -> torch.device:
    """The device a rank computes on: the requested one in a single process, else the rank's
    collective device (its GPU under NCCL, the CPU under Gloo)."""
    return _collective_device() if parallel.active else requested


class Team:
    """Tensor work shared by the processes of a group, the main process in charge.

    The main process runs the SDK as usual; where it computes, it calls ``run(task, ...)``, which
    hands the task (a module-level function) and its picklable arguments to the other processes and
    runs it with them; the others ``serve()`` until dismissed. Only the main process touches
    FiftyOne: tasks get images as file paths and the other processes read the media alone. In a
    single process ``run`` is a plain call.
    """

    def __init__(self, parallel: Parallel = Parallel()):
        self.parallel = parallel

    def run(self, task: Callable[..., Any], *args, local: Optional[dict] = None, **kwargs) -> Any:
        """``task(*args, **kwargs, parallel=...)`` on every process, each on its own device (a
        ``device`` keyword is the single-process choice); ``local`` keywords (a progress callback)
        are this process's alone."""
        if self.parallel.active:
            self.parallel.broadcast((task, args, kwargs))
        return self._call(task, args, {**kwargs, **(local or {})})

    def serve(self) -> None:
        """Run the main process's tasks until it dismisses the team."""
        while (message := self.parallel.broadcast(None)) is not None:
            task, args, kwargs = message
            self._call(task, args, kwargs)

    def dismiss(self) -> None:
        if self.parallel.active:
            self.parallel.broadcast(None)

    def _call(self, task: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        if "device" in kwargs:
            kwargs["device"] = rank_device(self.parallel, torch.device(kwargs["device"]))
        return task(*args, **kwargs, parallel=self.parallel)


_team = Team()


def current_team() -> Team:
    """The team the SDK's computations run on: one process unless a launcher leads a group."""
    return _team


@contextlib.contextmanager
def leading(team: Team) -> Iterator[Team]:
    """Make ``team`` the current one in the main process; dismiss it when done (or failed)."""
    global _team
    previous, _team = _team, team
    try:
        yield team
    finally:
        _team = previous
        team.dismiss()
