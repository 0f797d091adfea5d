"""Plain-data summaries of a dataset's condensation runs, for panels, notebooks and reports.

Everything here returns lists and dicts of numbers and strings (JSON-ready), including Plotly
trace dicts and PNG data URLs, so the App panel only lays them out. It reads runs through the
public SDK (``fc.list_runs``, ``fc.load_run``) and never needs the App.

    from fiftyone_condense import reports

    reports.run_rows(dataset)                  # the runs table
    reports.accuracy_traces(dataset, "hard")   # accuracy against IPC, one line per method
    report = reports.run_report(dataset, "dm_ipc10")   # what "Open" shows for one run
"""

from __future__ import annotations

import base64
import io
import os
from typing import Iterable, Optional, Union

import fiftyone as fo
from PIL import Image, ImageDraw, ImageFont

import fiftyone_condense as fc

from .bridge.runs import RunRecord
from .bridge.views import class_names

COLUMNS = ("key", "method", "ipc", "parent", "seconds", "hard", "soft", "bytes", "samples")
PROTOCOLS = ("hard", "soft")
CHANNEL_COLORS = {"red": "#e45756", "green": "#54a24b", "blue": "#4c78a8", "gray": "#bab0ac"}
REFERENCE_COLOR = "#a0a0a0"
MOSAIC_BACKGROUND = (30, 30, 30)
MOSAIC_TEXT = (225, 225, 225)


# --------------------------------------------------------------------------- all runs


def _accuracy(results: dict, protocol: str) -> Optional[float]:
    evaluation = (results.get("evaluation") or {}).get(protocol)
    return None if not evaluation else round(100 * evaluation["mean"], 2)


RunOrKey = Union[str, RunRecord]


def load_runs(dataset: fo.Dataset) -> list[RunRecord]:
    """Every run of the dataset, loaded once for the functions below that take ``runs``."""
    return [fc.load_run(dataset, key) for key in fc.list_runs(dataset)]


def _record(dataset: fo.Dataset, run: RunOrKey) -> RunRecord:
    """A run given by key, or already loaded (so one report reads it once)."""
    return run if isinstance(run, RunRecord) else fc.load_run(dataset, run)


def run_rows(dataset: fo.Dataset, runs: Optional[list[RunRecord]] = None) -> list[dict]:
    """One row per run: key, method, IPC, parent run, time (s), hard/soft accuracy (%), bytes, samples."""
    runs = load_runs(dataset) if runs is None else runs
    keys = {run.key for run in runs}
    rows = []
    for run in runs:
        config, results = run.config, run.results
        parent = config.get("parent") or (config.get("init") if config.get("init") in keys else None)
        rows.append({
            "key": run.key,
            "method": config.get("method"),
            "ipc": config.get("ipc"),
            "parent": parent or "",
            "seconds": round((results.get("timings") or {}).get("total_s", 0.0), 1),
            "hard": _accuracy(results, "hard"),
            "soft": _accuracy(results, "soft"),
            "bytes": results.get("bytes"),
            "samples": results.get("num_samples"),
        })
    return rows


def visible_columns(rows: list[dict]) -> list[str]:
    """The columns worth showing: the run key, and every other column some row has a value in."""
    return [column for column in COLUMNS if column == "key" or any(row.get(column) not in (None, "") for row in rows)]


def _method_label(config: dict) -> str:
    return config.get("method") + (f" ({config['combine_mode']})" if config.get("combine_mode") else "")


