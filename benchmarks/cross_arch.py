"""Cross-architecture generalisation: images distilled with ConvNet-3, trained on other networks.

The DM family's papers distil with ConvNet-3 and then train the condensed set on ConvNet-3, AlexNet,
VGG-11, ResNet-18 and an MLP (their cross-architecture tables). This does the same for DM's images
beside random real images of the same count, each under the hard protocol with ``--arch`` in turn.
The DM images come from ``--images`` (the float tensor ``benchmarks/claims.py`` saves, whose
initialisation is the same random real images as the random row here, sorted by class) or are
distilled here with ``--iterations`` × ``--batch-real``.

    .venv/bin/python benchmarks/claims.py --methods dm --ipc 10 --iterations 1000 --batch-real 64 --out claims-out
    .venv/bin/python benchmarks/cross_arch.py --images claims-out/fashion-mnist_dm_ipc10_float.pt --ipc 10 \\
        --epochs 300 --num-models 3 --out cross-arch-out
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from claims import as_png, percent, prepared, random_real, summary  # noqa: E402
from common import machine  # noqa: E402

from fiftyone_condense.algorithms.distillation import distill, settings_for  # noqa: E402
from fiftyone_condense.algorithms.protocols import HardProtocol, evaluate_images  # noqa: E402

ARCHS = "convnet3,convnet3-bn,mlp,lenet,alexnet,vgg11,resnet18"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fashion-mnist", choices=("fashion-mnist", "emoji"))
    parser.add_argument("--data", type=Path, default=Path("emoji-data"), help="emoji: where the npm packages go")
    parser.add_argument("--archs", default=ARCHS, help="architectures to train on, in order")
    parser.add_argument("--images", type=Path, help="DM's float images (from claims.py); else distilled here")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--batch-real", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--num-models", type=int, default=3)
    parser.add_argument("--png", action="store_true", help="also DM's images as 8-bit PNGs (clamped, rounded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("cross-arch-out"))
    parser.add_argument("--table", action="store_true", help="print the table of the results in --out and exit")
    return parser.parse_args(argv)


def condensed_sets(args: argparse.Namespace, data: tuple, device: torch.device) -> dict[str, tuple]:
    """Random real images and DM's (as the reference trains them, and the product stores them: float) of the
    same count, with labels; with ``--png`` also DM's as 8-bit PNGs."""
    train_x, train_y, _, _, num_classes = data
    picks = random_real(train_y, args.ipc, num_classes, args.seed)
    images, labels = train_x[picks], train_y[picks]
    if args.images is not None:
        dm = torch.load(args.images, weights_only=True)
        if dm.shape != images.shape:
            raise SystemExit(f"{args.images} holds {tuple(dm.shape)}, not {args.ipc} images per class {tuple(images.shape)}")
    else:
        settings = settings_for("dm", iterations=args.iterations, batch_real=args.batch_real).with_lr_img(args.ipc)
        dm = distill(train_x, train_y, images, labels, num_classes, settings, device, args.seed).float_images
    sets = {"random": (images, labels), "dm": (dm, labels)}
    return {**sets, "dm (PNG)": (as_png(dm), labels)} if args.png else sets


def main(argv=None) -> None:
    args = parse_args(argv)
    if not args.table:
        data, device = prepared(args)
        _, _, test_x, test_y, num_classes = data
        sets = condensed_sets(args, data, device)
        for arch in args.archs.split(","):
            record = {"arch": arch, "dataset": args.dataset, "ipc": args.ipc, "machine": machine(),
                      "images": str(args.images.name) if args.images else f"distilled {args.iterations} × {args.batch_real}"}
            protocol = HardProtocol(arch=arch, epochs=args.epochs, num_models=args.num_models)
            for name, (images, labels) in sets.items():
                started = time.time()
                record[name] = summary(evaluate_images(images, labels, test_x, test_y, num_classes, protocol, device,
                                                       seed=args.seed))
                print(f"{arch} {name}: {percent(record[name])} % in {time.time() - started:.0f} s", flush=True)
            (args.out / f"{args.dataset}_ipc{args.ipc}_{arch}.json").write_text(json.dumps(record, indent=1))
    print(table(args.out))


def table(folder: Path) -> str:
    """One row per architecture: DM (float and PNG) beside random real images, mean ± std over the models."""
    lines = ["| dataset | IPC | architecture | epochs × models | random % | DM % | DM as PNG % | DM − random |",
             "|---|---|---|---|---|---|---|---|"]
    for path in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime):
        r = json.loads(path.read_text())
        protocol = r["random"]["protocol"]
        cells = [percent(r.get(k)) for k in ("random", "dm", "dm (PNG)")]
        lines.append(f"| {r['dataset']} | {r['ipc']} | {r['arch']} | {protocol['epochs']} × {protocol['num_models']} | "
                     f"{' | '.join(cells)} | {100 * (r['dm']['mean'] - r['random']['mean']):+.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
