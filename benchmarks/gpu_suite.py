"""The papers' protocols on one GPU, in one prepared command that fits a device lease.

1. The card: its measured TF32 matrix rate and copy bandwidth, and from them the floor of a DM
   iteration (IPC 10, real batch 256: FLOPs and bytes counted layer by layer).
2. The step: iterations per second of the reference ``main_DM.py`` loop, ours one class per
   forward, ours batched (the default), and our options (bf16 autocast, ``--compile``); Decomposed
   DM and AutoPalette batched.
3. The protocol: DM, Decomposed DM and AutoPalette distilled from random real images for as many
   iterations as the budget allows (20,000 at most), each evaluated under the full hard protocol
   (ConvNet-3, 1000 epochs, 5 models, DSA) beside random real images of the same size. The first
   IPC runs alone, the others (IPC 1 and 50 by default) together afterwards, as time allows; jobs of
   a phase run as concurrent processes on the one GPU.

Writes ``summary.md`` (every table), ``results.json`` (the numbers and loss curves),
``loss_curves.png`` and ``jobs.log`` under ``--out`` and prints a short table last. It needs only
PyTorch (and matplotlib for the plot): no FiftyOne, diffusers or submodlib.

    .venv/bin/python benchmarks/gpu_suite.py --prepare .gpu        # here: IDX files + reference code
    python3 benchmarks/gpu_suite.py --data .gpu --out "$OUT"        # on the GPU machine (carry .gpu)
    .venv/bin/python benchmarks/gpu_suite.py --smoke --out /tmp/gpu-smoke   # CPU, under two minutes
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from step_speed import REFERENCE, our_iterations_per_second, reference_iterations_per_second, synchronize  # noqa: E402

from fiftyone_condense.algorithms.distillation import (  # noqa: E402
    DistillSettings, distill, distiller_for, images_per_class, settings_for,
)
from fiftyone_condense.algorithms.idx import FASHION_MNIST_DIR, FASHION_MNIST_FILES, fashion_mnist_tensors  # noqa: E402
from fiftyone_condense.algorithms.protocols import HardProtocol, evaluate_images  # noqa: E402

METHODS = ("dm", "ddm", "autopalette")
NUM_CLASSES = 10
NUM_COLORS = 64  # AutoPalette's default K; its "paper" budget stores IPC × 4 images per class


@dataclass(frozen=True)
class Size:
    """How much each part does: the full protocol, or the smoke size that checks the script on a CPU."""

    train_per_class: Optional[int]
    test_images: Optional[int]
    batch_real: int
    speed_iterations: int
    speed_warmup: int
    reference_iterations: int
    max_iterations: int
    epochs: int
    num_models: int
    ipcs: tuple[int, ...]


FULL = Size(None, None, 256, 20, 3, 10, 20000, 1000, 5, (10, 1, 50))
SMOKE = Size(60, 200, 16, 2, 1, 1, 3, 2, 2, (1, 2))


# --------------------------------------------------------------------------- data


def prepare(folder: Path) -> None:
    """Copy what the device machine lacks into ``folder``: the IDX files and the reference code."""
    (folder / "fashion-mnist").mkdir(parents=True, exist_ok=True)
    for name in (name for pair in FASHION_MNIST_FILES.values() for name in pair):
        shutil.copy2(FASHION_MNIST_DIR / name, folder / "fashion-mnist" / name)
    shutil.copytree(REFERENCE, folder / "reference" / "DatasetCondensation", dirs_exist_ok=True)
    print(f"prepared {folder}: carry it with the call and pass --data {folder}")


def data_folders(data: Optional[Path]) -> tuple[Path, Path]:
    """The IDX folder and the reference code folder: a prepared ``--data`` folder, else this machine's."""
    if data is None:
        return FASHION_MNIST_DIR, REFERENCE
    return data / "fashion-mnist", data / "reference" / "DatasetCondensation"


