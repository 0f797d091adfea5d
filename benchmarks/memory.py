"""Peak resident memory and wall time of a selection, a distillation and an evaluation as the dataset grows.

Issue 11 item 2: memory must stay flat as the dataset grows. For each size (default 10k, 60k and
200k training images, plus a fixed 2,000-image test split) this measures, each in a FRESH child
process (``memory.py --stage STAGE --size N``):

* ``load``: import fiftyone and fiftyone_condense and load the dataset (the baseline a stage adds to);
* ``select``: ``fc.select(method="herding")`` on ConvNet-3 features computed afresh (an emptied
  embeddings field) — by default of a seeded, untrained ConvNet-3 passed as ``model=`` (a torch module:
  the run embeds, writes the field and selects on all N images; ``--embedder teacher`` trains the
  1-epoch teacher first, ~45 ms per training image on the 2-core CPU);
* ``distill``: ``fc.distill(method="dm", ipc=10, init="random")`` for a fixed number of iterations;
* ``evaluate``: ``fc.evaluate`` of that distillation run (hard protocol, ``--epochs`` × 1 model, no
  references), which streams the fixed test split.

Wall time is the SDK call's alone; peak RSS is the child's VmHWM (``/proc/self/status``) read right
after the call (the parent's ``wait4`` ``ru_maxrss`` of the child is recorded beside it). The
MongoDB server is a separate process and not included. The datasets (``condense-memory-10k``, ...)
are generated once from the Debian package's Fashion-MNIST and reused: the first 60k training images
as they are, each further one a copy shifted by up to 2 px (and flipped when not shifted), written as
PNGs by ``--processes`` processes into one shared folder (``<--workdir>/condense-memory``, default
FiftyOne's dataset directory) and added in batches with their labels (``ground_truth``), split tags
(``train`` / ``test``) and image metadata. The checks: peak RSS at the largest size within
``--memory-limit`` (1.5×) of the smallest, and time ratio no more than ``--time-tolerance`` × the
work ratio (selection ∝ N; distillation with fixed iterations and evaluation on the fixed test
split: constant). ``--smoke`` takes a few minutes.

    .venv/bin/python benchmarks/memory.py                              # 10k, 60k, 200k; writes docs/benchmarks.md
    .venv/bin/python benchmarks/memory.py --smoke                      # 1k and 3k, tiny settings, prints only
    .venv/bin/python benchmarks/memory.py --generate-only --sizes 200000
    .venv/bin/python benchmarks/memory.py --cache-bytes 256M --stages select,distill
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Only numpy here at the top: the PNG writers are spawned processes that import this module.

STAGES = ("select", "distill", "evaluate")
TEST_SIZE = 2000
SOURCE_TRAIN = 60000
SHIFT = 2
CHUNK = 1000
VERSION = 1  # of the generated images; a change rebuilds the datasets
SELECT_KEY, DISTILL_KEY = "memory_herding", "memory_dm"
EMBEDDINGS_FIELD = "memory_embedding"
WORK = {"load": "constant", "select": "∝ N", "distill": "the iterations: constant (the rest, one check of every "
        "image, ∝ N)", "evaluate": "training and testing: constant (the rest, queries over the dataset, ∝ N)"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,60000,200000", help="training images per dataset")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"of {','.join(STAGES)} (the load baseline always runs)")
    parser.add_argument("--smoke", action="store_true",
                        help="sizes 1000,3000, 3 iterations, real batch 32, 1 epoch; prints only")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=20, help="DM iterations (fixed across sizes)")
    parser.add_argument("--batch-real", type=int, default=256, help="DM real images per class per iteration")
    parser.add_argument("--embedder", choices=("fixed", "teacher"), default="fixed",
                        help="herding's features: a seeded untrained ConvNet-3 module, or a trained teacher")
    parser.add_argument("--teacher-epochs", type=int, default=1, help="the teacher's epochs (--embedder teacher)")
    parser.add_argument("--epochs", type=int, default=2, help="evaluation epochs")
    parser.add_argument("--num-models", type=int, default=1, help="evaluation models")
    parser.add_argument("--cache-bytes", default=None,
                        help="the SDK's image cache size (e.g. 268435456 or 256M), passed where the SDK takes cache_bytes")
    parser.add_argument("--workdir", default=None, help="folder of the generated PNGs (default: FiftyOne's dataset dir)")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="PNG writers")
    parser.add_argument("--memory-limit", type=float, default=1.5, help="largest / smallest peak RSS allowed")
    parser.add_argument("--time-tolerance", type=float, default=1.25,
                        help="time ratio allowed per unit of work ratio (noise margin)")
    parser.add_argument("--generate-only", action="store_true", help="build (or check) the datasets and stop")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    # the child's side
    parser.add_argument("--stage", choices=("load", *STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        if args.sizes == parser.get_default("sizes"):
            args.sizes = "1000,3000"
        args.iterations, args.batch_real, args.epochs, args.no_write = 3, 32, 1, True
    args.size_list = [int(v) for v in str(args.sizes).split(",")]
    args.stage_list = [s for s in args.stages.split(",") if s]
    unknown = set(args.stage_list) - set(STAGES)
    if unknown:
        parser.error(f"unknown stages {sorted(unknown)}; choose from {STAGES}")
    args.cache_bytes = parse_bytes(args.cache_bytes)
    return args


def parse_bytes(text):
    if text is None:
        return None
    text = str(text).strip().upper().removesuffix("IB").removesuffix("B")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def short(size: int) -> str:
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


def dataset_name(size: int) -> str:
    return f"condense-memory-{short(size)}"


# --- generating the datasets ------------------------------------------------------------------------

_SOURCE: dict = {}


def _init_writer(images: np.ndarray, test_images: np.ndarray) -> None:
    _SOURCE["train"], _SOURCE["test"] = images, test_images


def train_image(images: np.ndarray, index: int, rng: np.random.Generator) -> np.ndarray:
    """Training image ``index``: source image ``index mod 60000``; copies beyond the first are shifted
    by up to ``SHIFT`` px each way (zero fill) and flipped left-right when the shift is zero."""
    base = images[index % len(images)]
    dy, dx, flip = rng.integers(-SHIFT, SHIFT + 1), rng.integers(-SHIFT, SHIFT + 1), rng.random() < 0.5
    if index < len(images):
        return base
    padded = np.pad(base, SHIFT)
    h, w = base.shape
    out = padded[SHIFT + dy: SHIFT + dy + h, SHIFT + dx: SHIFT + dx + w]
    return np.ascontiguousarray(out[:, ::-1] if flip or (dy == 0 and dx == 0) else out)


def _write_chunk(task: tuple[str, int, int, str]) -> int:
    """Write the PNGs of one ``CHUNK``-aligned chunk; its random draws depend on the chunk alone, so
    image ``i`` is the same whatever the dataset size."""
    from PIL import Image

    split, chunk, stop, folder = task
    rng = np.random.default_rng([VERSION, chunk])
    start = chunk * CHUNK
    for index in range(start, start + CHUNK):
        if split == "train":
            pixels = train_image(_SOURCE["train"], index, rng)  # always draw, so the chunk's stream is fixed
        else:
            pixels = _SOURCE["test"][index] if index < stop else None
        if index < stop:
            Image.fromarray(pixels).save(os.path.join(folder, f"{index:06d}.png"), optimize=False)
    return min(stop, start + CHUNK) - start


def image_path(root: Path, split: str, index: int) -> str:
    return str(root / split / f"{index:06d}.png")


def write_images(root: Path, split: str, count: int, images: np.ndarray, test_images: np.ndarray, processes: int) -> float:
    """The first ``count`` images of ``split`` as PNGs under ``root/split`` (those written before are
    kept: ``written.json`` records the complete prefix); returns the seconds spent writing."""
    import multiprocessing

    folder = root / split
    folder.mkdir(parents=True, exist_ok=True)
    manifest = root / "written.json"
    written = json.loads(manifest.read_text()) if manifest.is_file() else {}
    if written.get("version") != VERSION:
        written = {"version": VERSION}
    done = int(written.get(split, 0))
    if done >= count:
        return 0.0
    began = time.perf_counter()
    first = done // CHUNK  # redo the partial chunk
    tasks = [(split, chunk, count, str(folder)) for chunk in range(first, (count + CHUNK - 1) // CHUNK)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes, initializer=_init_writer, initargs=(images, test_images)) as pool:
        total = 0
        for n in pool.imap_unordered(_write_chunk, tasks):
            total += n
            if total % 20000 < CHUNK:
                print(f"  {split}: {first * CHUNK + total:,}/{count:,} PNGs", flush=True)
    written[split] = count
    manifest.write_text(json.dumps(written))
    return time.perf_counter() - began


def ensure_dataset(size: int, args: argparse.Namespace):
    """The dataset of ``size`` training images (+ the test split), built once and then reused.

    Returns (dataset, generation timings or None when reused)."""
    import fiftyone as fo

    from fiftyone_condense.bridge.datasets import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, read_idx

    name = dataset_name(size)
    root = Path(args.workdir or fo.config.default_dataset_dir) / "condense-memory"
    settings = {"source": "fashion-mnist", "train": size, "test": TEST_SIZE, "version": VERSION, "root": str(root)}
    if fo.dataset_exists(name):
        dataset = fo.load_dataset(name)
        tags = dataset.count_sample_tags()  # (runs add synthetic samples: count the splits)
        if dataset.info.get("condense_memory") == settings and (tags.get("train"), tags.get("test")) == (size, TEST_SIZE):
            return dataset, None
        print(f"{name}: rebuilding (other settings or incomplete)", flush=True)
        dataset.delete()
    began = time.perf_counter()
    images = read_idx(FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz")
    labels = read_idx(FASHION_MNIST_DIR / "train-labels-idx1-ubyte.gz")
    test_images = read_idx(FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz")[:TEST_SIZE]
    test_labels = read_idx(FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz")[:TEST_SIZE]
    print(f"{name}: writing PNGs under {root}", flush=True)
    png_s = write_images(root, "train", size, images, test_images, args.processes)
    png_s += write_images(root, "test", TEST_SIZE, images, test_images, args.processes)

    imported = time.perf_counter()
    dataset = fo.Dataset(name)
    try:
        dataset.default_classes = FASHION_MNIST_CLASSES
        for split, count, split_labels in (("train", size, labels), ("test", TEST_SIZE, test_labels)):
            for start in range(0, count, 10000):
                batch = []
                for index in range(start, min(count, start + 10000)):
                    path = image_path(root, split, index)
                    batch.append(fo.Sample(
                        filepath=path, tags=[split],
                        ground_truth=fo.Classification(label=FASHION_MNIST_CLASSES[split_labels[index % len(split_labels)]]),
                        metadata=fo.ImageMetadata(size_bytes=os.path.getsize(path), mime_type="image/png",
                                                  width=28, height=28, num_channels=1),
                    ))
                dataset.add_samples(batch, progress=False)
            print(f"  {split}: {count:,} samples added", flush=True)
        dataset.info = {"condense_memory": settings}
        dataset.persistent = True
        dataset.save()
    except BaseException:
        dataset.delete()
        raise
    done = time.perf_counter()
    timing = {"png_s": png_s, "import_s": done - imported, "total_s": done - began}
    print(f"{name}: generated in {timing['total_s']:.1f} s (PNGs {png_s:.1f} s with {args.processes} processes, "
          f"import {timing['import_s']:.1f} s)", flush=True)
    return dataset, timing


# --- the child: one stage, measured ------------------------------------------------------------------

def peak_rss_kib() -> int:
    """This process's peak resident set (VmHWM), in KiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reading_options(function, args: argparse.Namespace) -> dict:
    """``cache_bytes`` for an SDK function that takes it (and when one was asked for)."""
    import inspect

    if args.cache_bytes is None or "cache_bytes" not in inspect.signature(function).parameters:
        return {}
    return {"cache_bytes": args.cache_bytes}


