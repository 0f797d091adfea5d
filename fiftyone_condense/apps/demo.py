"""The main job: condense Fashion-MNIST with the papers' methods beside the baselines, and show where it pays.

    python -m fiftyone_condense.apps.demo          # REDUCED protocol: ≤ 8 min on 2 quiet CPU cores
    python -m fiftyone_condense.apps.demo --full   # the papers' protocol on the whole dataset (a GPU's work)

At two budgets (IPC 1 and 10: the fewer images must stand for a class, the more condensation
pays), stages, each timed: selection (herding at each IPC; DC3, whose K-means bins need IPC ≥ K, at
the largest), distillation (DM at each IPC; AutoPalette at the largest), then evaluation: every
condensed set is trained with the hard protocol beside a random subset of the same size and the
whole train split. DC3's colour compensation is not run: offline only its classical backend can,
which is our baseline rather than DC3's InstructPix2Pix edit (``fc.compensate``). It prints a table of the stages' times and one of the
accuracies, with the settings they were measured with, and writes the accuracy-against-budget plot
(a PNG) and the HTML report of every run (:func:`fiftyone_condense.report`).

The REDUCED protocol uses the first 300 train and 200 test images of each class (its own dataset,
``fashion-mnist-demo-300-200``), 100 distillation iterations, 40 epochs × 2 models (the whole
split: 3 epochs), a 2-epoch network for AutoPalette's initialisation and AutoPalette's ``count``
budget (IPC palette images, so it shares the random reference of its IPC); every option below
changes one of them. ``--full`` uses the whole ``fashion-mnist`` dataset, 20,000 iterations,
1000 epochs × 5 models and each method's own defaults.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import Optional

import fiftyone as fo
import torch

from .. import api
from ..bridge import datasets
from ..bridge.records import RunRecord
from . import html_report, reports


@dataclass(frozen=True)
class Settings:
    """Everything the demo's numbers depend on; ``REDUCED`` and ``FULL`` are the presets."""

    train_per_class: Optional[int]  # the first N train images of each class (None: all 6000)
    test_per_class: Optional[int]  # the first N test images of each class (None: all 1000)
    ipcs: tuple[int, ...]  # the budgets, images per class
    iterations: int  # distillation iterations (DM and AutoPalette)
    batch_real: int  # real images per class per distillation iteration
    init_epochs: Optional[int]  # epochs of AutoPalette's initialisation network (None: its default, 50)
    budget: str  # AutoPalette's storage budget: paper (4 × IPC images at 64 colours), bits or count
    epochs: int  # hard protocol: epochs per trained model
    num_models: int  # hard protocol: models per condensed set
    include_full: bool = True  # also train on the whole train split (the "full" reference)
    full_epochs: int = 3  # epochs of that reference
    seed: int = 0
    reduced: bool = True

    def describe(self) -> str:
        """The settings of the condensation and of the protocol, in one line."""
        init = "its default epochs" if self.init_epochs is None else f"{self.init_epochs} epochs"
        return (f"IPC {', '.join(map(str, self.ipcs))}; distillation {self.iterations} iterations, real batch {self.batch_real}; "
                f"AutoPalette budget {self.budget!r}, initialisation network {init}; "
                f"hard protocol, ConvNet-3, {self.epochs} epochs × {self.num_models} models")


REDUCED = Settings(train_per_class=300, test_per_class=200, ipcs=(1, 10), iterations=100, batch_real=32, init_epochs=2,
                   budget="count", epochs=40, num_models=2)
FULL = Settings(train_per_class=None, test_per_class=None, ipcs=(1, 10, 50), iterations=20000, batch_real=256, init_epochs=None,
                budget="paper", epochs=1000, num_models=5, full_epochs=30, reduced=False)
FALLBACKS = {  # DC3's offline fallbacks (run.config["fallbacks"]), in words
    "encoder": "bins on ConvNet-3 features, not Stable Diffusion VAE latents",
    "gradient_model": "gradients of a trained ConvNet-3, not of ImageNet ResNet-18",
}