def load(idx_folder: Path, size: Size) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fashion-MNIST train and test splits (the first ``train_per_class`` of each class at the smoke size)."""
    train_x, train_y = fashion_mnist_tensors("train", idx_folder)
    test_x, test_y = fashion_mnist_tensors("test", idx_folder)
    if size.train_per_class:
        keep = torch.cat([torch.nonzero(train_y == c).flatten()[: size.train_per_class] for c in range(NUM_CLASSES)])
        train_x, train_y = train_x[keep.sort().values], train_y[keep.sort().values]
    if size.test_images:
        test_x, test_y = test_x[: size.test_images], test_y[: size.test_images]
    return train_x, train_y, test_x, test_y


def random_real(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices of ``per_class`` random images of each class, sorted by class (the papers' ``init='real'``)."""
    generator = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(NUM_CLASSES):
        members = torch.nonzero(labels == c).flatten()
        picks.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(picks)


# --------------------------------------------------------------------------- the card and the floor


def convnet3_flops(channels: int = 1, side: int = 28, width: int = 128, depth: int = 3) -> float:
    """Multiply-adds ×2 of one ConvNet-3 forward (the reference pads a 1-channel input by 3)."""
    flops, size, in_channels = 0.0, side, channels
    for level in range(depth):
        size = size + 2 * (3 if channels == 1 and level == 0 else 1) - 2
        flops += 2 * 9 * in_channels * width * size * size
        size, in_channels = size // 2, width
    return flops


def convnet3_bytes(channels: int = 1, side: int = 28, width: int = 128, depth: int = 3) -> float:
    """Fewest fp32 bytes one image moves through a layer-by-layer forward: the input read once, each
    convolution's output written once and read once (norm, ReLU and pooling fused), each pooled map
    written once and read once by the next layer."""
    total, size = 4.0 * channels * side * side, side
    for level in range(depth):
        size = size + 2 * (3 if channels == 1 and level == 0 else 1) - 2
        total += 2 * 4 * width * size * size
        size //= 2
        total += 2 * 4 * width * size * size
    return total


def dm_iteration_cost(ipc: int, batch_real: int) -> dict:
    """FLOPs and bytes of one DM iteration: the real batch forward, the synthetic set forward and its
    input-gradient backward (about one more forward; the network is frozen)."""
    real, synthetic = NUM_CLASSES * batch_real, NUM_CLASSES * ipc
    return {"flops": convnet3_flops() * (real + 2 * synthetic), "bytes": convnet3_bytes() * (real + 2 * synthetic)}


def card_ceilings(device: torch.device) -> dict:
    """Measured TF32 and FP32 matrix rates (FLOP/s) and device-to-device copy bandwidth (bytes/s)."""
    if device.type != "cuda":
        return {}
    rates = {}
    matrices = torch.randn(2, 8192, 8192, device=device)
    for name, tf32 in (("tf32_flops", True), ("fp32_flops", False)):
        previous = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        rates[name] = 2 * 8192**3 * 5 / timed(lambda: matrices[0] @ matrices[1], 5, device)
        torch.backends.cuda.matmul.allow_tf32 = previous
    buffers = torch.empty(2, 2**28, device=device)  # 1 GiB each
    rates["copy_bytes"] = 2 * buffers[0].numel() * 4 * 10 / timed(lambda: buffers[1].copy_(buffers[0]), 10, device)
    matrices = buffers = None
    torch.cuda.empty_cache()
    return rates


def timed(work, repeats: int, device: torch.device) -> float:
    work()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        work()
    synchronize(device)
    return time.perf_counter() - started


# --------------------------------------------------------------------------- the step