def fixed_embedder(num_classes: int):
    """A seeded, untrained ConvNet-3 on RGB input (model objects are fed [0, 1] RGB batches)."""
    import torch

    from fiftyone_condense.algorithms.models import build_model

    torch.manual_seed(0)
    return build_model("convnet3", 3, num_classes, (28, 28)).eval()


def run_stage(args: argparse.Namespace) -> None:
    began = time.perf_counter()
    import fiftyone as fo
    import torch
    from common import declared

    import fiftyone_condense as fc

    torch.set_num_threads(os.cpu_count() or 1)
    imported = time.perf_counter()
    dataset = fo.load_dataset(dataset_name(args.size))
    train = dataset.match_tags("train")
    result = {"stage": args.stage, "size": args.size, "import_s": imported - began}
    teacher_cache = None
    if args.stage == "load":
        started = time.perf_counter()
        result["train_samples"] = len(train)
        options = {}
    elif args.stage == "select":
        # afresh: no stored embeddings, no cached teacher
        for field in (EMBEDDINGS_FIELD, f"{EMBEDDINGS_FIELD}_logits"):
            if dataset.has_sample_field(field):
                dataset.delete_sample_field(field)
        if SELECT_KEY in fc.list_runs(dataset):
            fc.delete_run(dataset, SELECT_KEY)
        teacher_cache = tempfile.mkdtemp(prefix="condense-memory-cache-")
        os.environ["FIFTYONE_CONDENSE_CACHE_DIR"] = teacher_cache
        options = reading_options(fc.select, args)
        started = time.perf_counter()
        model = "convnet3" if args.embedder == "teacher" else fixed_embedder(len(dataset.distinct("ground_truth.label")))
        fc.select(train, method="herding", ipc=args.ipc, run_key=SELECT_KEY,
                  **declared("selection", "herding", model=model, embedding="features",
                             embeddings_field=EMBEDDINGS_FIELD, teacher_epochs=args.teacher_epochs), **options)
    elif args.stage == "distill":
        if DISTILL_KEY in fc.list_runs(dataset):
            fc.delete_run(dataset, DISTILL_KEY)
        options = reading_options(fc.distill, args)
        started = time.perf_counter()
        record = fc.distill(train, method="dm", ipc=args.ipc, init="random", run_key=DISTILL_KEY,
                            **declared("distillation", "dm", iterations=args.iterations, batch_real=args.batch_real),
                            **options)
        result["fixed_work_s"] = record.results["timings"]["distill_s"]  # the iterations alone
    else:
        if DISTILL_KEY not in fc.list_runs(dataset):
            raise SystemExit(f"{dataset.name} has no run {DISTILL_KEY!r}: run the distill stage first")
        options = reading_options(fc.evaluate, args)
        started = time.perf_counter()
        evaluation = fc.evaluate(run_key=DISTILL_KEY, dataset=dataset, protocol="hard", epochs=args.epochs,
                                 num_models=args.num_models, references=False, **options)
        result["accuracy"] = float(evaluation["mean"])
        result["fixed_work_s"] = float(evaluation["seconds"])  # training and testing alone
    result["wall_s"] = time.perf_counter() - started
    result["peak_rss_kib"] = peak_rss_kib()
    result["cache_bytes"] = options.get("cache_bytes")
    if args.stage == "select":  # leave the dataset as it was (embeddings of 200k images are ~1 GB in the database)
        for field in (EMBEDDINGS_FIELD, f"{EMBEDDINGS_FIELD}_logits"):
            if dataset.has_sample_field(field):
                dataset.delete_sample_field(field)
        shutil.rmtree(teacher_cache, ignore_errors=True)
    Path(args.result_file).write_text(json.dumps(result))


