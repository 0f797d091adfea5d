"""The seed papers' claims on Fashion-MNIST, at a protocol a CPU can run (or the papers' on a GPU).

Each method distils from the same random real images (the papers' ``init='real'``) and is
evaluated under the hard protocol (ConvNet-3, DSA, SGD with the step decay) beside random real
images of the same size; each result is written to ``--out/<method>.json`` as it finishes, so an
interrupted run keeps what it measured, and the table of every result there is printed last.

    .venv/bin/python benchmarks/claims.py --methods random,dm,ddm --ipc 10 --iterations 1000 \\
        --batch-real 64 --epochs 300 --num-models 3 --out claims-out      # the reduced CPU protocol
    .venv/bin/python benchmarks/claims.py --table --out claims-out        # the table of what is there

Claims (docs/benchmarks.md, "claims"): Decomposed DM above DM (its paper: hard protocol, IPC 1/10/50).
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
from common import machine  # noqa: E402
from gpu_suite import FULL, NUM_CLASSES, data_folders, load, random_real  # noqa: E402

from fiftyone_condense.algorithms.distillation import distill, images_per_class, settings_for  # noqa: E402
from fiftyone_condense.algorithms.protocols import HardProtocol, evaluate_images  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="random,dm,ddm", help="random and distillation methods, in order")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=20000, help="distillation iterations (papers: 20000)")
    parser.add_argument("--batch-real", type=int, default=256, help="real images per class per step (papers: 256)")
    parser.add_argument("--epochs", type=int, default=1000, help="hard-protocol epochs per model (papers: 1000)")
    parser.add_argument("--num-models", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("claims-out"))
    parser.add_argument("--table", action="store_true", help="print the table of the results in --out and exit")
    return parser.parse_args(argv)


def run_method(method: str, args: argparse.Namespace, data: tuple, device: torch.device) -> dict:
    """Distil ``method`` (or take the random images) at ``args.ipc`` and evaluate it."""
    train_x, train_y, test_x, test_y = data
    per_class = args.ipc if method == "random" else images_per_class(args.ipc, method)
    picks = random_real(train_y, per_class, args.seed)
    images, labels = train_x[picks], train_y[picks]
    record = {"method": method, "ipc": args.ipc, "images_per_class": per_class, "init": "random real images"}
    if method != "random":
        settings = settings_for(method, iterations=args.iterations, batch_real=args.batch_real).with_lr_img(per_class)
        result = distill(train_x, train_y, images, labels, NUM_CLASSES, settings, device, args.seed)
        images = result.images
        record.update(iterations=len(result.history), batch_real=args.batch_real, distill_seconds=result.seconds)
    protocol = HardProtocol(epochs=args.epochs, num_models=args.num_models)
    evaluation = evaluate_images(images, labels, test_x, test_y, NUM_CLASSES, protocol, device, seed=args.seed)
    record.update(images=images, accuracies=evaluation.accuracies, mean=evaluation.mean, std=evaluation.std,
                  eval_seconds=evaluation.seconds, protocol=protocol.as_dict(), machine=machine())
    return record


def percent(result: dict) -> str:
    return f"{100 * result['mean']:.1f} ± {100 * result['std']:.1f}"


def table(folder: Path) -> str:
    """One row per result in ``folder``: accuracy (mean ± std over the models) beside random of the same IPC."""
    results = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    random = {r["ipc"]: r for r in results if r["method"] == "random"}
    lines = ["| method | IPC | images / class | iterations × real batch | epochs × models | accuracy % | "
             "random, same IPC % | distil s |", "|---|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r["ipc"], r["method"] != "random", r["method"])):
        base = random.get(r["ipc"])
        steps = f"{r['iterations']} × {r['batch_real']}" if "iterations" in r else "—"
        lines.append(f"| {r['method']} | {r['ipc']} | {r['images_per_class']} | {steps} | "
                     f"{r['protocol']['epochs']} × {r['protocol']['num_models']} | {percent(r)} | "
                     f"{percent(base) if base else '—'} | {r.get('distill_seconds', 0):.0f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    if not args.table:
        torch.set_num_threads(os.cpu_count() or 1)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        data = load(data_folders(None)[0], FULL)
        args.out.mkdir(parents=True, exist_ok=True)
        for method in args.methods.split(","):
            started = time.time()
            record = run_method(method, args, data, device)
            stem = f"{method}_ipc{args.ipc}"
            images = record.pop("images")
            torch.save(images, args.out / f"{stem}.pt")  # the float images, for the storage comparison
            (args.out / f"{stem}.json").write_text(json.dumps(record, indent=1))
            print(f"{method}: {100 * record['mean']:.1f} ± {100 * record['std']:.1f} % in {time.time() - started:.0f} s",
                  flush=True)
    print(table(args.out))


if __name__ == "__main__":
    main()