def speed_table(train_x, train_y, size: Size, device: torch.device, reference: Path, use_compile: bool,
                log) -> list[dict]:
    """Iterations per second of each loop at IPC 10, real batch ``size.batch_real``."""
    ipc = 10
    dm = settings_for("dm", batch_real=size.batch_real)
    rows = []

    def add(name: str, ips: float) -> None:
        rows.append({"loop": name, "it_per_s": ips})
        log(f"speed: {name}: {ips:.2f} it/s")

    if (reference / "main_DM.py").is_file():
        add("reference main_DM.py (DM)", reference_iterations_per_second(
            train_x, train_y, ipc, size.batch_real, size.reference_iterations, reference))
    ours = [
        ("ours DM, one class per forward", replace(dm, real_chunk=size.batch_real)),
        ("ours DM, batched (default)", dm),
        ("ours DM, batched, bf16 autocast (option)", replace(dm, mixed_precision=True)),
        ("ours Decomposed DM, batched (default)", settings_for("ddm", batch_real=size.batch_real)),
        ("ours AutoPalette, batched (default)", settings_for("autopalette", batch_real=size.batch_real)),
    ]
    if use_compile:
        ours.insert(3, ("ours DM, batched, torch.compile (option)", replace(dm, compile=True)))
    for name, settings in ours:
        per_class = settings.images_per_class(ipc)
        warmup = size.speed_warmup * (4 if settings.compile else 1)
        add(name, our_iterations_per_second(train_x, train_y, per_class, settings, size.speed_iterations, device, warmup))
        if not settings.compile:  # (compiling again to count would cost more than it tells)
            rows[-1]["host_syncs_per_iteration"] = host_syncs_per_step(train_x, train_y, per_class, settings, device)
    return rows


def host_syncs_per_step(images, labels, ipc: int, settings: DistillSettings, device: torch.device) -> Optional[float]:
    """Times an iteration made the host wait for the GPU (PyTorch's sync debug mode), over 3 iterations."""
    if device.type != "cuda":
        return None
    init = torch.cat([images[labels == c][:ipc] for c in range(NUM_CLASSES)])
    distiller = distiller_for(settings.method)(images, labels, init, torch.arange(NUM_CLASSES).repeat_interleave(ipc),
                                               NUM_CLASSES, settings, device, seed=0)
    distiller.step(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for iteration in range(1, 4):
                distiller.step(iteration)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught) / 3


def eval_step_seconds(train_x, train_y, test_x, test_y, device: torch.device) -> float:
    """Seconds per training step of the hard protocol (100 images, one batch per epoch), measured."""
    picks = random_real(train_y, 10, seed=1)
    epochs = 20 if device.type == "cuda" else 1
    evaluate_images(train_x[picks], train_y[picks], test_x[:512], test_y[:512], NUM_CLASSES,
                    HardProtocol(epochs=2, num_models=1), device)  # warm-up
    started = time.perf_counter()
    evaluate_images(train_x[picks], train_y[picks], test_x[:512], test_y[:512], NUM_CLASSES,
                    HardProtocol(epochs=epochs, num_models=1), device)
    return (time.perf_counter() - started) / (epochs + 1)


# --------------------------------------------------------------------------- protocol jobs


@dataclass
class Job:
    method: str  # a distillation method, or "random"
    ipc: int
    distill_until: float  # wall-clock time (time.time()) at which distillation stops
    smoke: bool
    data: Optional[str]
    compile: bool
    threads: int
    seed: int = 0