# --- the parent: children, table, checks ---------------------------------------------------------------

def child(stage: str, size: int, args: argparse.Namespace) -> dict:
    """Run one stage in a fresh process; its result, with the parent's view of its peak RSS."""
    with tempfile.TemporaryDirectory() as folder:
        result_file = Path(folder) / "result.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--stage", stage, "--size", str(size),
                   "--result-file", str(result_file), "--ipc", str(args.ipc), "--iterations", str(args.iterations),
                   "--batch-real", str(args.batch_real), "--teacher-epochs", str(args.teacher_epochs),
                   "--embedder", args.embedder,
                   "--epochs", str(args.epochs), "--num-models", str(args.num_models)]
        if args.cache_bytes is not None:
            command += ["--cache-bytes", str(args.cache_bytes)]
        print(f"[{stage} {short(size)}] memory.py --stage {stage} --size {size}", flush=True)
        process = subprocess.Popen(command)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise SystemExit(f"stage {stage} at {size} images failed (exit {process.returncode})")
        result = json.loads(result_file.read_text())
    result["wait4_maxrss_kib"] = usage.ru_maxrss
    print(f"[{stage} {short(size)}] {result['wall_s']:.2f} s, peak RSS {result['peak_rss_kib'] / 1024:.0f} MiB", flush=True)
    return result


