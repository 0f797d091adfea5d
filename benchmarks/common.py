"""Helpers shared by the benchmark scripts: machine description and docs/benchmarks.md sections."""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
from pathlib import Path

import torch

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def benchmark_parser(description: str) -> argparse.ArgumentParser:
    """Options every benchmark takes: evaluation size, dataset, and whether to write the docs."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1000, help="hard-protocol epochs per model (full: 1000)")
    parser.add_argument("--num-models", type=int, default=5, help="models per evaluation (full: 5)")
    parser.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist (the name of the dataset to build), "
                        "or emoji (benchmarks/emoji.py: the npm packages' emoji images, classed by category)")
    parser.add_argument("--data", type=Path, default=Path("emoji-data"), help="emoji: where its packages and PNGs go")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    parser.add_argument("--per-class", type=int, default=None,
                        help="a smaller dataset (first N train and N/5 test images per class), for smoke runs")
    parser.add_argument("--no-write", action="store_true", help="print the tables only")
    return parser


def load_benchmark_dataset(args: argparse.Namespace):
    import fiftyone_condense as fc

    torch.set_num_threads(getattr(args, "threads", None) or os.cpu_count() or 1)
    if args.dataset == "emoji":
        from emoji import emoji_dataset

        return emoji_dataset(args.data)
    return fc.datasets.load_fashion_mnist(
        name=args.dataset, train_per_class=args.per_class, test_per_class=args.per_class and max(args.per_class // 5, 1)
    )


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}"


def command_line() -> str:
    script = Path(sys.argv[0]).relative_to(Path(__file__).resolve().parents[1]) if Path(sys.argv[0]).is_absolute() else sys.argv[0]
    return " ".join(shlex.quote(a) for a in ["python", str(script), *sys.argv[1:]])


def publish(args: argparse.Namespace, name: str, lines: list[str]) -> None:
    """Print a benchmark's table and, unless ``--no-write``, put it in its docs/benchmarks.md section."""
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        write_section(name, table)


def write_section(name: str, table: str) -> None:
    """Replace the text between ``<!-- name:begin -->`` and ``<!-- name:end -->`` (appending the section if new)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if begin not in text:
        text = text.rstrip("\n") + f"\n\n{begin}\n{end}\n"
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    DOC.write_text(f"{head}{begin}\n{table}\n{end}{tail}")
    print(f"wrote {DOC}")


def declared(kind: str, method: str, **options) -> dict:
    """The options ``method`` declares (a benchmark passes one set of flags to several methods)."""
    import fiftyone_condense as fc

    names = {param.name for param in fc.method_parameters(kind, method)}
    return {name: value for name, value in options.items() if name in names}
