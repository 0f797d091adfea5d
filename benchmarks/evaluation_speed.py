"""Wall time of the hard evaluation protocol's N models: trained together, one by one, and by the reference.

Fashion-MNIST at IPC 10 (the first 10 train images of each class; random images when the IDX files
are absent), ConvNet-3 with DSA, ``--epochs`` epochs per model, the first ``--test`` test images.
Each round times, side by side in one process:

* ours together: ``evaluate_images(..., together=True)`` (``algorithms/ensemble.py``: the N models
  stacked, one vmapped forward and backward per step; the default on an accelerator),
* ours one by one: ``evaluate_images(..., together=False)`` (the default on a CPU),
* the reference ``evaluate_synset`` (``../shared/reference/DatasetCondensation/utils.py``, imported
  unmodified) called N times with its own arguments (dsa True, ``color_crop_cutout_flip_scale_rotate``,
  ``ParamDiffAug()``, lr 0.01, batch 256) on the same standardised images.

Each is run once for one epoch first (not timed), so none pays the others' warm-up. The table
gives the median over rounds and the machine's load average, which on a shared CPU moves the
times as much as the code does.

    .venv/bin/python benchmarks/evaluation_speed.py --epochs 50
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from common import command_line, machine, publish

from fiftyone_condense.algorithms.device import resolve_device
from fiftyone_condense.algorithms.idx import FASHION_MNIST_DIR, fashion_mnist_tensors
from fiftyone_condense.algorithms.protocols import HardProtocol, evaluate_images
from fiftyone_condense.algorithms.teachers import Normalizer

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "DatasetCondensation"
CLASSES = 10


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=50, help="epochs per model (the full protocol: 1000)")
    parser.add_argument("--num-models", type=int, default=5)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--test", type=int, default=1000, help="test images each model is scored on")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds (the table gives the median)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch's CPU threads (default: torch's choice)")
    parser.add_argument("--reference", type=Path, default=REFERENCE, help="the reference DatasetCondensation folder")
    parser.add_argument("--no-write", action="store_true", help="print the table only (else also docs/benchmarks.md)")
    return parser.parse_args(argv)


def load(ipc: int, test: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """IPC images per class and ``test`` test images, in [0, 1]; random ones without the IDX files."""
    if not FASHION_MNIST_DIR.is_dir():
        generator = torch.Generator().manual_seed(0)
        return (torch.rand(CLASSES * ipc, 1, 28, 28, generator=generator), torch.arange(CLASSES * ipc) % CLASSES,
                torch.rand(test, 1, 28, 28, generator=generator), torch.arange(test) % CLASSES,
                "random 1×28×28 images")
    images, labels = fashion_mnist_tensors("train")
    picks = torch.cat([torch.nonzero(labels == c).flatten()[:ipc] for c in range(CLASSES)])
    test_images, test_labels = fashion_mnist_tensors("test")
    return images[picks], labels[picks], test_images[:test], test_labels[:test], "Fashion-MNIST"


def ours(data: tuple, args: argparse.Namespace, device: torch.device, epochs: int, together: bool) -> list[float]:
    protocol = HardProtocol(epochs=epochs, num_models=args.num_models)
    return evaluate_images(*data, CLASSES, protocol, device, seed=0, together=together).accuracies


def reference(data: tuple, args: argparse.Namespace, device: torch.device, epochs: int) -> list[float]:
    """``evaluate_synset`` once per model, on the images ``evaluate_images`` trains and tests on."""
    sys.path.insert(0, str(args.reference))
    try:
        import utils  # the reference's utils.py, unmodified
    finally:
        sys.path.pop(0)
    train_images, train_labels, test_images, test_labels = data
    normalizer = Normalizer.fit(test_images)
    loader = torch.utils.data.DataLoader(utils.TensorDataset(normalizer(test_images), test_labels), batch_size=256)
    options = SimpleNamespace(lr_net=0.01, epoch_eval_train=epochs, batch_train=256, device=device.type, dsa=True,
                              dsa_strategy="color_crop_cutout_flip_scale_rotate", dsa_param=utils.ParamDiffAug(),
                              dc_aug_param=None)
    accuracies = []
    for index in range(args.num_models):
        net = utils.get_network("ConvNet", 1, CLASSES, (28, 28))
        # DiffAugment can hand 1-channel maps with channels-last strides to a net that then fails (reference README)
        net.register_forward_pre_hook(lambda module, inputs: (inputs[0].clone(memory_format=torch.contiguous_format),))
        torch.manual_seed(index)
        with contextlib.redirect_stdout(io.StringIO()):  # its one line per model
            _, _, accuracy = utils.evaluate_synset(index, net, normalizer(train_images), train_labels, loader, options)
        accuracies.append(float(accuracy))
    return accuracies


def timed(run) -> tuple[float, list[float]]:
    started = time.perf_counter()
    accuracies = run()
    return time.perf_counter() - started, accuracies


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    *data, source = load(args.ipc, args.test)
    loads = [os.getloadavg()[0]]
    runs = {  # the run for a number of epochs (all return each model's test accuracy)
        "ours, together (`together=True`)": lambda epochs: ours(data, args, device, epochs, together=True),
        "ours, one by one (`together=False`)": lambda epochs: ours(data, args, device, epochs, together=False),
        f"reference `evaluate_synset` × {args.num_models}": lambda epochs: reference(data, args, device, epochs),
    }
    for run in runs.values():
        run(1)  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    accuracies: dict[str, list[float]] = {}
    for round_ in range(args.rounds):
        for name, run in runs.items():
            elapsed, accuracies[name] = timed(lambda: run(args.epochs))
            seconds[name].append(elapsed)
            print(f"round {round_ + 1}: {name}: {elapsed:.1f} s", flush=True)
            loads.append(os.getloadavg()[0])
    median = {name: statistics.median(values) for name, values in seconds.items()}
    together, alone, theirs = median.values()
    lines = [
        f"Command: `{command_line()}`  ",
        f"Machine: {machine()}, {torch.get_num_threads()} threads, device {device}; load average (1 min) "
        f"{min(loads):.1f}–{max(loads):.1f} (before and after each timed run)  ",
        f"Hard protocol, ConvNet-3 + DSA, {args.num_models} models, {source} at IPC {args.ipc} "
        f"({CLASSES * args.ipc} images), {args.epochs} epochs ({args.epochs + 1} passes), {args.test} test images; "
        f"median of {args.rounds} round(s).",
        "",
        "| training of the models | wall time (s) | its time / together's | its time / one by one's | mean accuracy |",
        "|---|---|---|---|---|",
        *[f"| {name} | {median[name]:.1f} | {median[name] / together:.2f} | {median[name] / alone:.2f} | "
          f"{100 * statistics.mean(accuracies[name]):.1f} % |" for name in runs],
        "",
        f"Speed-up of training together: {alone / together:.2f}× over one by one, {theirs / together:.2f}× over the "
        f"reference (one by one over the reference: {theirs / alone:.2f}×).",
    ]
    publish(args, "evaluation_speed", lines)


if __name__ == "__main__":
    main()