def run_job(job: Job) -> dict:
    """Distil (or pick random images), then evaluate under the hard protocol; the result as a dict."""
    torch.set_num_threads(job.threads)
    size = SMOKE if job.smoke else FULL
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train_x, train_y, test_x, test_y = load(data_folders(job.data and Path(job.data))[0], size)
    per_class = images_per_class(job.ipc, job.method, "paper", NUM_COLORS) if job.method != "random" else job.ipc
    picks = random_real(train_y, per_class, job.seed)
    images, labels = train_x[picks], train_y[picks]
    record = {"method": job.method, "ipc": job.ipc, "images_per_class": per_class, "init": "random real images"}
    if job.method != "random":
        settings = settings_for(job.method, iterations=size.max_iterations, batch_real=size.batch_real,
                                compile=job.compile and job.method == "dm").with_lr_img(per_class)
        result = distill(train_x, train_y, images, labels, NUM_CLASSES, settings, device, job.seed,
                         stop=lambda done: time.time() >= job.distill_until)
        images = result.images
        record.update(iterations=len(result.history), iterations_planned=size.max_iterations,
                      distill_seconds=result.seconds, it_per_s=len(result.history) / max(result.seconds, 1e-9),
                      loss_history=subsample(result.history, 500), settings=asdict(settings))
    protocol = HardProtocol(epochs=size.epochs, num_models=size.num_models)
    evaluation = evaluate_images(images, labels, test_x, test_y, NUM_CLASSES, protocol, device, seed=job.seed)
    record.update(accuracies=evaluation.accuracies, mean=evaluation.mean, std=evaluation.std,
                  eval_seconds=evaluation.seconds, protocol=protocol.as_dict(), status="done")
    return record


def subsample(values: list[float], points: int) -> list[list[float]]:
    """At most ``points`` (iteration, value) pairs, evenly spaced, the last one included."""
    step = max(1, math.ceil(len(values) / points))
    keep = list(range(0, len(values), step))
    if values and keep[-1] != len(values) - 1:
        keep.append(len(values) - 1)
    return [[i + 1, values[i]] for i in keep]


def eval_estimate(ipc_images: int, size: Size, step_seconds: float, concurrent: int, contention: float) -> float:
    """Seconds the hard protocol should take on ``ipc_images`` images with ``concurrent`` jobs sharing the GPU."""
    steps = size.num_models * (size.epochs + 1) * math.ceil(ipc_images / 256)
    return steps * step_seconds * max(1.0, contention * concurrent) + 15.0


def run_phase(ipcs: tuple[int, ...], methods: tuple[str, ...], phase_end: float, hard_end: float, size: Size,
              args: argparse.Namespace, step_seconds: float, workdir: Path, log) -> list[dict]:
    """Run every (method, IPC) job of a phase as concurrent processes; each distils until its
    evaluation is expected to end by ``phase_end``; a job still running at ``hard_end`` is killed."""
    specs = [(method, ipc) for ipc in ipcs for method in (*methods, "random")]
    threads = max(1, (os.cpu_count() or 2) // len(specs))
    results, running = [], []
    for method, ipc in specs:
        images = NUM_CLASSES * (images_per_class(ipc, method, "paper", NUM_COLORS) if method != "random" else ipc)
        until = phase_end - eval_estimate(images, size, step_seconds, len(specs), args.contention)
        if method != "random" and until - time.time() < (0 if args.smoke else 20):
            log(f"skip {method} IPC {ipc}: no time left to distil and evaluate")
            results.append({"method": method, "ipc": ipc, "status": "skipped: no time left"})
            continue
        job = Job(method, ipc, until, args.smoke, args.data and str(args.data), args.compile, threads)
        output = workdir / f"{method}-{ipc}.json"
        command = [sys.executable, __file__, "--job", json.dumps(asdict(job)), "--job-output", str(output)]
        handle = open(workdir / f"{method}-{ipc}.log", "w")
        running.append((method, ipc, output, subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT), handle))
        log(f"start {method} IPC {ipc}: distil for {max(0.0, until - time.time()):.0f} s")
    while any(process.poll() is None for *_, process, _ in running) and time.time() < hard_end:
        time.sleep(1.0)
    for method, ipc, output, process, handle in running:
        if process.poll() is None:
            process.kill()
            process.wait()
        handle.close()
        if output.is_file():
            results.append(json.loads(output.read_text()))
            log(f"done {method} IPC {ipc}: {results[-1]['mean']:.4f} ± {results[-1]['std']:.4f}")
        else:
            status = "killed at the budget" if process.returncode == -9 else f"failed (exit {process.returncode})"
            results.append({"method": method, "ipc": ipc, "status": status})
            log(f"{status}: {method} IPC {ipc}; see jobs.log")
    return results


