"""Benchmark DM, Decomposed DM and AutoPalette on Fashion-MNIST against the coreset baselines.

For each IPC: distil with each method at its reference defaults (initialised from a random
selection, AutoPalette from its colour-guided initialisation and with its storage budget),
evaluate under the hard protocol beside random selection of the same size, and record bytes on
disk. (The speed of the DM step against the reference loop is benchmarks/reference_speed.py.)

    .venv/bin/python benchmarks/distill.py --ipc 1,10,50 --iterations 20000 --epochs 1000 --num-models 5   # full
    .venv/bin/python benchmarks/distill.py --ipc 1,10,50 --iterations 100 --batch-real 64 --epochs 100 --num-models 2 --init-epochs 2
"""

from __future__ import annotations

import argparse

from common import benchmark_parser, command_line, declared, load_benchmark_dataset, machine, publish

import fiftyone_condense as fc


def parse_args(argv=None) -> argparse.Namespace:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--ipc", default="1,10,50")
    parser.add_argument("--methods", default="dm,ddm,autopalette")
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--batch-real", type=int, default=256)
    parser.add_argument("--num-colors", type=int, default=64)
    parser.add_argument("--budget", default="paper", help="AutoPalette's images per class: paper, bits or count")
    parser.add_argument("--mixed-precision", action="store_true", help="distil with bf16 autocast (an option of ours)")
    parser.add_argument("--init-epochs", type=int, default=50,
                        help="epochs of AutoPalette's selection network on Median-Cut images (reference: 50)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    dataset = load_benchmark_dataset(args)
    train = dataset.match_tags("train")
    reduced = args.iterations < 20000 or args.epochs < 1000 or args.num_models < 5 or args.init_epochs < 50
    lines = [
        f"Command: `{command_line()}`  ",
        f"Machine: {machine()}  ",
        f"Distillation: {args.iterations} iterations, real batch {args.batch_real} per class, the reference defaults "
        f"(DM lr 1, momentum 0.5, DSA; DDM weights 1e4 / 1e4 / 10, k = 2; AutoPalette K={args.num_colors}, task dm, "
        f"budget {args.budget}, selection network {args.init_epochs} epochs). Evaluation: hard protocol (fp32), ConvNet-3, "
        f"{args.epochs} epochs × {args.num_models} models{' — **reduced protocol**' if reduced else ''}.",
        "",
        "| method | IPC | images / class | accuracy % | random same size % | gain | bytes on disk | bytes as 8-bit RGB PNG | distil time (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for ipc in [int(v) for v in args.ipc.split(",")]:
        for method in args.methods.split(","):
            key = f"bench_{method}_ipc{ipc}{'_bf16' if args.mixed_precision else ''}_{args.budget}"
            options = declared("distillation", method, num_colors=args.num_colors, budget=args.budget,
                               teacher_epochs=args.init_epochs)
            record = fc.distill(train, method=method, ipc=ipc, run_key=key, iterations=args.iterations,
                                batch_real=args.batch_real, mixed_precision=args.mixed_precision, overwrite=True,
                                **options)
            result = fc.evaluate(run_key=key, dataset=dataset, epochs=args.epochs, num_models=args.num_models)
            lines.append(
                f"| {method} | {ipc} | {record.config['ipc']} | {100 * result['mean']:.1f} ± {100 * result['std']:.1f} | "
                f"{100 * result['random']['mean']:.1f} ± {100 * result['random']['std']:.1f} | "
                f"{100 * result['gain_over_random']:+.1f} | {record.results['bytes']:,} | {record.results['bytes_8bit_rgb']:,} | "
                f"{record.results['timings']['distill_s']:.0f} |"
            )
            print(lines[-1], flush=True)

    publish(args, "distill", lines)


if __name__ == "__main__":
    main()