@dataclass
class Row:
    """One condensed set of the accuracy table: its label, run, and what to say about it."""

    label: str
    run_key: str
    ipc: int
    note: str = ""
    result: dict = field(default_factory=dict)


@dataclass
class Demo:
    """One demo: its settings and dataset, the time of every stage, and the rows to evaluate."""

    settings: Settings
    dataset: fo.Dataset
    timings: list[tuple[str, str, float]] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)

    @contextmanager
    def stage(self, stage: str, method: str) -> Iterator[None]:
        """Time a stage and print its time as soon as it ends."""
        began = time.perf_counter()
        yield
        self.timings.append((stage, method, time.perf_counter() - began))
        print(f"  [{stage}] {method}: {self.timings[-1][2]:.1f} s", flush=True)

    @property
    def train(self) -> fo.DatasetView:
        return self.dataset.match_tags("train")

    def options(self, ipc: int) -> dict:
        return {"ipc": ipc, "seed": self.settings.seed, "overwrite": True}


# ----------------------------------------------------------------------------------------- stages


def select(demo: Demo) -> None:
    """Herding at each IPC and DC3's submodular sampling at the largest (random is every row's reference)."""
    for ipc in demo.settings.ipcs:
        for method in ("herding", "dc3") if ipc == max(demo.settings.ipcs) else ("herding",):
            with demo.stage("selection", f"{method}, IPC {ipc}"):
                record = api.select(demo.train, method=method, run_key=f"demo_{method}_ipc{ipc}", **demo.options(ipc))
            demo.rows.append(Row(method, record.key, ipc, fallback_note(record.config.get("fallbacks") or {})))


def fallback_note(fallbacks: dict) -> str:
    """What DC3 ran with instead of weights it could not load offline (empty when it had them)."""
    if not fallbacks:
        return ""
    return "offline fallbacks: " + "; ".join(FALLBACKS.get(key, message) for key, message in fallbacks.items())


def distill(demo: Demo) -> None:
    """DM at each IPC, and at the largest AutoPalette initialised by its colour-guided selection, with the demo's budget."""
    settings = demo.settings
    init = {} if settings.init_epochs is None else {"teacher_epochs": settings.init_epochs}
    for ipc in settings.ipcs:
        common = {**demo.options(ipc), "iterations": settings.iterations, "batch_real": settings.batch_real}
        with demo.stage("distillation", f"dm, IPC {ipc} ({settings.iterations} iterations)"):
            record = api.distill(demo.train, method="dm", run_key=f"demo_dm_ipc{ipc}", **common)
        demo.rows.append(Row("dm", record.key, ipc, "initialised with random real images; trained on its float pixels"))
        if ipc != max(settings.ipcs):
            continue
        with demo.stage("distillation", f"autopalette, IPC {ipc} ({settings.iterations} iterations)"):
            record = api.distill(demo.train, method="autopalette", run_key=f"demo_autopalette_ipc{ipc}",
                                budget=settings.budget, **common, **init)
        demo.rows.append(Row("autopalette", record.key, ipc, autopalette_note(record, settings)))


def autopalette_note(record: RunRecord, settings: Settings) -> str:
    """AutoPalette's image count and colours under its storage budget, and its initialisation."""
    budget = {"paper": "IPC × 2^(8 − ⌈log₂ K⌉), the paper's", "count": "IPC",
              "bits": "IPC × 8 / ⌈log₂ K⌉, the bits of IPC 8-bit images"}[settings.budget]
    init = f"{settings.init_epochs}-epoch" if settings.init_epochs else "default"
    return (f"budget {settings.budget!r}: {record.config['ipc']} palette images per class, "
            f"K = {record.config['params']['num_colors']} colours ({budget}); autopalette_init with a {init} network")


def evaluate(demo: Demo) -> None:
    """Train every condensed set with the hard protocol; the random reference comes with each."""
    settings = demo.settings
    for row in demo.rows:
        with demo.stage("evaluation", f"{row.label}, IPC {row.ipc}"):
            row.result = api.evaluate(run_key=row.run_key, dataset=demo.dataset, epochs=settings.epochs,
                                     num_models=settings.num_models, seed=settings.seed,
                                     include_full=settings.include_full, full_epochs=settings.full_epochs)


