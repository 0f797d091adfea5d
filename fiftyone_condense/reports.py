"""Plain-data summaries of a dataset's condensation runs, for panels, notebooks and reports.

Everything here returns lists and dicts of numbers and strings (JSON-ready), including Plotly
trace dicts, so the App panel only lays them out.
"""

from __future__ import annotations

from typing import Optional

import fiftyone as fo

from .api import color_stats
from .bridge import runs as run_store

COLUMNS = ("key", "method", "ipc", "parent", "seconds", "hard", "soft", "bytes", "samples")


def _accuracy(results: dict, protocol: str) -> Optional[float]:
    evaluation = (results.get("evaluation") or {}).get(protocol)
    return None if not evaluation else round(100 * evaluation["mean"], 2)


def run_rows(dataset: fo.Dataset) -> list[dict]:
    """One row per run: key, method, IPC, parent run, time (s), hard/soft accuracy (%), bytes, samples."""
    rows = []
    for key in run_store.list_runs(dataset):
        record = run_store.load_run(dataset, key)
        config, results = record.config, record.results
        parent = config.get("parent") or (config.get("init") if config.get("init") in run_store.list_runs(dataset) else None)
        rows.append({
            "key": key,
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


def accuracy_traces(dataset: fo.Dataset, protocol: str = "hard") -> list[dict]:
    """Plotly traces of accuracy (%) against IPC: one line per method, plus the references."""
    by_method: dict[str, list[tuple[int, float, float]]] = {}
    random_points, full = {}, None
    for key in run_store.list_runs(dataset):
        record = run_store.load_run(dataset, key)
        evaluation = (record.results.get("evaluation") or {}).get(protocol)
        ipc = record.config.get("ipc")
        if not evaluation or ipc is None:
            continue
        label = record.config.get("method") + (f" ({record.config['combine_mode']})" if record.config.get("combine_mode") else "")
        by_method.setdefault(label, []).append((ipc, 100 * evaluation["mean"], 100 * evaluation["std"]))
        if evaluation.get("random"):
            random_points[ipc] = (100 * evaluation["random"]["mean"], 100 * evaluation["random"]["std"])
        full = evaluation.get("full") or full
    traces = [_line(name, sorted(points)) for name, points in sorted(by_method.items())]
    if random_points:
        traces.append(_line("random reference", sorted((k, *v) for k, v in random_points.items()), dash="dot"))
    if full:
        xs = sorted({p[0] for points in by_method.values() for p in points})
        traces.append({"type": "scatter", "mode": "lines", "name": "whole source split", "x": [xs[0], xs[-1]],
                       "y": [100 * full["mean"]] * 2, "line": {"dash": "dash"}})
    return traces


def _line(name: str, points: list[tuple], dash: Optional[str] = None) -> dict:
    trace = {"type": "scatter", "mode": "lines+markers", "name": name, "x": [p[0] for p in points],
             "y": [round(p[1], 2) for p in points],
             "error_y": {"type": "data", "array": [round(p[2], 2) for p in points], "visible": True}}
    if dash:
        trace["line"] = {"dash": dash}
    return trace


def color_report(dataset: fo.Dataset, run_key: str, source_sample: int = 2000) -> dict:
    """Per-channel densities and colourfulness of a run's output against its source split.

    Compensation runs stored their before/after statistics; for other runs they are computed
    here (the source from a seeded sample of at most ``source_sample`` images).
    """
    record = run_store.load_run(dataset, run_key)
    stored = record.results.get("color_stats") or {}
    after = stored.get("after") or color_stats(record.view)
    if stored.get("before"):
        before = stored["before"]
    else:
        source = dataset.load_run_view(run_key)
        if len(source) > source_sample:
            source = source.take(source_sample, seed=0)
        before = color_stats(source)
    traces = []
    for name, stats, dash in (("source", before, "dot"), (run_key, after, None)):
        for channel, density in stats["kde"]["density"].items():
            trace = {"type": "scatter", "mode": "lines", "name": f"{name} {channel}", "x": stats["kde"]["grid"], "y": density}
            if dash:
                trace["line"] = {"dash": dash}
            traces.append(trace)
    return {
        "kde_traces": traces,
        "colorfulness": {"source": before["colorfulness"]["mean"], "run": after["colorfulness"]["mean"]},
        "unique_colors": {"source": before["unique_colors"]["mean"], "run": after["unique_colors"]["mean"]},
    }
