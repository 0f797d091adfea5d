"""Distillation runs: optimise synthetic images against a view's real ones, write them as new samples."""

from __future__ import annotations

import io
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import fiftyone as fo
import numpy as np
import torch
from PIL import Image

from ..algorithms.budgets import Budget
from ..algorithms.cache import cache_dir
from ..algorithms.color import color_stats as image_color_stats
from ..algorithms.device import resolve_device
from ..algorithms.distillation import DistillSettings, parameters, settings_for
from ..algorithms.distillation import distill as distill_images
from ..algorithms.distillation.palette import palette_png
from ..algorithms.distributed import current_team
from ..algorithms.errors import CondensationError
from ..algorithms.images import as_rgb
from ..algorithms.params import resolve
from ..algorithms.progress import Progress
from ..algorithms.selection import METHODS, class_budgets, small_class_report
from . import records as run_store
from . import select as selection
from .lifecycle import RunRequest, begin, claimed_run, record, versions
from .select import per_class_mean
from .views import ImageSet, Reading, class_names, labels_of, media_dir_beside, write_pngs

Collection = fo.core.collections.SampleCollection


def method_settings(method: str, ipc: int, given: dict) -> DistillSettings:
    """The method's settings from its declared parameters (``given`` checked against them), with
    ``lr_img`` resolved for the images per class it distils at ``ipc``."""
    settings = settings_for(method, **resolve(method, parameters(method), given))
    return settings.with_lr_img(settings.images_per_class(ipc))


@dataclass(frozen=True)
class Request(RunRequest):
    """A distillation as the SDK was asked for it: a method run, what it starts from (``init``) and
    where its images go (``output_dir``)."""

    init: Optional[str]
    output_dir: Optional[str]


