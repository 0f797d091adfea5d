"""The seed papers' claims, each at its paper's protocol (reduced on a CPU), on Fashion-MNIST or emoji.

Every distillation starts from the same random real images (the papers' ``init='real'``) and
is evaluated as the product stores it (8-bit PNGs: clamped and rounded; AutoPalette: quantised to
its palette) under the hard protocol, beside random real images of the same count and, with
``whole``, the whole training split. Where a paper evaluates otherwise, that is measured too:

* DM and Decomposed DM: also the unclamped float images the reference trains on (the cost of
  storing PNGs);
* AutoPalette: also its own ``dm_quant.py`` protocol (soft labels from an expert trained as its
  replay buffer; :class:`AutoPaletteProtocol`) on the quantised images and on the unquantised ones
  its code evaluates.

Each result goes to ``--out/<dataset>_<method>_ipc<IPC>.json`` as it finishes (an interrupted run
keeps what it measured); ``--table`` prints the table of every result there.

    .venv/bin/python benchmarks/claims.py --methods random,dm,ddm,autopalette,whole --ipc 10 \\
        --iterations 1000 --batch-real 64 --epochs 300 --num-models 3 --out claims-out   # reduced, CPU
    .venv/bin/python benchmarks/claims.py --dataset emoji --data emoji-data ...        # the colour set
    .venv/bin/python benchmarks/claims.py --table --out claims-out
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402
from emoji import emoji_tensors  # noqa: E402
from gpu_suite import FULL, data_folders, load  # noqa: E402

from fiftyone_condense.algorithms.distillation import distill, images_per_class, settings_for  # noqa: E402
from fiftyone_condense.algorithms.experts import ExpertConfig, Experts, train_experts  # noqa: E402
from fiftyone_condense.algorithms.models import build_model  # noqa: E402
from fiftyone_condense.algorithms.protocols import AutoPaletteProtocol, HardProtocol, evaluate_images  # noqa: E402
from fiftyone_condense.algorithms.teachers import Normalizer  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="random,dm,ddm", help="random, whole and distillation methods, in order; "
                        "a method's settings after colons: ddm:style_carry_over=false")
    parser.add_argument("--dataset", default="fashion-mnist", choices=("fashion-mnist", "emoji"))
    parser.add_argument("--data", type=Path, default=Path("emoji-data"), help="emoji: where the npm packages go")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=20000, help="distillation iterations (papers: 20000)")
    parser.add_argument("--batch-real", type=int, default=256, help="real images per class per step (papers: 256)")
    parser.add_argument("--epochs", type=int, default=1000, help="protocol epochs per model (papers: 1000)")
    parser.add_argument("--num-models", type=int, default=5)
    parser.add_argument("--whole-epochs", type=int, default=2, help="epochs of the whole-split reference")
    parser.add_argument("--expert-epochs", type=int, default=50, help="AutoPalette's expert (its buffer: 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads")
    parser.add_argument("--out", type=Path, default=Path("claims-out"))
    parser.add_argument("--table", action="store_true", help="print the table of the results in --out and exit")
    return parser.parse_args(argv)


def dataset_tensors(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    if args.dataset == "emoji":
        train_x, train_y, test_x, test_y, classes = emoji_tensors(args.data)
        return train_x, train_y, test_x, test_y, len(classes)
    return (*load(data_folders(None)[0], FULL), 10)


def random_real(labels: torch.Tensor, per_class: int, num_classes: int, seed: int) -> torch.Tensor:
    """``per_class`` random images of each class (all of a smaller class), sorted by class."""
    generator = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(num_classes):
        members = torch.nonzero(labels == c).flatten()
        picks.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(picks)


def as_png(images: torch.Tensor) -> torch.Tensor:
    """What an 8-bit PNG of ``images`` reads back as: clamped to [0, 1] and rounded to 1/255."""
    return images.clamp(0, 1).mul(255).round().div(255)


def summary(evaluation) -> dict:
    return {"accuracies": evaluation.accuracies, "mean": evaluation.mean, "std": evaluation.std,
            "seconds": evaluation.seconds, "protocol": evaluation.protocol}


def expert(args: argparse.Namespace, data: tuple, device: torch.device) -> Experts:
    """AutoPalette's expert for ``args.dataset``, trained once and kept in ``--out`` as plain tensors."""
    train_x, train_y, _, _, num_classes = data
    config = ExpertConfig(epochs=args.expert_epochs)
    path = args.out / f"{args.dataset}_expert_{args.expert_epochs}ep_seed{args.seed}.pt"
    if path.is_file():
        stored = torch.load(path, weights_only=True)
        model = build_model(config.arch, train_x.shape[1], num_classes, tuple(train_x.shape[-2:]))
        model.load_state_dict(stored["state"])
        return Experts([model.eval()], Normalizer(tuple(stored["mean"]), tuple(stored["std"])))
    started = time.time()
    experts = train_experts(train_x, train_y, num_classes, config, device, args.seed)
    torch.save({"state": experts.models[0].state_dict(), "mean": list(experts.normalizer.mean),
                "std": list(experts.normalizer.std), "seconds": time.time() - started}, path)
    return experts


