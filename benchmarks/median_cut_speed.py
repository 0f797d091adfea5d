"""Speed of AutoPalette's Median-Cut target: PIL's ``quantize(MEDIANCUT)`` image by image (how
palette.py computes it on a CPU, serially and on its thread pool) against ``median_cut_torch``
(batched, on the CPU and, when there is one, on CUDA), for a batch of 64 images at K = 64: Fashion-MNIST
28×28 (grey, quantised as RGB with three equal channels) and 32×32 RGB windows of scikit-image's
photos. Median of a few repeats, after a warm-up; the torch results are checked equal to PIL's.

    .venv/bin/python benchmarks/median_cut_speed.py --repeats 5
    .venv/bin/python benchmarks/median_cut_speed.py --no-write   # print the table only

Run it with ``--threads 1`` on a CPU: the cut is thousands of small operations, which more intra-op
threads only slow down.

FiftyOne-free: it runs on a bare PyTorch machine with Pillow (and scikit-image for the photos).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from common import command_line, machine, publish
from PIL import Image

from fiftyone_condense.algorithms.distillation.mediancut import median_cut_torch
from fiftyone_condense.algorithms.idx import fashion_mnist_tensors


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64, help="images per batch (AutoPalette's colour batch: 64)")
    parser.add_argument("--num-colors", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per cell (the median is shown)")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--threads", type=int, default=1, help="torch's CPU threads for the torch cut")
    return parser.parse_args(argv)


def fashion_batch(count: int) -> np.ndarray:
    images = fashion_mnist_tensors("train")[0][:count]
    pixels = (images.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1)  # truncation, as palette.py
    return pixels.expand(-1, -1, -1, 3).contiguous().numpy()


def photo_batch(count: int, size: int = 32) -> np.ndarray:
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea()]
    rng = np.random.default_rng(0)
    windows = []
    for number in range(count):
        photo = photos[number % len(photos)]
        side = int(rng.integers(size, 4 * size))
        top, left = (int(rng.integers(0, extent - side)) for extent in photo.shape[:2])
        window = Image.fromarray(photo[top:top + side, left:left + side])
        windows.append(np.asarray(window.resize((size, size), Image.Resampling.BILINEAR)))
    return np.stack(windows)


def pil_one(image: np.ndarray, num_colors: int) -> tuple[np.ndarray, list[int]]:
    paletted = Image.fromarray(image).quantize(colors=num_colors, method=Image.Quantize.MEDIANCUT)
    return np.asarray(paletted, dtype=np.int64), paletted.getpalette()[: 3 * num_colors]


def median_seconds(run, repeats: int, sync=lambda: None) -> float:
    run()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def check_equal(pixels: np.ndarray, num_colors: int, device: torch.device) -> None:
    palettes, indices = median_cut_torch(torch.from_numpy(pixels).to(device), num_colors)
    for number, image in enumerate(pixels):
        index, colours = pil_one(image, num_colors)
        assert np.array_equal(indices[number].cpu().numpy(), index), f"indices of image {number} differ from PIL's"
        assert palettes[number].flatten().tolist()[: len(colours)] == colours, f"palette of image {number} differs"


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))  # palette.py's pool (its CPU path)
    batches = {f"Fashion-MNIST {args.batch}×28×28 (grey as RGB)": fashion_batch(args.batch),
               f"photo windows {args.batch}×32×32×3": photo_batch(args.batch)}
    header = ["batch", "PIL, one by one", f"PIL, {pool._max_workers} threads (palette.py on a CPU)", "torch CPU"]
    header += ["torch CUDA"] * (len(devices) > 1)
    lines = [f"Median-Cut at K = {args.num_colors}, median of {args.repeats} runs (ms per batch); "
             f"{machine()}; `{command_line()}`", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, pixels in batches.items():
        cells = [median_seconds(lambda: [pil_one(image, args.num_colors) for image in pixels], args.repeats),
                 median_seconds(lambda: list(pool.map(lambda image: pil_one(image, args.num_colors), pixels)),
                                args.repeats)]
        for device in devices:
            check_equal(pixels, args.num_colors, device)
            on_device = torch.from_numpy(pixels).to(device)
            sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
            cells.append(median_seconds(lambda: median_cut_torch(on_device, args.num_colors), args.repeats, sync))
        lines.append(f"| {name} | " + " | ".join(f"{1000 * seconds:.1f}" for seconds in cells) + " |")
    publish(args, "median_cut_speed", lines)


if __name__ == "__main__":
    main()