def accuracy_traces(dataset: fo.Dataset, protocol: str = "hard", runs: Optional[list[RunRecord]] = None) -> list[dict]:
    """Plotly traces of accuracy (%) against IPC for every run evaluated with ``protocol``.

    One line per method (mean ± std over the trained models as error bars, the run keys on
    hover), the random class-balanced reference of the same size (dotted) and the whole source
    split (dashed, level) where an evaluation trained it.
    """
    by_method: dict[str, list[tuple]] = {}
    random_points: dict[int, tuple] = {}
    full = None
    for run in load_runs(dataset) if runs is None else runs:
        evaluation = (run.results.get("evaluation") or {}).get(protocol)
        ipc = run.config.get("ipc")
        if not evaluation or ipc is None:
            continue
        by_method.setdefault(_method_label(run.config), []).append(
            (ipc, 100 * evaluation["mean"], 100 * evaluation["std"], run.key))
        if evaluation.get("random"):
            reference = evaluation["random"]
            random_points[ipc] = (100 * reference["mean"], 100 * reference["std"], "random reference")
        full = evaluation.get("full") or full
    references = []  # drawn first (under the methods' points), listed last in the legend
    if random_points:
        references.append(_line("random reference", sorted((k, *v) for k, v in random_points.items()),
                                line={"dash": "dot", "color": REFERENCE_COLOR}, legendrank=1001))
    if full:
        xs = sorted({p[0] for points in by_method.values() for p in points})
        low, high = (xs[0], xs[-1]) if xs[0] != xs[-1] else (max(xs[0] - 1, 0.5), xs[0] + 1)
        level = round(100 * full["mean"], 2)
        references.append({"type": "scatter", "mode": "lines",
                           "name": f"whole source split ({full.get('num_train', '?')} images)", "x": [low, high], "y": [level, level], "line": {"dash": "dash", "color": REFERENCE_COLOR},
                           "legendrank": 1002,
                           "hovertemplate": f"whole split: {level:.2f} ± {100 * full['std']:.2f} %<extra></extra>"})
    return references + [_line(name, sorted(points)) for name, points in sorted(by_method.items())]


def accuracy_figures(dataset: fo.Dataset, runs: Optional[list[RunRecord]] = None) -> dict[str, list[dict]]:
    """``{protocol: accuracy_traces}`` for each protocol some run was evaluated with."""
    runs = load_runs(dataset) if runs is None else runs
    figures = {protocol: accuracy_traces(dataset, protocol, runs) for protocol in PROTOCOLS}
    return {protocol: traces for protocol, traces in figures.items() if traces}


def _line(name: str, points: list[tuple], **style) -> dict:
    trace = {"type": "scatter", "mode": "lines+markers", "name": name, "x": [p[0] for p in points],
             "y": [round(p[1], 2) for p in points],
             "error_y": {"type": "data", "array": [round(p[2], 2) for p in points], "visible": True},
             "text": [p[3] for p in points],
             "hovertemplate": "%{text}: IPC %{x}, %{y:.2f} ± %{error_y.array:.2f} %<extra></extra>"}
    return {**trace, **style}


# --------------------------------------------------------------------------- one run


def _evaluation(results: dict, protocol: Optional[str]) -> tuple[Optional[str], Optional[dict]]:
    evaluations = results.get("evaluation") or {}
    for name in ([protocol] if protocol else PROTOCOLS):
        if evaluations.get(name):
            return name, evaluations[name]
    return None, None


def per_class_traces(dataset: fo.Dataset, run: RunOrKey, protocol: Optional[str] = None) -> list[dict]:
    """Grouped Plotly bars of a run's per-class test accuracy (%), beside its random and whole-split
    references when the evaluation has them; empty when the run is not evaluated (``protocol``:
    ``hard``/``soft``, default the first one present)."""
    run = _record(dataset, run)
    _, evaluation = _evaluation(run.results, protocol)
    if not evaluation or not evaluation.get("per_class"):
        return []
    classes = class_names(dataset, evaluation.get("label_field") or run.config.get("label_field") or "ground_truth")
    if len(classes) != len(evaluation["per_class"]):
        classes = [str(i) for i in range(len(evaluation["per_class"]))]
    traces = []
    for name, result in ((run.key, evaluation), ("random reference", evaluation.get("random")),
                         ("whole source split", evaluation.get("full"))):
        if result and result.get("per_class"):
            traces.append({"type": "bar", "name": name, "x": classes,
                           "y": [round(100 * accuracy, 1) for accuracy in result["per_class"]]})
    return traces


