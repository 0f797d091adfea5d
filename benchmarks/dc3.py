"""Benchmark DC3 on Fashion-MNIST: dc3 selection and colour compensation under both protocols.

At one IPC: random, graph_cut and dc3 selections, and dc3 + classical colour compensation
(one row per combine mode), each evaluated with the hard and the soft protocol; colour
statistics before and after compensation; time per stage. Also the diffusion backend's
throughput (images/s) at several batch sizes with a small locally built InstructPix2Pix
pipeline (GPU when present). Writes the tables into docs/benchmarks.md.

    .venv/bin/python benchmarks/dc3.py --epochs 100 --soft-epochs 100 --num-models 3   # reduced, CPU
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from common import benchmark_parser, command_line, declared, load_benchmark_dataset, machine, publish

import fiftyone_condense as fc
from fiftyone_condense.algorithms.color.diffusion import DiffusionSettings, load_pipeline, warm_and_cold
from fiftyone_condense.algorithms.testing import save_tiny_instruct_pix2pix


def parse_args(argv=None) -> argparse.Namespace:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--soft-epochs", type=int, default=300, help="soft protocol epochs")
    parser.add_argument("--teacher-epochs", type=int, default=2, help="embedding teachers (dc3's fallback, graph_cut)")
    parser.add_argument("--soft-teacher-epochs", type=int, default=50, help="soft protocol teacher, at most (converges earlier)")
    parser.add_argument("--methods", default="random,herding,graph_cut,dc3", help="selections, dc3 last")
    parser.add_argument("--modes", default="gradient,random,grid,fourfold", help="classical compensation modes ('' for none)")
    parser.add_argument("--batch-sizes", default="1,4,16,64", help="diffusion throughput batch sizes ('' to skip)")
    parser.add_argument("--soft-arch", default="convnet3", help="soft protocol student and teacher (DC3's: resnet18)")
    return parser.parse_args(argv)


def accuracy(result: dict) -> str:
    return f"{100 * result['mean']:.1f} ± {100 * result['std']:.1f}"


def best(result: dict) -> str:
    return f"{100 * result['best_mean']:.1f} ± {100 * result['best_std']:.1f}"


def diffusion_throughput(batch_sizes: list[int], images: int = 64, steps: int = 10, size: int = 64) -> list[str]:
    """Images per second of the diffusion backend (tiny pipeline) for each batch size."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as folder:
        pipeline = load_pipeline(str(save_tiny_instruct_pix2pix(folder)), device)
        batch = torch.rand(images, 3, size, size)
        styles = ["sunny"] * images, ["rainy"] * images
        rows = []
        for batch_size in batch_sizes:
            settings = DiffusionSettings(model=folder, steps=steps, edit_size=size, batch_size=batch_size)
            warm_and_cold(pipeline, batch[:batch_size], *styles, torch.Generator().manual_seed(0), settings)  # warm-up
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            warm_and_cold(pipeline, batch, *styles, torch.Generator().manual_seed(0), settings)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            rows.append(f"| {batch_size} | {images / seconds:.1f} | {2 * images / seconds:.1f} |")
            print(rows[-1], flush=True)
    return rows


def main(argv=None) -> None:
    args = parse_args(argv)
    dataset = load_benchmark_dataset(args)
    train = dataset.match_tags("train")
    hard = dict(epochs=args.epochs, num_models=args.num_models)
    soft = dict(protocol="soft", epochs=args.soft_epochs, num_models=args.num_models, teacher_epochs=args.soft_teacher_epochs,
                arch=args.soft_arch, teacher_arch=args.soft_arch)
    reduced = args.epochs < 1000 or args.num_models < 5
    lines = [
        f"Command: `{command_line()}`  ",
        f"Machine: {machine()}  ",
        f"Dataset: {args.dataset}. Protocols: hard (ConvNet-3, DSA, {args.epochs} epochs), soft (RDED's: {args.soft_arch} student, {args.soft_arch} teacher trained "
        f"to convergence, at most {args.soft_teacher_epochs} epochs, on the train split, KD T=20 with CutMix, AdamW, {args.soft_epochs} epochs); "
        f"{args.num_models} models each{' — **reduced protocol**' if reduced else ''}. IPC {args.ipc}.",
        "",
        "| condensed set | hard: accuracy % | soft: final accuracy % | soft: best over epochs % (RDED's) | colourfulness | unique colours / image | time: embed + select or edit (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    runs, fallbacks = [], {}
    for method in args.methods.split(","):
        key = f"dc3bench_{method}_ipc{args.ipc}"
        record = fc.select(train, method=method, ipc=args.ipc, run_key=key, overwrite=True,
                           **declared("selection", method, teacher_epochs=args.teacher_epochs))
        runs.append((method, key, record.results["timings"]["total_s"]))
        if record.config.get("fallbacks"):
            fallbacks[method] = record.config["fallbacks"]
    for mode in [m for m in args.modes.split(",") if m]:
        key = f"dc3bench_dc3_classical_{mode}_ipc{args.ipc}"
        record = fc.compensate(dataset.load_saved_view(f"condense-dc3bench_dc3_ipc{args.ipc}"), run_key=key,
                               backend="classical", combine_mode=mode, overwrite=True)  # no diffusion weights offline
        runs.append((f"dc3 + classical {mode}", key, record.results["timings"]["total_s"]))

    for label, key, seconds in runs:
        hard_result = fc.evaluate(run_key=key, dataset=dataset, **hard)
        soft_result = fc.evaluate(run_key=key, dataset=dataset, **soft)
        stats = fc.color_stats(fc.load_run(dataset, key).view)
        lines.append(
            f"| {label} | {accuracy(hard_result)} | {accuracy(soft_result)} | {best(soft_result)} | "
            f"{stats['colorfulness']['mean']:.1f} | {stats['unique_colors']['mean']:.0f} | {seconds:.1f} |"
        )
        print(lines[-1], flush=True)
    lines.append(f"| random reference (same size) | {accuracy(hard_result['random'])} | {accuracy(soft_result['random'])} | "
                 f"{best(soft_result['random'])} | – | – | – |")
    lines += ["", *(f"{method} without its weights: {text}" for method, text in fallbacks.items())]
    teacher = soft_result["teacher"]
    lines += ["", f"Soft-protocol teacher: {teacher['arch']}, {teacher['epochs']} epochs (best at {teacher['best_epoch']}), "
                  f"held-out accuracy {100 * teacher['held_out_accuracy']:.1f} %, test accuracy {100 * teacher['test_accuracy']:.1f} %."]

    throughput = [
        "",
        f"Diffusion backend throughput, tiny locally built InstructPix2Pix pipeline ({machine()}; 64 images, "
        "10 steps, edited at 64 px; one call edits a batch twice, warm and cold):",
        "",
        "| batch size | source images / s | edits / s |",
        "|---|---|---|",
        *diffusion_throughput([int(b) for b in args.batch_sizes.split(",")]),
    ] if args.batch_sizes else []
    publish(args, "dc3" if args.dataset == "fashion-mnist" else f"dc3-{args.dataset}", lines + throughput)


if __name__ == "__main__":
    main()
