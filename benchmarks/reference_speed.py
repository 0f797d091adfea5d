"""Our DM iteration against the reference ``main_DM.py`` loop, side by side in one process.

The reference is ``../shared/reference/DatasetCondensation/main_DM.py`` run unmodified through
its own ``main()``; only its module-level helpers are swapped: ``get_dataset`` serves the
Fashion-MNIST train split from the Debian package's IDX files, ``evaluate_synset`` is skipped
(this measures distillation only), ``DiffAugment``'s output is made contiguous (with torch 2.13
on a CPU, a cropped 1-channel batch otherwise has channels-last strides and its ``embed`` fails:
see the reference README) and ``get_network`` is wrapped to time each iteration (one call per
iteration). Ours is ``Distiller.step`` at the same settings: IPC 10, real batch 256, DSA, a fresh
ConvNet-3 per iteration. Rounds alternate reference and ours; the table gives the median.

    .venv/bin/python benchmarks/reference_speed.py --iterations 5 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import command_line, machine, publish

from fiftyone_condense.datasets import FASHION_MNIST_DIR, read_idx
from fiftyone_condense.distill import DistillSettings
from fiftyone_condense.distill.engine import Distiller

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "DatasetCondensation"
MEAN, STD = 0.2861, 0.3530  # the reference's FashionMNIST normalisation (utils.get_dataset)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--batch-real", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations per round (after one warm-up)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mixed-precision", action="store_true", help="also time ours with bf16 autocast (an option)")
    parser.add_argument("--no-write", action="store_true")
    return parser.parse_args(argv)


def fashion_mnist() -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.from_numpy(read_idx(FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz")).float().div(255).unsqueeze(1)
    return images, torch.from_numpy(read_idx(FASHION_MNIST_DIR / "train-labels-idx1-ubyte.gz")).long()


def reference_iterations_per_second(images: torch.Tensor, labels: torch.Tensor, ipc: int, batch_real: int, iterations: int) -> float:
    """Run the reference ``main_DM.main()`` for ``iterations + 1`` iterations; iterations/s between network draws."""
    sys.path.insert(0, str(REFERENCE))
    import main_DM  # noqa: E402  (the reference script, as shipped)

    dataset = torch.utils.data.TensorDataset((images - MEAN) / STD, labels)
    main_DM.get_dataset = lambda name, path: (1, (28, 28), 10, [str(c) for c in range(10)], [MEAN], [STD], dataset, None, None)
    main_DM.evaluate_synset = lambda *args, **kwargs: (None, 0.0, 0.0)
    augment = main_DM.DiffAugment
    main_DM.DiffAugment = lambda *args, **kwargs: augment(*args, **kwargs).clone(memory_format=torch.contiguous_format)
    build, stamps = main_DM.get_network, []

    def timed_network(*args, **kwargs):
        stamps.append(time.perf_counter())
        return build(*args, **kwargs)

    main_DM.get_network = timed_network
    with tempfile.TemporaryDirectory() as folder:
        sys.argv = ["main_DM.py", "--dataset", "FashionMNIST", "--ipc", str(ipc), "--Iteration", str(iterations + 1),
                    "--num_exp", "1", "--num_eval", "0", "--batch_real", str(batch_real), "--data_path", folder,
                    "--save_path", folder]
        main_DM.main()
    main_DM.get_network, main_DM.DiffAugment = build, augment
    stamps = stamps[1:]  # the first draw is the warm-up iteration's
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def our_iterations_per_second(images: torch.Tensor, labels: torch.Tensor, ipc: int, batch_real: int, iterations: int,
                              mixed_precision: bool = False) -> float:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    init = torch.cat([images[labels == c][:ipc] for c in range(10)])
    settings = DistillSettings(method="dm", batch_real=batch_real, mixed_precision=mixed_precision)
    distiller = Distiller(images, labels, init, torch.arange(10).repeat_interleave(ipc), 10, settings, device, seed=0)
    distiller.step(0)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for iteration in range(1, iterations + 1):
        distiller.step(iteration)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return iterations / (time.perf_counter() - started)


def main(argv=None) -> None:
    args = parse_args(argv)
    command = command_line()  # before main_DM.main() takes sys.argv
    images, labels = fashion_mnist()
    speeds: dict[str, list[float]] = {"reference main_DM.py": [], "ours (fp32, default)": []}
    if args.mixed_precision:
        speeds["ours (bf16 autocast option)"] = []
    for round_ in range(args.rounds):
        speeds["reference main_DM.py"].append(reference_iterations_per_second(images, labels, args.ipc, args.batch_real, args.iterations))
        speeds["ours (fp32, default)"].append(our_iterations_per_second(images, labels, args.ipc, args.batch_real, args.iterations))
        if args.mixed_precision:
            speeds["ours (bf16 autocast option)"].append(
                our_iterations_per_second(images, labels, args.ipc, args.batch_real, args.iterations, mixed_precision=True))
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
