"""Colour compensation runs (DC3): warm and cold edits of a selection, combined, written as new samples."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import fiftyone as fo
import torch

from ..algorithms.color import BACKENDS, COMBINE_MODES, combine, plan_edits
from ..algorithms.color import classical as classical_backend
from ..algorithms.color import color_stats as image_color_stats
from ..algorithms.color import diffusion as diffusion_backend
from ..algorithms.device import resolve_device
from ..algorithms.errors import CondensationError
from ..algorithms.images import as_rgb, resized
from ..algorithms.loader import ImageFiles, ImageFormat, LazyImages
from ..algorithms.progress import Progress
from . import records as run_store
from .lifecycle import begin, claimed_run, record, versions
from .views import DEFAULT_LABEL_FIELD, Reading, media_dir_beside, require_samples, write_pngs

Collection = fo.core.collections.SampleCollection
COLOR_STATS_IMAGES = 5000


@dataclass
class Request:
    """A compensation as the SDK was asked for it."""

    run_key: Optional[str]
    parent: Optional[str]
    label_field: Optional[str]
    backend: str
    combine_mode: str
    settings: diffusion_backend.DiffusionSettings
    reading: Reading
    output_dir: Optional[str]
    seed: int
    device: str
    overwrite: bool


def parent_run(view: Collection, parent: Optional[str]) -> Optional[str]:
    """The selection run whose saved view this is (``condense-<key>``), if any."""
    if parent is not None:
        return parent
    name = getattr(view, "name", None) or ""
    return name[len("condense-"):] if name.startswith("condense-") else None


def run(view: Optional[Collection], request: Request, progress: Progress) -> run_store.RunRecord:
    """Validate, claim the key, edit in memory, then write the new samples and record the run (all-or-nothing)."""
    run_key, parent, label_field = request.run_key, request.parent, request.label_field
    if view is None:
        raise CondensationError("Pass the view to compensate, e.g. dataset.load_saved_view('condense-<key>')")
    dataset = view._dataset
    parent = parent_run(view, parent)
    run_key = f"{parent or 'view'}_{request.backend}_{request.combine_mode}" if run_key is None else run_key
    if parent is not None and parent in run_store.list_runs(dataset):
        label_field = label_field or run_store.run_config(dataset, parent).get("label_field")
    label_field = label_field or DEFAULT_LABEL_FIELD
    begin(view, label_field)
    if request.backend not in BACKENDS:
        raise CondensationError(f"Unknown backend {request.backend!r}; choose one of {BACKENDS}")
    if request.combine_mode not in COMBINE_MODES:
        raise CondensationError(f"Unknown combine_mode {request.combine_mode!r}; choose one of {COMBINE_MODES}")
    with claimed_run(dataset, run_key, request.overwrite) as entry:
        reading = output_reading(dataset, view, parent, request.reading)
        started = time.perf_counter()
        source = reading.load(view, label_field, None, progress.stage("loading images", 0.0, 0.05))
        images = as_rgb(source.tensor())
        output, plan = edited(images, request, progress)
        edit_seconds = time.perf_counter() - started
        folder = Path(request.output_dir) / run_key if request.output_dir else media_dir_beside(view, run_key)
        if folder.exists() and any(folder.iterdir()) and not request.overwrite:
            raise CondensationError(f"Output folder {folder} is not empty; choose output_dir= or overwrite=True")
        config = run_store.config_for(
            "compensation", method="dc3_compensation", parent=parent, backend=request.backend,
            combine_mode=request.combine_mode, label_field=label_field, seed=request.seed, classes=source.classes,
            params=_params(request), styles={"warm": plan.warm, "cold": plan.cold}, output_dir=str(folder),
            versions=versions(), image_format=reading.recorded(),
        )

        def write(transaction) -> dict:
            paths = [folder / f"{source_id}.png" for source_id in source.ids]
            written = transaction.add_synthetic_samples(
                run_key, label_field, paths, [source.classes[int(label)] for label in source.labels],
                [[source_id] for source_id in source.ids], lambda rows, files: write_pngs(output[rows], files),
                reading.format.shape)
            return {"num_samples": len(paths), "bytes": written,
                    "timings": {"edit_s": edit_seconds, "total_s": time.perf_counter() - started},
                    "color_stats": {"before": image_color_stats(images), "after": image_color_stats(output)}}

        return record(view, entry, config, write)


def output_reading(dataset: fo.Dataset, view: Collection, parent: Optional[str], reading: Reading) -> Reading:
    """The edits' working format: RGB, at the size asked for, else the parent selection's, else the view's."""
    recorded = run_store.run_config(dataset, parent).get("image_format") if parent in run_store.list_runs(dataset) else None
    if reading.image_size is None and reading.format is None and recorded:
        return reading.with_format(replace(ImageFormat.from_dict(recorded), channels=3))
    fixed = reading.fixed(view)
    return replace(fixed, format=replace(fixed.format, channels=3))


def edited(images: torch.Tensor, request: Request, progress: Progress):
    """Warm and cold edits at the edit size, combined by the plan and resized back to the working size."""
    settings = request.settings
    plan = plan_edits(len(images), request.combine_mode, (settings.edit_size, settings.edit_size), request.seed)
    generator = torch.Generator().manual_seed(request.seed)
    at_edit_size = resized(images, (settings.edit_size, settings.edit_size), "bicubic")
    if request.backend == "diffusion":
        pipeline = diffusion_backend.load_pipeline(settings.model, resolve_device(request.device))
        warm, cold = diffusion_backend.warm_and_cold(pipeline, at_edit_size, plan.warm, plan.cold, generator, settings,
                                                     progress.stage("diffusion edits", 0.05, 0.85))
    else:
        warm, cold = classical_backend.warm_and_cold(at_edit_size, generator)
    return resized(combine(warm, cold, plan), tuple(images.shape[-2:]), "bilinear"), plan


def _params(request: Request) -> dict:
    settings = request.settings
    diffusion = {"model": settings.model, "steps": settings.steps, "guidance": settings.guidance,
                 "image_guidance": settings.image_guidance, "batch_size": settings.batch_size}
    return {"edit_size": settings.edit_size, **(diffusion if request.backend == "diffusion" else {})}


def color_stats(view: Collection, points: int = 64, max_images: int = COLOR_STATS_IMAGES) -> dict:
    """Colour statistics of a view's images as plain data (see :func:`fiftyone_condense.color_stats`),
    of a seeded sample of at most ``max_images`` of them for a large view."""
    require_samples(view)
    if len(view) > max_images:
        view = view.take(max_images, seed=0)
    pixels = LazyImages(ImageFiles(view.values("filepath"), Reading().fixed(view).format))
    return image_color_stats(pixels.tensor(), points)
