"""Iterations per second of a DM step: ours (:class:`Distiller`) and the reference ``main_DM.py``
loop, which runs unmodified through its own ``main()``.

Only the reference's module-level helpers are swapped: ``get_dataset`` serves the given images,
``evaluate_synset`` is skipped (this times distillation only), ``DiffAugment``'s output is made
contiguous (with torch 2.13 on a CPU a cropped 1-channel batch otherwise has channels-last strides
and its ``embed`` fails: see the reference README) and ``get_network`` is wrapped to stamp each
iteration (one call per iteration). FiftyOne-free, so it runs on a bare PyTorch machine.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

from fiftyone_condense.algorithms.distillation import DistillSettings, distiller_for

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "DatasetCondensation"
MEAN, STD = 0.2861, 0.3530  # the reference's FashionMNIST normalisation (utils.get_dataset)


def reference_iterations_per_second(images: torch.Tensor, labels: torch.Tensor, ipc: int, batch_real: int,
                                    iterations: int, reference: Path = REFERENCE) -> float:
    """Run ``main_DM.main()`` on Fashion-MNIST-shaped ``images`` (floats in [0, 1]) for
    ``iterations + 1`` iterations; iterations per second between network draws (the first is warm-up)."""
    sys.path.insert(0, str(reference))
    import main_DM  # noqa: E402  (the reference script, as shipped)

    dataset = torch.utils.data.TensorDataset((images - MEAN) / STD, labels)
    classes = int(labels.max()) + 1
    main_DM.get_dataset = lambda name, path: (1, tuple(images.shape[-2:]), classes, [str(c) for c in range(classes)],
                                              [MEAN], [STD], dataset, None, None)
    main_DM.evaluate_synset = lambda *args, **kwargs: (None, 0.0, 0.0)
    augment, build, stamps = main_DM.DiffAugment, main_DM.get_network, []
    main_DM.DiffAugment = lambda *args, **kwargs: augment(*args, **kwargs).clone(memory_format=torch.contiguous_format)

    def timed_network(*args, **kwargs):
        stamps.append(time.perf_counter())
        return build(*args, **kwargs)

    main_DM.get_network = timed_network
    argv = sys.argv
    try:
        with tempfile.TemporaryDirectory() as folder:
            sys.argv = ["main_DM.py", "--dataset", "FashionMNIST", "--ipc", str(ipc), "--Iteration", str(iterations + 1),
                        "--num_exp", "1", "--num_eval", "0", "--batch_real", str(batch_real), "--data_path", folder,
                        "--save_path", folder]
            main_DM.main()
    finally:
        sys.argv = argv
        main_DM.get_network, main_DM.DiffAugment = build, augment
    stamps = stamps[1:]  # the first draw is the warm-up iteration's
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def our_iterations_per_second(images: torch.Tensor, labels: torch.Tensor, ipc: int, settings: DistillSettings,
                              iterations: int, device: torch.device, warmup: int = 1) -> float:
    """Time ``Distiller.step`` on the first ``ipc`` images of each class after ``warmup`` steps."""
    classes = int(labels.max()) + 1
    init = torch.cat([images[labels == c][:ipc] for c in range(classes)])
    distiller = distiller_for(settings.method)(images, labels, init, torch.arange(classes).repeat_interleave(ipc), classes,
                                               settings, device, seed=0)
    for iteration in range(warmup):
        distiller.step(iteration)
    synchronize(device)
    started = time.perf_counter()
    for iteration in range(warmup, warmup + iterations):
        distiller.step(iteration)
    synchronize(device)
    return iterations / (time.perf_counter() - started)
