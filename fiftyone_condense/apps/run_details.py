"""One run's page, as plain data: what the panel shows when a run is opened — a summary line,
the image mosaic, per-class accuracy, colour densities before and after, bytes on disk.

    from fiftyone_condense.apps import run_details

    report = run_details.run_report(dataset, "dm_ipc10")
"""

from __future__ import annotations

import base64
import io
import os
from typing import Iterable

import fiftyone as fo
from PIL import Image, ImageDraw, ImageFont

from .. import api
from ..bridge.views import class_names
from .reports import (
    PROTOCOLS, RunOrKey, evaluation_of, method_label, per_class_rows, per_class_traces, record_of, weakest_classes,
)

CHANNEL_COLORS = {"red": "#e45756", "green": "#54a24b", "blue": "#4c78a8", "gray": "#bab0ac"}
MOSAIC_BACKGROUND = (30, 30, 30)
MOSAIC_TEXT = (225, 225, 225)


def color_report(dataset: fo.Dataset, run: RunOrKey, source_sample: int = 2000) -> dict:
    """Per-channel densities and colourfulness of a run's output against its source split.

    Compensation runs stored their before/after statistics and distillations their after; the
    rest is computed here (the source from a seeded sample of at most ``source_sample`` images).
    """
    run = record_of(dataset, run)
    stored = run.results.get("color_stats") or {}
    after = stored.get("after") or api.color_stats(run.view)
    if stored.get("before"):
        before = stored["before"]
    else:
        source = dataset.load_run_view(run.key)
        if len(source) > source_sample:
            source = source.take(source_sample, seed=0)
        before = api.color_stats(source)
    traces = []
    for name, stats, dash in (("source", before, "dot"), (run.key, after, None)):
        for channel, density in stats["kde"]["density"].items():
            line = {"color": CHANNEL_COLORS.get(channel, "#bab0ac"), **({"dash": dash} if dash else {})}
            traces.append({"type": "scatter", "mode": "lines", "name": f"{name} {channel}", "x": stats["kde"]["grid"],
                           "y": density, "line": line})
    return {
        "kde_traces": traces,
        "colorfulness": {"source": before["colorfulness"]["mean"], "run": after["colorfulness"]["mean"]},
        "unique_colors": {"source": before["unique_colors"]["mean"], "run": after["unique_colors"]["mean"]},
    }


def _bytes_on_disk(paths: Iterable[str]) -> int:
    return sum(os.path.getsize(path) for path in paths if os.path.isfile(path))


def storage_report(dataset: fo.Dataset, run: RunOrKey) -> list[dict]:
    """Bytes on disk of the run's images, with what they would take as 8-bit PNGs (distillations)
    and what the view the run was made from takes: rows of ``{"what", "bytes", "images", "per_image"}``."""
    run = record_of(dataset, run)
    results = run.results
    count = results.get("num_samples") or len(run.view)
    written = results.get("bytes")
    if written is None:  # selections: the selected files themselves
        written = _bytes_on_disk(run.view.values("filepath"))
    rows = [("this run's images on disk", written, count)]
    if results.get("bytes_8bit") is not None:
        rows.append(("the same images as 8-bit PNGs", results["bytes_8bit"], count))
    if results.get("bytes_8bit_rgb") is not None:
        rows.append(("… as 8-bit RGB PNGs", results["bytes_8bit_rgb"], count))
    source = dataset.load_run_view(run.key)
    rows.append(("the view it was made from", _bytes_on_disk(source.values("filepath")), len(source)))
    return [{"what": what, "bytes": int(size), "images": int(images), "per_image": round(size / max(images, 1))}
            for what, size, images in rows]


def human_size(size: float) -> str:
    """Bytes as B, KB, MB or GB (1024 each)."""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def storage_markdown(rows: list[dict]) -> str:
    """The storage rows as a Markdown table."""
    lines = ["| | bytes | images | per image |", "|---|---:|---:|---:|"]
    lines += [f"| {row['what']} | {human_size(row['bytes'])} | {row['images']} | {human_size(row['per_image'])} |"
              for row in rows]
    return "\n".join(lines)