# --------------------------------------------------------------------------- reports


def speed_lines(rows: list[dict], cost: dict, ceilings: dict) -> list[str]:
    floor_ms = None
    if ceilings:
        floor_ms = 1e3 * max(cost["flops"] / ceilings["tf32_flops"], cost["bytes"] / ceilings["copy_bytes"])
    reference = next((r["it_per_s"] for r in rows if r["loop"].startswith("reference")), None)
    lines = ["| loop | iterations / s | ms / iteration | × reference | × floor time | host waits / iteration |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        ms = 1e3 / row["it_per_s"]
        versus = f"{row['it_per_s'] / reference:.2f}×" if reference else "–"
        gap = f"{ms / floor_ms:.1f}×" if floor_ms and "DM" in row["loop"] and "Decomposed" not in row["loop"] else "–"
        syncs = row.get("host_syncs_per_iteration")
        lines.append(f"| {row['loop']} | {row['it_per_s']:.2f} | {ms:.2f} | {versus} | {gap} | "
                     f"{'–' if syncs is None else f'{syncs:g}'} |")
    lines += ["", f"DM iteration at IPC 10, real batch 256: {cost['flops'] / 1e9:.0f} GFLOP, "
              f"{cost['bytes'] / 1e9:.2f} GB (layer-by-layer minimum)."]
    if ceilings:
        lines.append(f"Card: TF32 matrix {ceilings['tf32_flops'] / 1e12:.0f} TFLOP/s, FP32 {ceilings['fp32_flops'] / 1e12:.0f} "
                     f"TFLOP/s, copy {ceilings['copy_bytes'] / 1e12:.2f} TB/s (measured); floor "
                     f"{floor_ms:.2f} ms/iteration = max(FLOPs / TF32 rate, bytes / bandwidth).")
    return lines


def protocol_lines(results: list[dict], size: Size) -> list[str]:
    lines = [f"Hard protocol: ConvNet-3, {size.epochs} epochs, {size.num_models} models, DSA; mean ± std of the "
             "models' test accuracy (%). Distillation from random real images.", "",
             "| IPC | method | images / class | iterations | it/s (shared GPU) | accuracy | random, same size |",
             "|---|---|---|---|---|---|---|"]
    randoms = {r["ipc"]: r for r in results if r["method"] == "random" and r.get("status") == "done"}
    for r in sorted(results, key=lambda r: (r["ipc"], METHODS.index(r["method"]) if r["method"] in METHODS else 9)):
        if r["method"] == "random":
            continue
        base = randoms.get(r["ipc"])
        base_text = f"{100 * base['mean']:.2f} ± {100 * base['std']:.2f}" if base else "–"
        if r.get("status") != "done":
            lines.append(f"| {r['ipc']} | {r['method']} | – | – | – | {r['status']} | {base_text} |")
            continue
        lines.append(f"| {r['ipc']} | {r['method']} | {r['images_per_class']} | {r['iterations']} | {r['it_per_s']:.1f} | "
                     f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f} | {base_text} |")
    return lines


def plot(results: list[dict], path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    ipcs = sorted({r["ipc"] for r in results if r.get("loss_history")})
    if not ipcs:
        return
    figure, axes = plt.subplots(1, len(ipcs), figsize=(5 * len(ipcs), 3.5), squeeze=False)
    for axis, ipc in zip(axes[0], ipcs):
        for r in results:
            if r["ipc"] == ipc and r.get("loss_history"):
                steps, losses = zip(*r["loss_history"])
                axis.plot(steps, losses, label=r["method"], linewidth=0.8)
        axis.set(title=f"IPC {ipc}", xlabel="iteration", ylabel="loss", yscale="log")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


# --------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepare", type=Path, help="copy the IDX files and reference code into this folder and exit")
    parser.add_argument("--data", type=Path, help="a folder made by --prepare (default: this machine's files)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-suite-out")))
    parser.add_argument("--budget", type=float, default=520.0, help="seconds for the whole suite")
    parser.add_argument("--smoke", action="store_true", help="the smoke size (a CPU check of the script)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--ipcs", default=None, help="comma-separated; the first runs alone (default 10,1,50)")
    parser.add_argument("--compile", action="store_true", help="time a torch.compile'd DM step and use it in the DM jobs")
    parser.add_argument("--contention", type=float, default=0.3,
                        help="slow-down of an evaluation per concurrent job, for planning the distillation time")
    parser.add_argument("--first-share", type=float, default=0.6, help="share of the budget ending the first phase")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--job-output", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.prepare:
        return prepare(args.prepare)
    if args.job:
        record = run_job(Job(**json.loads(args.job)))
        args.job_output.write_text(json.dumps(record))
        return None
    started = time.time()
    size = SMOKE if args.smoke else FULL
    if args.ipcs:
        size = replace(size, ipcs=tuple(int(v) for v in args.ipcs.split(",")))
    methods = tuple(m for m in args.methods.split(",") if m)
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = args.out / "jobs"
    workdir.mkdir(exist_ok=True)
    log_lines: list[str] = []

    def log(message: str) -> None:
        line = f"[{time.time() - started:6.1f} s] {message}"
        log_lines.append(line)
        print(line, flush=True)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    idx_folder, reference = data_folders(args.data)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    log(f"device {device_name}, torch {torch.__version__}, budget {args.budget:.0f} s, size {'smoke' if args.smoke else 'full'}")
    train_x, train_y, test_x, test_y = load(idx_folder, size)
    ceilings = card_ceilings(device)
    cost = dm_iteration_cost(10, 256)
    rows = speed_table(train_x, train_y, size, device, reference, args.compile, log)
    step_seconds = eval_step_seconds(train_x, train_y, test_x, test_y, device)
    log(f"hard-protocol training step: {1e3 * step_seconds:.2f} ms")

    results: list[dict] = []
    phases = [size.ipcs[:1], size.ipcs[1:]] if len(size.ipcs) > 1 else [size.ipcs]
    end = started + args.budget
    for index, ipcs in enumerate(phases):
        phase_end = started + args.first_share * args.budget if index == 0 and len(phases) > 1 else end - 5
        hard_end = end - 5 if index else max(phase_end, end - 60)  # the first phase's results come first
        results += run_phase(ipcs, methods, phase_end, hard_end, size, args, step_seconds, workdir, log)

    report = [f"# GPU suite: {device_name}, torch {torch.__version__}", "",
              f"Command: `python benchmarks/gpu_suite.py {' '.join(sys.argv[1:])}`; wall time "
              f"{time.time() - started:.0f} s of a {args.budget:.0f} s budget.", "",
              "## DM step" + (" (IPC 10, real batch 256)" if not args.smoke else " (smoke size)"), "",
              *speed_lines(rows, cost, ceilings), "", "## Full protocol", "", *protocol_lines(results, size)]
    (args.out / "summary.md").write_text("\n".join(report) + "\n")
    (args.out / "results.json").write_text(json.dumps(
        {"device": device_name, "torch": torch.__version__, "ceilings": ceilings, "dm_iteration_cost": cost,
         "speed": rows, "eval_step_seconds": step_seconds, "protocol": results, "size": asdict(size)}, indent=1))
    plot(results, args.out / "loss_curves.png")
    with open(args.out / "jobs.log", "w") as combined:
        combined.write("\n".join(log_lines) + "\n")
        for path in sorted(workdir.glob("*.log")):
            combined.write(f"\n===== {path.stem}\n{path.read_text()[-4000:]}")
    shutil.rmtree(workdir)
    print("\n".join(["", *speed_lines(rows, cost, ceilings), "", *protocol_lines(results, size)]))
    return None


if __name__ == "__main__":
    main()