def checks(results: dict, args: argparse.Namespace) -> list[str]:
    """Memory within the limit and time within the work, largest size against the smallest."""
    small, large = min(args.size_list), max(args.size_list)
    lines = []
    if small == large:
        return lines
    for stage in ["load", *args.stage_list]:
        a, b = results[(stage, small)], results[(stage, large)]
        memory = b["peak_rss_kib"] / a["peak_rss_kib"]
        work = large / small if stage == "select" else 1.0
        timed = "fixed_work_s" if "fixed_work_s" in a else "wall_s"  # the part whose work is constant in N
        elapsed = b[timed] / a[timed] if a[timed] > 0 else float("inf")
        memory_ok, time_ok = memory <= args.memory_limit, elapsed <= work * args.time_tolerance
        line = (f"- {stage}: peak RSS {memory:.2f}× from {short(small)} to {short(large)} images (limit "
                f"{args.memory_limit}×): **{'PASS' if memory_ok else 'FAIL'}**")
        if stage != "load":  # loading takes milliseconds: its time ratio is noise
            line += (f"; {'time of the fixed work' if timed == 'fixed_work_s' else 'time'} {elapsed:.2f}× for "
                     f"{work:.0f}× the work ({WORK[stage]}; allowed "
                     f"{work * args.time_tolerance:.2f}×): **{'PASS' if time_ok else 'FAIL'}**")
        lines.append(line)
    return lines