def run(view: Collection, request: Request, progress: Progress) -> run_store.RunRecord:
    """Validate, claim the key, distil (resumable) from real images read in batches, then write the
    images as samples at the working format and record the run (all-or-nothing)."""
    method, budget, init, run_key, label_field = request.method, request.budget, request.init, request.run_key, request.label_field
    output_dir, seed, device, overwrite = request.output_dir, request.seed, request.device, request.overwrite
    given, reading, small_classes = request.params, request.reading, request.small_classes
    dataset = view._dataset
    init = init or ("autopalette_init" if method == "autopalette" else "random")
    begin(view, label_field)
    classes = class_names(view, label_field)
    ipc = budget.ipc or int(budget.per_class(labels_of(view, label_field, classes), classes, small_classes).max())
    settings = method_settings(method, ipc, given)
    params = asdict(settings)
    per_class = settings.images_per_class(ipc)
    budgets = check_budget(view, label_field, classes, budget, settings, init, params, small_classes)
    with claimed_run(dataset, run_key, overwrite) as entry:
        reading = reading.fixed(view)
        started = time.perf_counter()
        source = reading.load(view, label_field, classes, progress.stage("checking real images", 0.0, 0.05))
        images, labels, sources = initial_images(  # a share budget trims whole small classes to their shares
            view, source, init, budgets, label_field, params, seed, device, progress.sub(0.05, 0.15), reading,
            small_classes if budget.ipc else "keep_all")
        workdir = cache_dir() / "runs" / str(dataset._doc.id) / run_key  # checkpoints while in progress
        result = current_team().run(distill_images, source.floats(), source.labels, images, labels, len(classes),
                                    settings, device=resolve_device(device), seed=seed,
                                    checkpoint=workdir / "checkpoint.pt",
                                    local={"progress": progress.stage(f"distilling ({method})", 0.15, 0.95)})
        folder = Path(output_dir) / run_key if output_dir else media_dir_beside(view, run_key)
        config = run_store.config_for(
            "distillation", method=method, ipc=per_class if budget.ipc else per_class_mean(budgets), init=init,
            label_field=label_field, params={**params, "requested_ipc": budget.ipc}, budget=budget.record(budgets, classes),
            seed=seed, classes=classes, output_dir=str(folder), versions=versions(), image_format=reading.recorded(),
        )
        needed = per_class if init != "noise" or small_classes == "drop" else 1  # noise needs no real images to keep
        small = small_class_report(source.labels.numpy(), needed, classes, small_classes)  # labels already read

        def write(transaction) -> dict:
            paths = [folder / f"{method}_{classes[int(label)]}_{i:05d}.png".replace("/", "-") for i, label in enumerate(labels)]
            written = transaction.add_synthetic_samples(
                run_key, label_field, paths, [classes[int(label)] for label in labels], sources,
                lambda rows, files: write_media(result, images.shape[1], rows, files),
                reading.format.shape, None if result.palettes is not None else result.float_images)
            return {"num_samples": len(paths), "bytes": written, **encoded_sizes(result.images),
                    "loss_history": result.history[:: max(1, len(result.history) // 500)],
                    "resumed_from": result.resumed_from,
                    "timings": {"distill_s": result.seconds, "total_s": time.perf_counter() - started},
                    "color_stats": {"after": image_color_stats(result.images)}, "small_classes": small}

        recorded = record(view, entry, config, write)
        shutil.rmtree(workdir, ignore_errors=True)
        return recorded


def check_budget(view, label_field, classes, budget: Budget, settings: DistillSettings, init: str, params: dict,
                 small_classes: str) -> np.ndarray:
    """Synthetic images per class: every class must hold the images an initialisation from real
    images needs, unless ``small_classes`` keeps small ones whole or drops them. A fraction or
    count budget gives each class its share, times AutoPalette's storage multiple."""
    labels = labels_of(view, label_field, classes)
    if budget.ipc is None:
        shares = budget.per_class(labels, classes, small_classes)
        synthetic = np.array([settings.images_per_class(int(n)) if n else 0 for n in shares])
        counts = np.bincount(labels, minlength=len(classes))
        if init != "noise" and np.any(synthetic > counts):
            over = [f"{classes[c]!r} ({synthetic[c]} of {counts[c]})" for c in np.flatnonzero(synthetic > counts)]
            raise CondensationError(f"The budget distils more images than some classes hold, each initialised from "
                                    f"a real image: {', '.join(over)}. Choose a smaller budget or init='noise'.")
        return synthetic
    ipc, per_class = budget.ipc, settings.images_per_class(budget.ipc)
    smallest = int(np.bincount(labels, minlength=len(classes)).min())
    if per_class != ipc and init != "noise" and per_class > smallest and small_classes == "error":
        raise CondensationError(
            f"AutoPalette's budget {params['budget']!r} distils {per_class} images per class at ipc={ipc} and "
            f"K={params['num_colors']}, each initialised from a real image, but the smallest class has {smallest}. "
            "Choose a smaller ipc, budget='count' (ipc images), or init='noise'.")
    if init != "noise":
        return class_budgets(labels, per_class, classes, small_classes)
    counts = np.bincount(labels, minlength=len(classes))  # noise needs no real images: only "drop" applies
    return np.where((counts > 0) & ((counts >= per_class) | (small_classes != "drop")), per_class, 0)


def initial_images(view, source: ImageSet, init: str, budgets: np.ndarray, label_field: str, params: dict, seed: int,
                   device: str, progress: Progress, reading: Reading,
                   small_classes: str) -> tuple[torch.Tensor, torch.Tensor, list]:
    """(images, labels, source ids per image) to start distillation from: ``budgets[c]`` per class."""
    if init == "noise":
        generator = torch.Generator().manual_seed(seed)
        labels = torch.arange(len(source.classes)).repeat_interleave(torch.from_numpy(budgets))
        images = torch.rand((len(labels), *source.shape), generator=generator)
        return images, labels, [[] for _ in range(len(labels))]
    ids = initial_ids(view, init, int(budgets.max()), label_field, params, seed, device, progress, reading, small_classes)
    position = {sample_id: i for i, sample_id in enumerate(source.ids)}
    missing = [i for i in ids if i not in position]
    if missing:
        raise CondensationError(f"{len(missing)} initial samples are not in the view being distilled")
    rows = within_budgets([position[i] for i in ids], source.labels, budgets)
    order = torch.argsort(source.labels[rows], stable=True)  # the engine takes classes as contiguous blocks
    rows = rows[order]
    return source.floats()[rows], source.labels[rows], [[source.ids[int(row)]] for row in rows]


def within_budgets(rows: list[int], labels: torch.Tensor, budgets: np.ndarray) -> torch.Tensor:
    """The first ``budgets[c]`` of ``rows`` of each class c (a selection run may hold more of a class,
    or one this run drops)."""
    taken = np.zeros(len(budgets), dtype=np.int64)
    kept = []
    for row in rows:
        label = int(labels[row])
        if taken[label] < budgets[label]:
            taken[label] += 1
            kept.append(row)
    return torch.tensor(kept, dtype=torch.long)


def initial_ids(view, init: str, ipc: int, label_field: str, params: dict, seed: int, device: str,
                progress: Progress, reading: Reading, small_classes: str = "error") -> list[str]:
    """Sample ids of an existing selection run, or of a selection ``init`` method made now (with the
    distillation's ``num_colors`` and ``teacher_epochs`` where that method takes them)."""
    dataset = view._dataset
    if init in run_store.list_runs(dataset, kind="selection"):
        ids = run_store.load_run(dataset, init).results.get("selected_ids") or []
        if not ids:
            raise CondensationError(f"Run {init!r} selected no real samples to initialise from")
        return ids
    if init not in METHODS:
        raise CondensationError(f"init must be 'noise', a selection method {sorted(METHODS)} or a selection run key "
                                f"{run_store.list_runs(dataset, kind='selection')}")
    declared = {p.name for p in METHODS[init].params}
    shared = {k: params[k] for k in ("num_colors", "teacher_epochs") if k in declared and params.get(k) is not None}
    request = RunRequest(init, Budget(ipc=ipc), init, label_field, seed, device, False, small_classes, shared, reading)
    return selection.plan_selection(view, request, progress).ids


def write_media(result, channels: int, rows: slice, paths: list) -> None:
    """The images ``rows`` as palette PNGs (AutoPalette: K colours on disk) or 8-bit PNGs."""
    if result.palettes is None:
        write_pngs(result.images[rows], paths)
        return
    bits = next(b for b in (1, 2, 4, 8) if 2**b >= result.palettes.shape[1])  # K colours
    for palette, index, path in zip(result.palettes[rows], result.indices[rows], paths):
        palette_png(palette, index, channels).save(path, bits=bits, optimize=False)


def encoded_sizes(images: torch.Tensor) -> dict:
    """PNG bytes of the same images stored as 8-bit (their own channels) and as 8-bit RGB."""
    def png_bytes(batch: torch.Tensor) -> int:
        total = 0
        for array in (batch.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy():
            buffer = io.BytesIO()
            Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(buffer, format="PNG")
            total += buffer.tell()
        return total

    return {"bytes_8bit": png_bytes(images), "bytes_8bit_rgb": png_bytes(as_rgb(images))}