def method_options(spec: str) -> tuple[str, dict]:
    """``"ddm:style_carry_over=false"`` → ("ddm", {"style_carry_over": False}): a method and settings of it."""
    method, *pairs = spec.split(":")
    return method, {key: json.loads(value) for key, value in (pair.split("=", 1) for pair in pairs)}


def run_method(spec: str, args: argparse.Namespace, data: tuple, device: torch.device) -> dict:
    """Distil ``spec``'s method with its options (or take random or all real images) at ``args.ipc`` and evaluate it."""
    train_x, train_y, test_x, test_y, num_classes = data
    method, options = method_options(spec)
    hard = HardProtocol(epochs=args.whole_epochs if method == "whole" else args.epochs, num_models=args.num_models)
    record: dict = {"method": spec, "dataset": args.dataset, "ipc": args.ipc, "machine": machine()}

    def evaluate(images: torch.Tensor, labels: torch.Tensor, protocol=hard, experts: Optional[Experts] = None) -> dict:
        return summary(evaluate_images(images, labels, test_x, test_y, num_classes, protocol, device, seed=args.seed,
                                       experts=experts))

    if method == "whole":
        record.update(images_per_class="all", hard=evaluate(train_x, train_y))
        return record
    per_class = args.ipc if method == "random" else images_per_class(args.ipc, method)
    picks = random_real(train_y, per_class, num_classes, args.seed)
    images, labels = train_x[picks], train_y[picks]
    record.update(images_per_class=per_class, init="random real images")
    if method == "random":
        record["hard"] = evaluate(images, labels)
        return record
    settings = settings_for(method, iterations=args.iterations, batch_real=args.batch_real, **options).with_lr_img(per_class)
    result = distill(train_x, train_y, images, labels, num_classes, settings, device, args.seed)
    record.update(iterations=len(result.history), batch_real=args.batch_real, distill_seconds=result.seconds)
    torch.save(result.float_images, args.out / f"{args.dataset}_{file_name(spec)}_ipc{args.ipc}_float.pt")
    if method == "autopalette":
        record["hard"] = evaluate(result.images, labels)  # the palette PNGs the product stores
        experts = expert(args, data, device)
        own = AutoPaletteProtocol(epochs=args.epochs, num_models=args.num_models, expert_epochs=args.expert_epochs)
        record["own_quantised"] = evaluate(result.images, labels, own, experts)
        record["own_unquantised"] = evaluate(result.float_images, labels, own, experts)
    else:
        record["hard"] = evaluate(as_png(result.images), labels)
        record["float"] = evaluate(result.float_images, labels)
    return record


def file_name(spec: str) -> str:
    return spec.replace(":", "-").replace("=", "-")


def percent(result: Optional[dict]) -> str:
    return f"{100 * result['mean']:.1f} ± {100 * result['std']:.1f}" if result else "—"


def table(folder: Path) -> str:
    """One row per result: accuracy (mean ± std over the models) under each protocol measured."""
    results = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    lines = ["| dataset | method | IPC | images / class | iterations × real batch | epochs × models | hard, as stored % | "
             "hard, float % | own protocol, quantised % | own protocol, unquantised % | distil s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    order = {"whole": 0, "random": 1}
    for r in sorted(results, key=lambda r: (r["dataset"], r["ipc"], order.get(r["method"], 2), r["method"])):
        steps = f"{r['iterations']} × {r['batch_real']}" if "iterations" in r else "—"
        protocol = r["hard"]["protocol"]
        lines.append(f"| {r['dataset']} | {r['method']} | {r['ipc'] if r['method'] != 'whole' else '—'} | "
                     f"{r['images_per_class']} | {steps} | {protocol['epochs']} × {protocol['num_models']} | "
                     f"{percent(r['hard'])} | {percent(r.get('float'))} | {percent(r.get('own_quantised'))} | "
                     f"{percent(r.get('own_unquantised'))} | {r.get('distill_seconds', 0):.0f} |")
    return "\n".join(lines)


def prepared(args: argparse.Namespace) -> tuple[tuple, torch.device]:
    """The dataset's tensors and the device, with ``--threads`` set and ``--out`` made."""
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    return dataset_tensors(args), torch.device("cuda" if torch.cuda.is_available() else "cpu")


def main(argv=None) -> None:
    args = parse_args(argv)
    if not args.table:
        data, device = prepared(args)
        for method in args.methods.split(","):
            started = time.time()
            record = run_method(method, args, data, device)
            record["seconds"] = time.time() - started
            (args.out / f"{args.dataset}_{file_name(method)}_ipc{args.ipc}.json").write_text(json.dumps(record, indent=1))
            print(f"{args.dataset} {method} IPC {args.ipc}: {percent(record['hard'])} % in {record['seconds']:.0f} s",
                  flush=True)
    print(table(args.out))


if __name__ == "__main__":
    main()
