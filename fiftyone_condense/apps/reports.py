"""Plain-data summaries of a dataset's condensation runs, for panels, notebooks and reports.

Everything here returns lists and dicts of numbers and strings (JSON-ready), including Plotly
trace dicts and PNG data URLs, so the App panel only lays them out. It reads runs through the
public SDK (``api.list_runs``, ``api.load_run``) and never needs the App.

    from fiftyone_condense.apps import reports

    reports.run_rows(dataset)                  # the runs table
    reports.accuracy_traces(dataset, "hard")   # accuracy against IPC, one line per method
    reports.per_class_rows(dataset, "dm_ipc10")   # per-class accuracy against the references, worst first

One run's page (what the panel's "Open" shows) is :mod:`.run_details`.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import fiftyone as fo

from .. import api
from ..bridge.records import RunRecord
from ..bridge.views import DEFAULT_LABEL_FIELD, class_names

PROTOCOLS = tuple(api.PROTOCOLS)  # the protocols a run can be evaluated under
COLUMNS = ("key", "method", "ipc", "parent", "seconds", *PROTOCOLS, "bytes", "samples")
COLUMN_LABELS = {"key": "Run", "method": "Method", "ipc": "IPC", "parent": "Parent", "seconds": "Time (s)",
                 "hard": "Hard %", "soft": "Soft %", "autopalette": "AutoPalette %", "bytes": "Bytes", "samples": "Samples"}
REFERENCE_COLOR = "#a0a0a0"
REFERENCES = (("random", "random reference"), ("full", "whole source split"))


# --------------------------------------------------------------------------- all runs


def _accuracy(results: dict, protocol: str) -> Optional[float]:
    evaluation = (results.get("evaluation") or {}).get(protocol)
    return None if not evaluation else round(100 * evaluation["mean"], 2)


RunOrKey = Union[str, RunRecord]


def load_runs(dataset: fo.Dataset) -> list[RunRecord]:
    """Every run of the dataset, loaded once for the functions below that take ``runs``."""
    return [api.load_run(dataset, key) for key in api.list_runs(dataset)]


def record_of(dataset: fo.Dataset, run: RunOrKey) -> RunRecord:
    """A run given by key, or already loaded (so one report reads it once)."""
    return run if isinstance(run, RunRecord) else api.load_run(dataset, run)


def run_rows(dataset: fo.Dataset, runs: Optional[list[RunRecord]] = None) -> list[dict]:
    """One row per run: key, method, IPC, parent run, time (s), accuracy (%) under each protocol, bytes, samples."""
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
            **{protocol: _accuracy(results, protocol) for protocol in PROTOCOLS},
            "bytes": results.get("bytes"),
            "samples": results.get("num_samples"),
        })
    return rows


def visible_columns(rows: list[dict]) -> list[str]:
    """The columns worth showing: the run key, and every other column some row has a value in."""
    return [column for column in COLUMNS if column == "key" or any(row.get(column) not in (None, "") for row in rows)]


def method_label(config: dict) -> str:
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
        by_method.setdefault(method_label(run.config), []).append(
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


def evaluation_of(results: dict, protocol: Optional[str]) -> tuple[Optional[str], Optional[dict]]:
    evaluations = results.get("evaluation") or {}
    for name in ([protocol] if protocol else PROTOCOLS):
        if evaluations.get(name):
            return name, evaluations[name]
    return None, None


RunOrEvaluation = Union[str, RunRecord, dict]


def _run_evaluation(dataset: fo.Dataset, run: RunOrEvaluation,
                    protocol: Optional[str]) -> tuple[str, dict, Optional[dict]]:
    """(name, config, evaluation) of a run (key or record), or of an evaluation ``api.evaluate``
    returned for a view without a run (named "condensed set")."""
    if isinstance(run, dict):
        return "condensed set", {}, run if run.get("per_class") else None
    run = record_of(dataset, run)
    return run.key, run.config, evaluation_of(run.results, protocol)[1]


def evaluation_classes(dataset: fo.Dataset, evaluation: dict, config: Optional[dict] = None) -> list[str]:
    """The class names of an evaluation's ``per_class`` entries (in their order): the ones it
    recorded, else its run's, else the dataset's classes for its label field (indices if none fit)."""
    config = config or {}
    count = len(evaluation.get("per_class") or [])
    for names in (evaluation.get("classes"), config.get("classes")):
        if names and len(names) == count:
            return list(names)
    names = class_names(dataset, evaluation.get("label_field") or config.get("label_field") or DEFAULT_LABEL_FIELD)
    return names if len(names) == count else [str(i) for i in range(count)]


def _percent(value) -> Optional[float]:
    """An accuracy as %, one decimal; None where missing (a class without test images is NaN)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(100 * value, 1)