def image_mosaic(dataset: fo.Dataset, run: RunOrKey, per_class: int = 10, cell: int = 56,
                 max_classes: int = 20) -> bytes:
    """A PNG of the run's images: one row per class (its name on the left), up to ``per_class``
    images each at ``cell`` pixels (small images are enlarged without smoothing, so the pixels of
    a distilled image stay visible), at most ``max_classes`` rows."""
    rows = images_by_class(dataset, run, per_class, max_classes)
    font = ImageFont.load_default(size=max(11, cell // 4))
    pad = 4
    label_width = max([int(font.getlength(name)) for name, _ in rows] + [0]) + 3 * pad
    columns = max([len(paths) for _, paths in rows] + [1])
    mosaic = Image.new("RGB", (label_width + columns * (cell + pad) + pad, len(rows) * (cell + pad) + pad or cell),
                       MOSAIC_BACKGROUND)
    draw = ImageDraw.Draw(mosaic)
    for row, (name, paths) in enumerate(rows):
        top = pad + row * (cell + pad)
        draw.text((pad, top + cell // 2), name, fill=MOSAIC_TEXT, font=font, anchor="lm")
        for column, path in enumerate(paths):
            mosaic.paste(thumbnail(path, cell), (label_width + column * (cell + pad), top))
    return png(mosaic)


def png(image: Image.Image) -> bytes:
    """An image's PNG bytes (optimised: the panel and the HTML report carry them inline)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def images_by_class(dataset: fo.Dataset, run: RunOrKey, per_class: int = 10,
                    max_classes: int = 20) -> list[tuple[str, list[str]]]:
    """``(class, filepaths)`` of a run's images, up to ``per_class`` each, in the dataset's class
    order, for at most ``max_classes`` classes that have images (none when its saved view is gone)."""
    run = record_of(dataset, run)
    if run.view is None:
        return []
    label_field = run.config.get("label_field") or "ground_truth"
    by_class: dict[str, list[str]] = {}
    for path, label in zip(run.view.values("filepath"), run.view.values(f"{label_field}.label")):
        if label is not None and len(by_class.setdefault(label, [])) < per_class:
            by_class[label].append(path)
    classes = [name for name in class_names(dataset, label_field) if by_class.get(name)][:max_classes]
    return [(name, by_class[name]) for name in classes]


def thumbnail(path: str, cell: int) -> Image.Image:
    """An image fitted into a ``cell``-pixel square: shrunk smoothly, or enlarged without smoothing
    (so a distilled image's pixels stay visible); an empty cell when the file is gone."""
    tile = Image.new("RGB", (cell, cell), MOSAIC_BACKGROUND)
    if not os.path.isfile(path):  # media moved or deleted: an empty cell, not a broken page
        return tile
    with Image.open(path) as image:
        image = image.convert("RGB")
    image.thumbnail((cell, cell), Image.Resampling.LANCZOS)  # only shrinks
    if max(image.size) < cell:
        scale = cell / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.NEAREST)
    tile.paste(image, ((cell - image.width) // 2, (cell - image.height) // 2))
    return tile


def data_url(png: bytes) -> str:
    """A PNG as a ``data:`` URL, to show it without a file or a server."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def run_summary(run) -> str:
    """One Markdown line describing a run: kind, method, IPC, images, parent, accuracies."""
    config, results = run.config, run.results
    parts = [f"**{run.key}**: {config.get('kind', 'run')} `{method_label(config)}`"]
    if config.get("backend"):
        parts.append(f"{config['backend']} backend")
    if config.get("ipc") is not None:
        parts.append(f"IPC {config['ipc']}")
    if results.get("num_samples") is not None:
        parts.append(f"{results['num_samples']} images")
    if config.get("parent"):
        parts.append(f"from `{config['parent']}`")
    for protocol in PROTOCOLS:
        evaluation = (results.get("evaluation") or {}).get(protocol)
        if evaluation:
            text = f"{protocol} accuracy {100 * evaluation['mean']:.1f} ± {100 * evaluation['std']:.1f} %"
            if evaluation.get("random"):
                text += f" (random {100 * evaluation['random']['mean']:.1f} %"
                text += f", whole split {100 * evaluation['full']['mean']:.1f} %)" if evaluation.get("full") else ")"
            if evaluation.get("scores"):
                scores = evaluation["scores"]
                text += (f"; DD-Ranking HLR {scores['hlr_mean']:.1f}, IOR {scores['ior_mean']:+.1f} points, "
                         f"LRS {scores['lrs_mean']:.3g}")
            parts.append(text)
    return " · ".join(parts)


def run_report(dataset: fo.Dataset, run_key: str, per_class: int = 10) -> dict:
    """Everything the panel shows for one opened run, as plain data: a summary line, the image
    mosaic (PNG data URL), per-class accuracy bars (and their protocol) with the per-class rows
    worst first (:func:`per_class_rows`), colour densities before and after with colourfulness and
    unique colours, and bytes on disk."""
    run = api.load_run(dataset, run_key)
    protocol, _ = evaluation_of(run.results, None)
    rows = per_class_rows(dataset, run, protocol)
    return {
        "key": run_key,
        "summary": run_summary(run),
        "mosaic": data_url(image_mosaic(dataset, run, per_class=per_class)),
        "per_class_protocol": protocol,
        "per_class_traces": per_class_traces(dataset, run, protocol),
        "per_class": rows,
        "per_class_weakest": weakest_classes(rows),
        "color": color_report(dataset, run),
        "storage": storage_report(dataset, run),
    }