# ----------------------------------------------------------------------------------------- tables


def stage_table(timings: list[tuple[str, str, float]]) -> list[str]:
    lines = ["| stage | method | time (s) |", "|---|---|---|"]
    lines += [f"| {stage} | {method} | {seconds:.1f} |" for stage, method, seconds in timings]
    return lines + [f"| **total** (after the dataset exists) | | **{sum(t for _, _, t in timings):.0f}** |"]


def png_bytes(view: fo.core.collections.SampleCollection) -> int:
    return sum(os.path.getsize(path) for path in view.values("filepath"))


def percent(result: dict) -> str:
    return f"{100 * result['mean']:.1f} ± {100 * result['std']:.1f}"


def accuracy_table(demo: Demo) -> list[str]:
    """Accuracy of each condensed set beside the random subset of the same size and the whole split,
    budget by budget, and their notes."""
    lines = ["| IPC | condensed set | images / class | accuracy % | random, same size % | gain | PNG bytes |",
             "|---|---|---|---|---|---|---|"]
    notes, num_classes = [], len(demo.dataset.distinct("ground_truth.label"))
    for row in sorted(demo.rows, key=lambda row: row.ipc):
        result, view = row.result, demo.dataset.load_saved_view(f"condense-{row.run_key}")
        note = f"{row.label}: {row.note}"
        if row.note and note not in notes:
            notes.append(note)
        mark = f" [{notes.index(note) + 1}]" if row.note else ""
        lines.append(f"| {row.ipc} | {row.label}{mark} | {result['num_train'] // num_classes} | {percent(result)} | "
                     f"{percent(result['random'])} | {100 * result['gain_over_random']:+.1f} | {png_bytes(view):,} |")
    full = next((row.result["full"] for row in demo.rows if row.result.get("full")), None)
    if demo.settings.include_full and full:
        lines.append(f"| all | whole train split ({demo.settings.full_epochs} epochs) | {full['num_train'] // num_classes} "
                     f"| {percent(full)} | | | |")
    else:
        notes.append("The whole train split is not trained here (--include-full adds it).")
    return lines + [""] + [f"[{i + 1}] {note}" for i, note in enumerate(notes)]


def write_outputs(demo: Demo, folder: Path) -> tuple[Path, Path]:
    """The accuracy-against-budget plot (PNG) and the HTML report of every run, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    plot = folder / "accuracy-against-ipc.png"
    plot.write_bytes(html_report.plot_png(reports.accuracy_traces(demo.dataset, "hard"),
                                          f"Fashion-MNIST, {demo.settings.describe().split(';')[-1].strip()}",
                                          "images per class (IPC)", "test accuracy %"))
    return plot, html_report.report(demo.dataset, folder / "report.html")


# ----------------------------------------------------------------------------------------- main


def parse_args(argv: Optional[list[str]] = None) -> tuple[Settings, Optional[str], Optional[Path]]:
    """The settings (a preset, then each option given), the dataset name and output folder asked for, if any."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the papers' protocol on the whole dataset (GPU)")
    parser.add_argument("--dataset", help="an existing dataset (train/test tags, ground_truth labels) or a name to "
                        "load Fashion-MNIST as (default: fashion-mnist-demo-<train>-<test>, or fashion-mnist)")
    parser.add_argument("--train-per-class", type=int, help="train images per class (reduced 300; full: all)")
    parser.add_argument("--test-per-class", type=int, help="test images per class (reduced 200; full: all)")
    parser.add_argument("--ipcs", type=lambda text: tuple(int(v) for v in text.split(",")),
                        help="budgets, images per class, comma-separated (reduced 1,10; full 1,10,50)")
    parser.add_argument("--iterations", type=int, help="distillation iterations (reduced 100; full 20000)")
    parser.add_argument("--batch-real", type=int, help="real images per class per iteration (reduced 32; full 256)")
    parser.add_argument("--init-epochs", type=int, help="AutoPalette's initialisation network (reduced 2; full 50)")
    parser.add_argument("--budget", choices=("paper", "bits", "count"), help="AutoPalette's budget (reduced count)")
    parser.add_argument("--epochs", type=int, help="epochs per trained model (reduced 40; full 1000)")
    parser.add_argument("--num-models", type=int, help="models per condensed set (reduced 2; full 5)")
    parser.add_argument("--include-full", action=argparse.BooleanOptionalAction, default=None,
                        help="also train on the whole train split (default: yes)")
    parser.add_argument("--full-epochs", type=int, help="epochs of the whole-split reference (reduced 3; full 30)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--out", type=Path, help="folder of the plot and the report (default: beside the media)")
    args = parser.parse_args(argv)
    preset = FULL if args.full else REDUCED
    given = {f.name: getattr(args, f.name) for f in fields(Settings) if getattr(args, f.name, None) is not None}
    return replace(preset, **given), args.dataset, args.out


