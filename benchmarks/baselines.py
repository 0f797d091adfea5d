"""Benchmark the coreset baselines on full Fashion-MNIST under the hard protocol.

Runs each selection method at each IPC on the train split, evaluates it (ConvNet-3, DSA,
``--epochs`` × ``--num-models``), prints a table and writes it into docs/benchmarks.md
between markers, with the command, the machine and the published numbers beside ours.

    .venv/bin/python benchmarks/baselines.py --ipc 1,10,50 --epochs 1000 --num-models 5   # full protocol
    .venv/bin/python benchmarks/baselines.py --ipc 1,10,50 --epochs 100 --num-models 3    # reduced, CPU
"""

from __future__ import annotations

import argparse
import time

from common import benchmark_parser, command_line, declared, load_benchmark_dataset, machine, publish

import fiftyone_condense as fc

# DESIGN §5: the DC paper's coreset rows as commonly quoted (ConvNet-3, Fashion-MNIST), full protocol.
PUBLISHED = {
    "random": {1: 51.4, 10: 73.8, 50: 82.5},
    "herding": {1: 67.0, 10: 71.1, 50: 71.9},
    "k_center": {1: 42.5, 10: 67.1, 50: 77.2},
}
PUBLISHED_WHOLE = 93.5


def parse_args(argv=None) -> argparse.Namespace:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--ipc", default="1,10,50")
    parser.add_argument("--methods", default="random,herding,k_center,graph_cut,facility_location")
    parser.add_argument("--teacher-epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full-epochs", type=int, default=0,
                        help="also train on the whole train split for this many epochs per model (0: skip)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    dataset = load_benchmark_dataset(args)
    train = dataset.match_tags("train")
    reduced = args.epochs < 1000 or args.num_models < 5
    lines = [
        f"Command: `{command_line()}`  ",
        f"Machine: {machine()}  ",
        f"Protocol: hard, ConvNet-3, DSA, {args.epochs} epochs × {args.num_models} models"
        f"{' — **reduced protocol**' if reduced else ''}; embeddings: ConvNet-3 teacher ({args.teacher_epochs} epochs) features.",
        "",
        "| method | IPC | ours: accuracy % (mean ± std) | published % | selection time (s) | evaluation time (s) |",
        "|---|---|---|---|---|---|",
    ]
    full = None
    for ipc in [int(v) for v in args.ipc.split(",")]:
        for method in args.methods.split(","):
            run_key = f"bench_{method}_ipc{ipc}"
            record = fc.select(train, method=method, ipc=ipc, run_key=run_key, seed=args.seed, overwrite=True,
                               **declared("selection", method, teacher_epochs=args.teacher_epochs))
            began = time.perf_counter()
            result = fc.evaluate(run_key=run_key, dataset=dataset, epochs=args.epochs, num_models=args.num_models, seed=args.seed,
                                 include_full=args.full_epochs > 0, full_epochs=max(args.full_epochs, 1))
            published = PUBLISHED.get(method, {}).get(ipc)
            lines.append(
                f"| {method} | {ipc} | {100 * result['mean']:.1f} ± {100 * result['std']:.1f} | "
                f"{published if published is not None else '–'} | {record.results['timings']['total_s']:.1f} | "
                f"{time.perf_counter() - began:.0f} |"
            )
            print(lines[-1], flush=True)
            full = result.get("full") or full
    whole = f"{100 * full['mean']:.1f} ± {100 * full['std']:.1f} ({args.full_epochs} epochs)" if full else "not trained"
    lines.append(f"| whole train split | 6000 | {whole} | {PUBLISHED_WHOLE} | – | – |")
    publish(args, "baselines", lines)


if __name__ == "__main__":
    main()