def main(argv=None) -> None:
    args = parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if args.stage:
        run_stage(args)
        return
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    import inspect

    from common import command_line, machine, publish

    import fiftyone_condense as fc

    generated = {}
    for size in args.size_list:
        _, timing = ensure_dataset(size, args)
        generated[size] = timing
    if args.generate_only:
        return
    results = {}
    for size in args.size_list:
        results[("load", size)] = child("load", size, args)
        for stage in STAGES:
            if stage in args.stage_list:
                results[(stage, size)] = child(stage, size, args)
            elif stage == "distill" and "evaluate" in args.stage_list and DISTILL_KEY not in fc.list_runs(
                    ensure_dataset(size, args)[0]):
                child("distill", size, args)  # the run the evaluation needs, not reported

    small = min(args.size_list)
    takes = [name for name, fn in (("select", fc.select), ("distill", fc.distill), ("evaluate", fc.evaluate))
             if "cache_bytes" in inspect.signature(fn).parameters]
    cache = ("not set (the SDK's default)" if args.cache_bytes is None else
             f"{args.cache_bytes:,} bytes, passed to {', '.join(takes) or 'nothing (this SDK takes no cache_bytes)'}")
    lines = [
        f"Command: `{command_line()}`  ",
        f"Machine: {machine()}  ",
        f"Datasets: Fashion-MNIST tiled to {', '.join(short(s) for s in args.size_list)} training PNGs (28×28 grey; "
        f"copies beyond 60k shifted ≤ {SHIFT} px or flipped) + {TEST_SIZE:,} test PNGs, metadata stored. Each stage in a "
        f"fresh process; wall time of the SDK call only; peak RSS = the process's VmHWM (the MongoDB server not "
        f"included). Selection: herding, ConvNet-3 features "
        f"({'of a ' + str(args.teacher_epochs) + '-epoch teacher' if args.embedder == 'teacher' else 'of a seeded untrained ConvNet-3 module'}), "
        f"computed afresh and written to a field. "
        f"Distillation: DM, IPC {args.ipc}, init random, {args.iterations} iterations, real batch {args.batch_real}. "
        f"Evaluation: hard protocol, {args.epochs} epochs × {args.num_models} model, no references. "
        f"cache_bytes: {cache}.{' — **smoke settings**' if args.smoke else ''}",
        "",
        f"| stage | images | wall s | peak RSS MiB | above load MiB | RSS × vs {short(small)} | time × vs {short(small)} "
        "| work × | ms / image | fixed-work s | rest ms / image |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for stage in ["load", *args.stage_list]:
        for size in args.size_list:
            r, first = results[(stage, size)], results[(stage, small)]
            base = results[("load", size)]["peak_rss_kib"]
            work = size / small if stage == "select" else 1.0
            lines.append(
                f"| {stage} | {size:,} | {r['wall_s']:.2f} | {r['peak_rss_kib'] / 1024:,.0f} | "
                f"{(r['peak_rss_kib'] - base) / 1024:+,.0f} | {r['peak_rss_kib'] / first['peak_rss_kib']:.2f} | "
                f"{r['wall_s'] / first['wall_s'] if first['wall_s'] > 0 else float('nan'):.2f} | {work:.0f} | "
                f"{1000 * r['wall_s'] / size:.3f} | "
                + (f"{r['fixed_work_s']:.2f} | {1000 * (r['wall_s'] - r['fixed_work_s']) / size:.3f} |"
                   if "fixed_work_s" in r else "– | – |"))
    lines += ["", *checks(results, args)]
    made = {s: t for s, t in generated.items() if t}
    if made:
        lines += ["", "Generated this run: " + "; ".join(
            f"{dataset_name(s)} in {t['total_s']:.0f} s (PNGs {t['png_s']:.0f} s, import {t['import_s']:.0f} s)"
            for s, t in made.items())]
    publish(args, "memory", lines)


if __name__ == "__main__":
    main()
