"""The main job: condense Fashion-MNIST with the papers' methods beside the baselines, and compare them.

    python -m fiftyone_condense.demo          # REDUCED: a 300/200-per-class subset, short runs (≤ 10 min, 2 cores)
    python -m fiftyone_condense.demo --full   # the whole dataset and the papers' protocols (needs a GPU)

Selection (random, herding, DC3), DC3's colour compensation (classical backend), and distillation
(DM, AutoPalette) at one IPC, each evaluated with the hard protocol beside a random subset of the
same size; it prints the time of every stage and the accuracy table.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

import fiftyone_condense as fc

REDUCED = {"train_per_class": 300, "test_per_class": 200, "epochs": 40, "num_models": 2, "iterations": 50,
           "batch_real": 32, "teacher_epochs": 1}
FALLBACK_NAMES = {"gradient_model": "ImageNet ResNet-18 weights", "encoder": "the Stable Diffusion VAE"}
FULL = {"train_per_class": None, "test_per_class": None, "epochs": 1000, "num_models": 5, "iterations": 20000,
        "batch_real": 256, "teacher_epochs": None}


@dataclass
class Demo:
    """What the demo ran: per-stage times, and the runs to evaluate (row label → run key)."""

    args: argparse.Namespace
    stages: list = field(default_factory=list)
    runs: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str, method: str):
        began = time.perf_counter()
        yield
        self.stages.append((name, method, time.perf_counter() - began))
        print(f"  {name:<12} {method:<34} {self.stages[-1][2]:7.1f} s", flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="whole dataset, 1000 epochs × 5 models, 20000 iterations")
    parser.add_argument("--ipc", type=int, default=10, help="images per class (default 10)")
    parser.add_argument("--train-per-class", type=int, help="train images per class (reduced: 300)")
    parser.add_argument("--test-per-class", type=int, help="test images per class (reduced: 200)")
    parser.add_argument("--epochs", type=int, help="epochs per evaluated model (reduced: 40; full: 1000)")
    parser.add_argument("--num-models", type=int, help="models per evaluation (reduced: 2; full: 5)")
    parser.add_argument("--iterations", type=int, help="distillation iterations (reduced: 50; full: 20000)")
    parser.add_argument("--batch-real", type=int, help="real images per class per iteration (reduced: 32; full: 256)")
    parser.add_argument("--teacher-epochs", type=int,
                        help="epochs of the embedding / initialisation networks (reduced: 1; full: each method's default)")
    parser.add_argument("--include-full", action="store_true", help="also train on the whole train split (slow on a CPU)")
    parser.add_argument("--dataset", help="FiftyOne dataset name (default: fashion-mnist, or fashion-mnist-demo-<n>-<m>)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name, value in (FULL if args.full else REDUCED).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.reduced = not args.full
    return args


def load_dataset(args: argparse.Namespace):
    """Fashion-MNIST from the Debian package: the whole of it, or the first N images of each class."""
    name = args.dataset or ("fashion-mnist" if args.train_per_class is None and args.test_per_class is None
                            else f"fashion-mnist-demo-{args.train_per_class}-{args.test_per_class}")
    return fc.datasets.load_fashion_mnist(name=name, train_per_class=args.train_per_class,
                                          test_per_class=args.test_per_class)


def teacher(args: argparse.Namespace) -> dict:
    return {} if args.teacher_epochs is None else {"teacher_epochs": args.teacher_epochs}


def condense(demo: Demo, dataset) -> None:
    """Every method once, each recorded as a run ``demo_<method>``."""
    args, train = demo.args, dataset.match_tags("train")
    common = {"ipc": args.ipc, "seed": args.seed, "overwrite": True}
    distill = {"iterations": args.iterations, "batch_real": args.batch_real}
    for method, params in (("random", {}), ("herding", teacher(args)), ("dc3", teacher(args))):
        with demo.stage("selection", method):
            record = fc.select(train, method=method, run_key=f"demo_{method}", **common, **params)
        demo.runs[method] = record.key
        if record.config.get("fallbacks"):
            demo.notes[method] = (f"offline, so without {' or '.join(FALLBACK_NAMES[k] for k in record.config['fallbacks'])}: "
                                  "a trained ConvNet-3 instead (run.config['fallbacks'])")
    with demo.stage("compensation", "dc3 → classical colour compensation"):
        record = fc.compensate(dataset.load_saved_view("condense-demo_dc3"), backend="classical",
                               run_key="demo_dc3_colour", seed=args.seed, overwrite=True)
    demo.runs["dc3 + colour compensation"] = record.key
    with demo.stage("distillation", f"dm ({args.iterations} iterations)"):
        demo.runs["dm"] = fc.distill(train, method="dm", run_key="demo_dm", **common, **distill).key
    with demo.stage("distillation", f"autopalette ({args.iterations} iterations)"):
        record = fc.distill(train, method="autopalette", run_key="demo_autopalette", **common, **distill, **teacher(args))
    demo.runs["autopalette"] = record.key
    demo.notes["autopalette"] = (f"{record.config['ipc']} palette images per class (64 colours) in the bytes of "
                                 f"{args.ipc} 8-bit ones: the paper's storage budget")


def evaluate(demo: Demo, dataset) -> list[tuple[str, dict]]:
    results = []
    for label, run_key in demo.runs.items():
        with demo.stage("evaluation", label):
            results.append((label, fc.evaluate(run_key=run_key, dataset=dataset, epochs=demo.args.epochs,
                                               num_models=demo.args.num_models, seed=demo.args.seed,
                                               include_full=demo.args.include_full)))
    return results


def accuracy_table(results: list[tuple[str, dict]], notes: dict) -> list[str]:
    lines = ["| condensed set | images | accuracy % | random subset of the same size % | gain | note |",
             "|---|---|---|---|---|---|"]
    for label, result in results:
        reference = result["random"]
        lines.append(f"| {label} | {result['num_train']} | {100 * result['mean']:.1f} ± {100 * result['std']:.1f} | "
                     f"{100 * reference['mean']:.1f} ± {100 * reference['std']:.1f} | "
                     f"{100 * result['gain_over_random']:+.1f} | {notes.get(label, '')} |")
    full = next((result["full"] for _, result in results if result.get("full")), None)
    if full:
        lines.append(f"| whole train split | {full['num_train']} | {100 * full['mean']:.1f} ± {100 * full['std']:.1f} | | | |")
    return lines


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"fiftyone-condense demo on {platform.node()} ({device}, {os.cpu_count()} cores)")
    began = time.perf_counter()
    dataset = load_dataset(args)
    loaded = time.perf_counter() - began
    print(f"dataset {dataset.name!r}: {len(dataset)} samples ({loaded:.0f} s to load)")
    settings = (f"IPC {args.ipc}; hard protocol, ConvNet-3, {args.epochs} epochs × {args.num_models} models; "
                f"distillation {args.iterations} iterations, real batch {args.batch_real}; "
                f"networks for embeddings / initialisation {args.teacher_epochs or 'default'} epochs")
    print(("REDUCED protocol (--full for the papers'): " if args.reduced else "full protocol: ") + settings + "\n")

    demo = Demo(args)
    condense(demo, dataset)
    results = evaluate(demo, dataset)
    total = sum(seconds for _, _, seconds in demo.stages)

    print("\n| stage | method | time (s) |\n|---|---|---|")
    print("\n".join(f"| {name} | {method} | {seconds:.1f} |" for name, method, seconds in demo.stages))
    print(f"| **total** (after the dataset exists) | | **{total:.0f}** |")
    print(f"\n{'REDUCED protocol — ' if args.reduced else ''}{settings}\n")
    print("\n".join(accuracy_table(results, demo.notes)))
    print("\nOpen the result in the FiftyOne App:")
    print(f"  .venv/bin/python -c \"import fiftyone as fo; s = fo.launch_app(fo.load_dataset('{dataset.name}')); s.wait()\"")
    print("then open the Condensation panel (+ next to the grid's tab) or a saved view such as 'condense-demo_dm'.")


if __name__ == "__main__":
    main()
