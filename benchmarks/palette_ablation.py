"""Ablation of AutoPalette's palette-network training on Fashion-MNIST: our two options against
the reference default.

Distils the same initial images (a random selection, the reference's storage budget) with the
palette network trained (a) as the reference code does (task loss / number of classes, no
confidence term: the authors' runs), (b) with the task gradient it gets normalised by the task
value (``normalize_palette_task``, ours), (c) with the per-pixel confidence term (weight 1, the
reference's argparse default that the authors' runs set to 0), (d) both, (e) with the reference's
optional warm-up (2 epochs over the real images before distilling). For each: colours the
stored (hard, argmax) images use, how far they are from the soft images the task loss saw, and
hard-protocol accuracy of the stored images.

    .venv/bin/python benchmarks/palette_ablation.py --ipc 10 --iterations 100 --epochs 100 --num-models 2
"""

from __future__ import annotations

import argparse

import torch
from common import benchmark_parser, command_line, load_benchmark_dataset, machine, publish

import fiftyone_condense as fc
from fiftyone_condense.algorithms.distillation import AutoPalette, settings_for
from fiftyone_condense.algorithms.distillation.autopalette import soft_quantize
from fiftyone_condense.algorithms.protocols import HardProtocol, evaluate_images
from fiftyone_condense.bridge.views import Reading

VARIANTS = {
    "reference (default): task / classes, no confidence term": dict(normalize_palette_task=False, confidence_weight=0.0),
    "+ normalised task gradient (ours)": dict(normalize_palette_task=True, confidence_weight=0.0),
    "+ confidence term (weight 1)": dict(normalize_palette_task=False, confidence_weight=1.0),
    "+ both": dict(normalize_palette_task=True, confidence_weight=1.0),
    "+ warm-up, 2 epochs on the real images (the reference's option)": dict(palette_warmup=2),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--batch-real", type=int, default=64)
    parser.add_argument("--num-colors", type=int, default=64)
    parser.add_argument("--budget", default="paper", help="images per class: paper (the reference's), bits or count")
    return parser.parse_args(argv)


def random_init(labels: torch.Tensor, ipc: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.cat([
        members[torch.randperm(len(members), generator=generator)[:ipc]]
        for members in (torch.nonzero(labels == c).flatten() for c in labels.unique())
    ])


def main(argv=None) -> None:
    args = parse_args(argv)
    dataset = load_benchmark_dataset(args)
    train = Reading().load(dataset.match_tags("train"), "ground_truth", None)
    test = Reading().load(dataset.match_tags("test"), "ground_truth", None)
    real, labels = train.floats(), train.labels
    picks = random_init(labels, fc.api.images_per_class(args.ipc, "autopalette", args.budget, args.num_colors))
    protocol = HardProtocol(epochs=args.epochs, num_models=args.num_models)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    lines = [
        f"Command: `{command_line()}`  ",
        f"Machine: {machine()}  ",
        f"IPC {args.ipc} ({len(picks) // 10} images per class, budget {args.budget}), K = {args.num_colors}, "
        f"{args.iterations} iterations, task dm, random-selection init; "
        f"hard protocol {args.epochs} epochs × {args.num_models} models on the stored (argmax) images.",
        "",
        "| palette network trained with | colours used per image (mean / min of K) | mean abs. soft − hard | accuracy % |",
        "|---|---|---|---|",
    ]
    for name, overrides in VARIANTS.items():
        settings = settings_for("autopalette", iterations=args.iterations, batch_real=args.batch_real,
                                num_colors=args.num_colors, budget=args.budget, **overrides)
        distiller = AutoPalette(real, labels, real[picks], labels[picks], len(train.classes), settings, device, seed=0)
        distiller.warm_up()  # no-op unless the variant sets palette_warmup
        for iteration in range(args.iterations):
            distiller.step(iteration)
        hard, _, indices = distiller.result()
        with torch.no_grad():
            soft = distiller.raw(soft_quantize(distiller.synthetic, distiller.palette(distiller.synthetic))).clamp(0, 1).cpu()
        used = torch.tensor([len(torch.unique(i)) for i in indices], dtype=torch.float)
        result = evaluate_images(hard, labels[picks], test.floats(), test.labels, len(train.classes), protocol, device)
        lines.append(f"| {name} | {used.mean():.1f} / {used.min():.0f} of {args.num_colors} | "
                     f"{float((soft - hard).abs().mean()):.4f} | {100 * result.mean:.1f} ± {100 * result.std:.1f} |")
        print(lines[-1], flush=True)
    publish(args, "palette_ablation", lines)


if __name__ == "__main__":
    main()
