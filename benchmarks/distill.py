"""Benchmark DM, Decomposed DM and AutoPalette on Fashion-MNIST against the coreset baselines.

For each IPC: distil with each method (initialised from a random selection, AutoPalette from
its colour-guided initialisation), evaluate under the hard protocol beside random selection
of the same size, and record bytes on disk. Also measures iterations per second of the
batched DM step against the reference's per-class loop, in one run on the same machine.

    .venv/bin/python benchmarks/distill.py --ipc 1,10,50 --iterations 20000 --epochs 1000 --num-models 5   # full
    .venv/bin/python benchmarks/distill.py --ipc 1,10,50 --iterations 100 --batch-real 64 --epochs 100 --num-models 2
"""

from __future__ import annotations

import argparse
import time

import torch
from common import benchmark_parser, command_line, load_benchmark_dataset, machine, publish

import fiftyone_condense as fc
from fiftyone_condense.distill import DistillSettings
from fiftyone_condense.distill.engine import Distiller


def parse_args(argv=None) -> argparse.Namespace:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--ipc", default="1,10,50")
    parser.add_argument("--methods", default="dm,ddm,autopalette")
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--batch-real", type=int, default=256)
    parser.add_argument("--num-colors", type=int, default=64)
    parser.add_argument("--speed-iterations", type=int, default=10)
    return parser.parse_args(argv)


def step_speed(real: torch.Tensor, labels: torch.Tensor, ipc: int, batch_real: int, iterations: int) -> list[str]:
    """Iterations/s of the DM step, all classes in one forward vs one forward per class."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    init = torch.cat([real[labels == c][:ipc] for c in range(10)])
    init_labels = torch.arange(10).repeat_interleave(ipc)
    rows = []
    for method in ("dm", "ddm"):
        speeds = {}
        for batched in (True, False):
            settings = DistillSettings(method=method, batch_real=batch_real, batched=batched)
            distiller = Distiller(real, labels, init, init_labels, 10, settings, device, seed=0)
            distiller.step(0)  # warm-up
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            for iteration in range(1, iterations + 1):
                distiller.step(iteration)
            if device.type == "cuda":
                torch.cuda.synchronize()
            speeds[batched] = iterations / (time.perf_counter() - started)
        rows.append(f"| {method} | {ipc} | {batch_real} | {speeds[True]:.2f} | {speeds[False]:.2f} | {speeds[True] / speeds[False]:.2f}× |")
        print(rows[-1], flush=True)
    return rows


def main(argv=None) -> None:
    args = parse_args(argv)
    dataset = load_benchmark_dataset(args)
    train = dataset.match_tags("train")
    reduced = args.iterations < 20000 or args.epochs < 1000 or args.num_models < 5
    lines = [
        f"Command: `{command_line()}`  ",
        f"Machine: {machine()}  ",
        f"Distillation: {args.iterations} iterations, real batch {args.batch_real} per class, lr 1, momentum 0.5, DSA; "
        f"AutoPalette K={args.num_colors}, task dm. Evaluation: hard protocol, ConvNet-3, {args.epochs} epochs × "
        f"{args.num_models} models{' — **reduced protocol**' if reduced else ''}.",
        "",
        "| method | IPC | accuracy % | random same size % | gain | bytes on disk | bytes as 8-bit RGB PNG | distil time (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for ipc in [int(v) for v in args.ipc.split(",")]:
        for method in args.methods.split(","):
            key = f"bench_{method}_ipc{ipc}"
            record = fc.distill(train, method=method, ipc=ipc, run_key=key, iterations=args.iterations,
                                batch_real=args.batch_real, num_colors=args.num_colors, overwrite=True)
            result = fc.evaluate(run_key=key, dataset=dataset, epochs=args.epochs, num_models=args.num_models)
            lines.append(
                f"| {method} | {ipc} | {100 * result['mean']:.1f} ± {100 * result['std']:.1f} | "
                f"{100 * result['random']['mean']:.1f} ± {100 * result['random']['std']:.1f} | "
                f"{100 * result['gain_over_random']:+.1f} | {record.results['bytes']:,} | {record.results['bytes_8bit_rgb']:,} | "
                f"{record.results['timings']['distill_s']:.0f} |"
            )
            print(lines[-1], flush=True)

    images = fc.api.load_images(train, "ground_truth")
    speed = [
        "",
        f"Batched DM step (all classes in one forward) against the reference's per-class loop, "
        f"{args.speed_iterations} iterations each, same process ({machine()}):",
        "",
        "| loss | IPC | real batch / class | batched it/s | per-class loop it/s | speed-up |",
        "|---|---|---|---|---|---|",
        *step_speed(images.floats(), images.labels, 10, args.batch_real, args.speed_iterations),
    ]
    publish(args, "distill", lines + speed)


if __name__ == "__main__":
    main()
