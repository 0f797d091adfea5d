"""Iterations per second of a data-parallel DM step on 1 and N processes, with the time spent summing
gradients across them (Gloo on a CPU, NCCL on GPUs), on Fashion-MNIST at IPC 10, real batch 256.

    .venv/bin/python benchmarks/distributed.py --processes 1 2 --iterations 4

Each process takes ``cores / processes`` threads (on a GPU machine, one GPU each). FiftyOne-free.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fiftyone_condense.algorithms.distillation import distiller_for, settings_for  # noqa: E402
from fiftyone_condense.algorithms.distributed import Parallel, rank_device  # noqa: E402
from fiftyone_condense.algorithms.idx import fashion_mnist_tensors  # noqa: E402


def worker(rank: int, world: int, store: str, args: argparse.Namespace, results) -> None:
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(rank)
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    parallel = Parallel.current()
    device = rank_device(parallel, torch.device("cuda" if cuda else "cpu"))
    images, labels = fashion_mnist_tensors("train")
    init = torch.cat([images[labels == c][: args.ipc] for c in range(10)])
    settings = settings_for(args.method, batch_real=args.batch_real, log_every=10**9)
    distiller = distiller_for(args.method)(images, labels, init, torch.arange(10).repeat_interleave(args.ipc), 10,
                                           settings, device, seed=0, parallel=parallel)
    summing = [0.0]
    plain_sum = Parallel.sum_

    def timed_sum(self, tensors):
        if cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        plain_sum(self, tensors)
        if cuda:
            torch.cuda.synchronize()
        summing[0] += time.perf_counter() - started

    Parallel.sum_ = timed_sum
    distiller.step(0)  # warm-up
    summing[0] = 0.0
    if cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    for iteration in range(1, args.iterations + 1):
        distiller.step(iteration)
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    results.put((rank, elapsed, summing[0], distiller.synthetic.grad.numel() * 4))
    dist.destroy_process_group()


def measure(world: int, args: argparse.Namespace) -> dict:
    context = mp.get_context("spawn")
    results = context.Queue()
    with tempfile.TemporaryDirectory() as folder:
        context_processes = mp.spawn(worker, args=(world, str(Path(folder) / "store"), args, results), nprocs=world,
                                     join=False)
        rows = [results.get() for _ in range(world)]
        context_processes.join()
    elapsed = max(row[1] for row in rows)
    return {"processes": world, "it_per_s": args.iterations / elapsed,
            "sum_ms": 1e3 * max(row[2] for row in rows) / args.iterations, "bytes": rows[0][3]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--method", default="dm")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--batch-real", type=int, default=256)
    args = parser.parse_args(argv)
    machine = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores"
    rows = [measure(world, args) for world in args.processes]
    print(f"Command: `python benchmarks/distributed.py {' '.join(sys.argv[1:])}`  ")
    print(f"Machine: {machine}, torch {torch.__version__}; {args.method.upper()} at IPC {args.ipc}, real batch "
          f"{args.batch_real} per class, {args.iterations} timed iterations after one warm-up.\n")
    print("| processes | iterations / s | × 1 process | all-reduce per iteration (ms) | bytes summed per iteration |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['processes']} | {row['it_per_s']:.3f} | {row['it_per_s'] / rows[0]['it_per_s']:.2f}× | "
              f"{row['sum_ms']:.1f} | {row['bytes']:,} |")


if __name__ == "__main__":
    main()