def load_dataset(settings: Settings, name: Optional[str]) -> fo.Dataset:
    """The named dataset when it exists; else Fashion-MNIST from the Debian package (whole, or the
    first N images of each class for the reduced protocol), built once and reused."""
    if name and fo.dataset_exists(name):
        return fo.load_dataset(name)
    whole = settings.train_per_class is None and settings.test_per_class is None
    name = name or ("fashion-mnist" if whole else
                    f"fashion-mnist-demo-{settings.train_per_class or 'all'}-{settings.test_per_class or 'all'}")
    return datasets.load_fashion_mnist(name=name, train_per_class=settings.train_per_class,
                                          test_per_class=settings.test_per_class)


def header(settings: Settings, dataset: fo.Dataset) -> str:
    """The protocol's name and settings, and the data they ran on."""
    data = f"{dataset.name!r}, {len(dataset.match_tags('train'))} train / {len(dataset.match_tags('test'))} test images"
    name = "REDUCED protocol (not the papers'; --full runs theirs)" if settings.reduced else "full protocol"
    return f"{name}: {data}; {settings.describe()}"


def machine() -> str:
    """The machine and its load average now: other work on it slows every stage."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return "{} ({}, {} cores, load average {:.1f} {:.1f} {:.1f})".format(platform.node(), device, os.cpu_count(),
                                                                         *os.getloadavg())


def main(argv: Optional[list[str]] = None) -> Demo:
    """Run the demo; returns it (timings, rows with their results) for scripts and tests."""
    settings, name, out = parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # DC3's VAE from the local cache only: no download in a demo
    print(f"fiftyone-condense demo on {machine()}")
    began = time.perf_counter()
    dataset = load_dataset(settings, name)
    loading = time.perf_counter() - began
    print(f"dataset {dataset.name!r}: {len(dataset)} samples, ready in {loading:.0f} s "
          "(built from the Debian package on the first run, then reused; not part of the total below)")
    print(header(settings, dataset) + "\n", flush=True)

    demo = Demo(settings, dataset)
    for stage in (select, distill, evaluate):
        stage(demo)

    print(f"\nTime per stage, on {machine()} at the end")
    print("\n".join(stage_table(demo.timings)))
    print(f"In all {time.perf_counter() - began:.0f} s, of which {loading:.0f} s to make the dataset ready.")
    print("\nAccuracy on the test split — " + header(settings, dataset))
    print("\n".join(accuracy_table(demo)))
    plot, report = write_outputs(demo, out or html_report.default_path(dataset).parent)
    print(f"\nAccuracy against IPC: {plot}\nReport of every run (open it in a browser): {report}")
    print("\nOpen the results in the FiftyOne App:")
    print(f"  .venv/bin/python -c \"import fiftyone as fo; fo.launch_app(fo.load_dataset('{dataset.name}')).wait()\"")
    print("then the Condensation panel (+ beside the grid's tab), or a saved view such as 'condense-demo_dm_ipc1'.")
    return demo

if __name__ == "__main__":
    main()
