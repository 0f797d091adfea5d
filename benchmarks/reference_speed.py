"""Our DM iteration against the reference ``main_DM.py`` loop, side by side in one process.

The reference is ``../shared/reference/DatasetCondensation/main_DM.py`` run unmodified through
its own ``main()`` (see ``step_speed.py``) on the Fashion-MNIST train split from the Debian
package's IDX files. Ours is ``Distiller.step`` at the same settings: IPC 10, real batch 256, DSA, a fresh
ConvNet-3 per iteration. Rounds alternate reference and ours; the table gives the median.

    .venv/bin/python benchmarks/reference_speed.py --iterations 5 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace

import torch
from common import command_line, machine, publish
from step_speed import our_iterations_per_second, reference_iterations_per_second

from fiftyone_condense.algorithms.distillation import settings_for
from fiftyone_condense.algorithms.idx import fashion_mnist_tensors


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--batch-real", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations per round (after one warm-up)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mixed-precision", action="store_true", help="also time ours with bf16 autocast (an option)")
    parser.add_argument("--no-write", action="store_true")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    command = command_line()  # before main_DM.main() takes sys.argv
    images, labels = fashion_mnist_tensors("train")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    settings = settings_for("dm", batch_real=args.batch_real)
    speeds: dict[str, list[float]] = {"reference main_DM.py": [], "ours (fp32, default)": []}
    if args.mixed_precision:
        speeds["ours (bf16 autocast option)"] = []
    for round_ in range(args.rounds):
        speeds["reference main_DM.py"].append(reference_iterations_per_second(images, labels, args.ipc, args.batch_real, args.iterations))
        speeds["ours (fp32, default)"].append(our_iterations_per_second(images, labels, args.ipc, settings, args.iterations, device))
        if args.mixed_precision:
            speeds["ours (bf16 autocast option)"].append(
                our_iterations_per_second(images, labels, args.ipc, replace(settings, mixed_precision=True), args.iterations, device))
        print(f"round {round_ + 1}: " + ", ".join(f"{name} {values[-1]:.3f} it/s" for name, values in speeds.items()), flush=True)
    reference = statistics.median(speeds["reference main_DM.py"])
    lines = [
        f"Command: `{command}`  ",
        f"Machine: {machine()}  ",
        f"DM on Fashion-MNIST, IPC {args.ipc}, real batch {args.batch_real} per class, DSA, a fresh ConvNet-3 per iteration; "
        f"{args.rounds} alternating rounds of {args.iterations} timed iterations (median).",
        "",
        "| loop | iterations / s | × reference |",
        "|---|---|---|",
        *[f"| {name} | {statistics.median(values):.3f} | {statistics.median(values) / reference:.2f}× |" for name, values in speeds.items()],
    ]
    publish(args, "reference_speed", lines)


if __name__ == "__main__":
    main()
