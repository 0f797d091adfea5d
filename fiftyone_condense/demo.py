"""The main job: condense Fashion-MNIST with the coreset baselines and compare them.

    python -m fiftyone_condense.demo            # reduced protocol sized for a 2-core CPU
    python -m fiftyone_condense.demo --full     # the full hard protocol (1000 epochs × 5 models)
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

import fiftyone_condense as fc

DEMO_METHODS = ("random", "herding", "k_center", "graph_cut")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ipc", type=int, default=10, help="images per class (default 10)")
    parser.add_argument("--methods", default=",".join(DEMO_METHODS), help="comma-separated selection methods")
    parser.add_argument("--epochs", type=int, default=100, help="training epochs per evaluated model (reduced; full: 1000)")
    parser.add_argument("--num-models", type=int, default=3, help="models per evaluation (reduced; full: 5)")
    parser.add_argument("--full", action="store_true", help="use the full hard protocol: 1000 epochs, 5 models")
    parser.add_argument("--include-full", action="store_true", help="also train on the whole train split (slow on CPU)")
    parser.add_argument("--full-epochs", type=int, default=30, help="epochs for the whole-train-split reference")
    parser.add_argument("--teacher-epochs", type=int, default=1, help="epochs of the ConvNet-3 embedding teacher")
    parser.add_argument("--dataset", default="fashion-mnist", help="FiftyOne dataset name")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.full:
        args.epochs, args.num_models = 1000, 5
    return args


def row(method: str, ipc: int, result: dict, seconds: float) -> str:
    return f"| {method:<18} | {ipc:>3} | {100 * result['mean']:5.1f} ± {100 * result['std']:4.1f} | {seconds:8.1f} |"


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    reduced = args.epochs < 1000 or args.num_models < 5
    print(f"fiftyone-condense demo on {platform.node()} ({device}, {os.cpu_count()} cores)")
    print(f"protocol: hard, convnet3, {args.epochs} epochs × {args.num_models} models"
          f"{' (REDUCED protocol; --full for 1000 × 5)' if reduced else ''}, IPC {args.ipc}\n")

    started = time.perf_counter()
    dataset = fc.datasets.load_fashion_mnist(name=args.dataset)
    print(f"dataset {dataset.name!r}: {len(dataset)} samples ({time.perf_counter() - started:.0f} s)")
    train = dataset.match_tags("train")

    rows, full = [], None
    for method in args.methods.split(","):
        run_key = f"demo_{method}_ipc{args.ipc}"
        began = time.perf_counter()
        fc.select(train, method=method, ipc=args.ipc, run_key=run_key, seed=args.seed, overwrite=True,
                  teacher_epochs=args.teacher_epochs)
        result = fc.evaluate(
            run_key=run_key, dataset=dataset, epochs=args.epochs, num_models=args.num_models, seed=args.seed,
            include_full=args.include_full, full_epochs=args.full_epochs,
        )
        rows.append(row(method, args.ipc, result, time.perf_counter() - began))
        reference = result["random"]
        full = result.get("full") or full
        print(rows[-1], flush=True)

    print("\n| method             | IPC | accuracy (%) | time (s) |")
    print("|--------------------|-----|--------------|----------|")
    print("\n".join(rows))
    print(row("random reference", args.ipc, reference, reference["seconds"]))
    if full:
        print(row("whole train split", len(train) // 10, full, full["seconds"]))
    else:
        print("| whole train split  |   - | not trained on this run (--include-full trains it; slow on a CPU) |")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    print("\nOpen the result in the FiftyOne App:")
    print(f"  .venv/bin/python -c \"import fiftyone as fo; s = fo.launch_app(fo.load_dataset('{dataset.name}')); s.wait()\"")
    print(f"then pick a saved view such as 'condense-demo_graph_cut_ipc{args.ipc}' in the view bar.")


if __name__ == "__main__":
    main()