def per_class_traces(dataset: fo.Dataset, run: RunOrEvaluation, protocol: Optional[str] = None) -> list[dict]:
    """Grouped Plotly bars of a run's per-class test accuracy (%), beside its random and whole-split
    references when the evaluation has them; empty when the run is not evaluated (``protocol``:
    ``hard``/``soft``, default the first one present)."""
    name, config, evaluation = _run_evaluation(dataset, run, protocol)
    if not evaluation:
        return []
    classes = evaluation_classes(dataset, evaluation, config)
    traces = []
    for label, result in ((name, evaluation), *((label, evaluation.get(key)) for key, label in REFERENCES)):
        if result and len(result.get("per_class") or []) == len(classes):
            traces.append({"type": "bar", "name": label, "x": classes,
                           "y": [_percent(accuracy) for accuracy in result["per_class"]]})
    return traces


def per_class_rows(dataset: fo.Dataset, run: RunOrEvaluation, protocol: Optional[str] = None) -> list[dict]:
    """A run's per-class test accuracy (%) beside its references, worst class first.

    One row per class: ``{"class", "accuracy", "random", "full", "vs_random"}`` (the run, the
    random subset of the same size, the whole source split, and run minus random, in points;
    None where the evaluation has no such reference). Sorted by ``vs_random`` when the random
    reference is there (largest loss first), else by accuracy (lowest first). ``run``: a run key,
    a loaded run, or the dict ``api.evaluate`` returned for a view; empty when not evaluated.
    """
    _, config, evaluation = _run_evaluation(dataset, run, protocol)
    if not evaluation:
        return []
    classes = evaluation_classes(dataset, evaluation, config)
    references = {key: (evaluation.get(key) or {}).get("per_class") for key, _ in REFERENCES}
    references = {key: values if values and len(values) == len(classes) else None for key, values in references.items()}
    rows = []
    for index, name in enumerate(classes):
        row = {"class": name, "accuracy": _percent(evaluation["per_class"][index])}
        row.update({key: _percent(values[index]) if values else None for key, values in references.items()})
        both = row["accuracy"] is not None and row["random"] is not None
        gain = evaluation["per_class"][index] - references["random"][index] if both else None
        row["vs_random"] = None if gain is None else round(100 * gain, 1)
        rows.append(row)
    by = "vs_random" if references["random"] else "accuracy"
    return sorted(rows, key=lambda row: (row[by] is None, row[by] or 0.0, row["accuracy"] or 0.0))


def _class_text(row: dict) -> str:
    references = [f"{label} {row[key]:.0f}%" for key, label in (("random", "random"), ("full", "whole split"))
                  if row.get(key) is not None]
    return f"{row['class']} {row['accuracy']:.0f}%" + (f" ({', '.join(references)})" if references else "")


def weakest_classes(rows: list[dict], count: int = 3) -> str:
    """One Markdown line naming the ``count`` weakest classes of :func:`per_class_rows`, e.g.
    "**Weakest classes** (against random): Shirt 41% (random 55%), ... · 4 of 10 classes below random"."""
    shown = [row for row in rows if row["accuracy"] is not None][:count]
    if not shown:
        return ""
    against_random = shown[0]["vs_random"] is not None
    text = f"**Weakest classes** ({'against random' if against_random else 'lowest accuracy'}): "
    text += ", ".join(_class_text(row) for row in shown)
    if against_random:
        below = sum(1 for row in rows if (row["vs_random"] or 0) < 0)
        text += f" · {below} of {len(rows)} classes below random"
    return text


def per_class_markdown(rows: list[dict], limit: int = 10) -> str:
    """The worst ``limit`` rows of :func:`per_class_rows` as a Markdown table (reference columns only
    where the evaluation has them)."""
    if not rows:
        return ""
    columns = [("accuracy", "run %"), ("random", "random %"), ("full", "whole split %"), ("vs_random", "vs random")]
    columns = [(key, label) for key, label in columns if any(row[key] is not None for row in rows)]
    lines = ["| class | " + " | ".join(label for _, label in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for row in rows[:limit]:
        cells = ["–" if row[key] is None else (f"{row[key]:+.1f}" if key == "vs_random" else f"{row[key]:.1f}")
                 for key, _ in columns]
        lines.append(f"| {row['class']} | " + " | ".join(cells) + " |")
    if len(rows) > limit:
        lines.append(f"\n… and {len(rows) - limit} more classes (all in the bars above)")
    return "\n".join(lines)