def color_report(dataset: fo.Dataset, run: RunOrKey, source_sample: int = 2000) -> dict:
    """Per-channel densities and colourfulness of a run's output against its source split.

    Compensation runs stored their before/after statistics and distillations their after; the
    rest is computed here (the source from a seeded sample of at most ``source_sample`` images).
    """
    run = _record(dataset, run)
    stored = run.results.get("color_stats") or {}
    after = stored.get("after") or fc.color_stats(run.view)
    if stored.get("before"):
        before = stored["before"]
    else:
        source = dataset.load_run_view(run.key)
        if len(source) > source_sample:
            source = source.take(source_sample, seed=0)
        before = fc.color_stats(source)
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
    run = _record(dataset, run)
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


def _human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def storage_markdown(rows: list[dict]) -> str:
    """The storage rows as a Markdown table."""
    lines = ["| | bytes | images | per image |", "|---|---:|---:|---:|"]
    lines += [f"| {row['what']} | {_human(row['bytes'])} | {row['images']} | {_human(row['per_image'])} |"
              for row in rows]
    return "\n".join(lines)


def image_mosaic(dataset: fo.Dataset, run: RunOrKey, per_class: int = 10, cell: int = 56,
                 max_classes: int = 20) -> bytes:
    """A PNG of the run's images: one row per class (its name on the left), up to ``per_class``
    images each at ``cell`` pixels (small images are enlarged without smoothing, so the pixels of
    a distilled image stay visible), at most ``max_classes`` rows."""
    run = _record(dataset, run)
    label_field = run.config.get("label_field") or "ground_truth"
    view = run.view
    labels = view.values(f"{label_field}.label")
    by_class: dict[str, list[str]] = {}
    for path, label in zip(view.values("filepath"), labels):
        if label is not None and len(by_class.setdefault(label, [])) < per_class:
            by_class[label].append(path)
    classes = [name for name in class_names(dataset, label_field) if by_class.get(name)][:max_classes]
    font = ImageFont.load_default(size=max(11, cell // 4))
    pad = 4
    label_width = max([int(font.getlength(name)) for name in classes] + [0]) + 3 * pad
    columns = max([len(by_class[name]) for name in classes] + [1])
    mosaic = Image.new("RGB", (label_width + columns * (cell + pad) + pad, len(classes) * (cell + pad) + pad or cell),
                       MOSAIC_BACKGROUND)
    draw = ImageDraw.Draw(mosaic)
    for row, name in enumerate(classes):
        top = pad + row * (cell + pad)
        draw.text((pad, top + cell // 2), name, fill=MOSAIC_TEXT, font=font, anchor="lm")
        for column, path in enumerate(by_class[name]):
            mosaic.paste(_tile(path, cell), (label_width + column * (cell + pad), top))
    buffer = io.BytesIO()
    mosaic.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _tile(path: str, cell: int) -> Image.Image:
    tile = Image.new("RGB", (cell, cell), MOSAIC_BACKGROUND)
    if not os.path.isfile(path):  # media moved or deleted: an empty cell, not a broken panel
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
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def run_summary(run) -> str:
    """One Markdown line describing a run: kind, method, IPC, images, parent, accuracies."""
    config, results = run.config, run.results
    parts = [f"**{run.key}**: {config.get('kind', 'run')} `{_method_label(config)}`"]
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
            parts.append(text)
    return " · ".join(parts)


def run_report(dataset: fo.Dataset, run_key: str, per_class: int = 10) -> dict:
    """Everything the panel shows for one opened run, as plain data: a summary line, the image
    mosaic (PNG data URL), per-class accuracy bars (and their protocol), colour densities before and
    after with colourfulness and unique colours, and bytes on disk."""
    run = fc.load_run(dataset, run_key)
    protocol, _ = _evaluation(run.results, None)
    return {
        "key": run_key,
        "summary": run_summary(run),
        "mosaic": data_url(image_mosaic(dataset, run, per_class=per_class)),
        "per_class_protocol": protocol,
        "per_class_traces": per_class_traces(dataset, run, protocol),
        "color": color_report(dataset, run),
        "storage": storage_report(dataset, run),
    }
