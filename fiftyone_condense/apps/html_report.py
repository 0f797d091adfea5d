"""A dataset's condensation runs as one self-contained HTML file: ``fc.report(dataset, path)``.

What a curator shares or archives: every run with its settings, accuracy against images per class
beside the random subset and the whole split, per-class accuracy, the DD-Ranking scores, bytes on
disk and a grid of each run's images. Plots and thumbnails are PNG ``data:`` URLs and the style is
inline, so the file opens offline, anywhere, with nothing beside it. The numbers come from
:mod:`.reports` and :mod:`.run_details` (what the panel shows); this module lays them out.

    import fiftyone_condense as fc

    fc.report(dataset, "condensation.html")   # returns the path written
"""

from __future__ import annotations

import contextlib
import datetime
import html
import io
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator, Optional, Union

import fiftyone as fo
from matplotlib.figure import Figure

from .. import __version__
from ..algorithms.errors import CondensationError
from ..bridge.records import SYNTHETIC_TAG
from ..bridge.views import media_dir_beside
from . import reports, run_details
from .reports import RunRecord

REPORT_NAME = "report.html"  # a run key is an identifier, so no run's media folder has this name
REPORT_MODE = 0o644
LINE_STYLES = {"dot": ":", "dash": "--"}
LIST_LIMIT = 12  # items of a list setting shown (a run's classes, say) before "… (N in all)"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; } h3 { margin-top: 1.5em; }
.meta, figcaption, .note { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.number { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
table.images th { vertical-align: middle; } table.images td { background: #1e1e1e; padding: 2px; }
table.images img { image-rendering: pixelated; margin: 1px; }
details { margin: 1em 0; } summary { cursor: pointer; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


class Html(str):
    """Text that is already HTML (built here from escaped parts), so it is not escaped again."""


def report(dataset: Union[fo.Dataset, fo.DatasetView], path: Optional[Union[str, os.PathLike]] = None,
           per_class: int = 8, thumbnail_size: int = 64) -> str:
    """Write every condensation run of ``dataset`` into one self-contained HTML file; its path.

    ``path``: the file to write (its folders are made), default ``report.html`` in the folder
    beside the dataset's media where runs write theirs (``condense/<dataset>/``). An existing
    file is replaced only once the new report is whole. ``per_class``: images of each run shown
    per class, at ``thumbnail_size`` pixels. A view reports the runs of its dataset. Raises
    :class:`CondensationError` when the file cannot be written.
    """
    if not isinstance(per_class, int) or per_class < 1:
        raise CondensationError(f"per_class must be a positive number of images, not {per_class!r}")
    if not isinstance(thumbnail_size, int) or thumbnail_size < 8:
        raise CondensationError(f"thumbnail_size must be at least 8 pixels, not {thumbnail_size!r}")
    if isinstance(dataset, fo.DatasetView):
        dataset = fo.load_dataset(dataset.dataset_name)
    target = Path(path).expanduser().absolute() if path is not None else default_path(dataset)
    if target.is_dir():
        raise CondensationError(f"{target} is a folder: give the report a file name, e.g. {target / REPORT_NAME}")
    with _replacing(target) as file:
        text = report_html(dataset, per_class, thumbnail_size)
        try:
            file.write(text)
        except OSError as error:
            raise _unwritable(target, error) from error
    return str(target)


def default_path(dataset: fo.Dataset) -> Path:
    """``<parent of the media>/condense/<dataset>/report.html``, beside the runs' own media folders."""
    return media_dir_beside(dataset.match_tags(SYNTHETIC_TAG, bool=False), REPORT_NAME)


@contextlib.contextmanager
def _replacing(target: Path) -> Iterator[IO[str]]:
    """A temporary file beside ``target``, opened before the report is built (an unwritable place
    fails at once) and moved onto ``target`` when the block ends well (no half-written report)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        file = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=target.parent, prefix=f".{target.name}.",
                                           suffix=".tmp", delete=False)
    except OSError as error:
        raise _unwritable(target, error) from error
    try:
        with file:
            yield file
    except BaseException:
        Path(file.name).unlink(missing_ok=True)
        raise
    try:
        os.chmod(file.name, REPORT_MODE)  # a temporary file is private to its owner; a report is not
        os.replace(file.name, target)
    except OSError as error:
        Path(file.name).unlink(missing_ok=True)
        raise _unwritable(target, error) from error


def _unwritable(target: Path, error: OSError) -> CondensationError:
    reason = error.strerror or str(error)
    if error.filename and str(error.filename) != str(target):
        reason += f" ({error.filename})"
    return CondensationError(f"Cannot write the report to {target}: {reason}")


# --------------------------------------------------------------------------- the page


def report_html(dataset: fo.Dataset, per_class: int = 8, thumbnail_size: int = 64) -> str:
    """The report as one HTML document (what :func:`report` writes; ``IPython.display.HTML`` shows it)."""
    runs = reports.load_runs(dataset)
    parts = [_header(dataset, runs)]
    if runs:
        parts += [_runs_section(dataset, runs), _accuracy_section(dataset, runs), _scores_section(runs)]
        parts += [_run_section(dataset, run, per_class, thumbnail_size) for run in runs]
    else:
        parts.append(_p("No condensation runs on this dataset yet: make one with fc.select, fc.distill or "
                        "fc.compensate (or the App's operators), then write the report again.", "note"))
    title = f"Condensation report: {dataset.name}"
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{_text(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(parts) + "\n</body>\n</html>\n")


def _header(dataset: fo.Dataset, runs: list[RunRecord]) -> str:
    written = datetime.datetime.now().isoformat(sep=" ", timespec="seconds")
    meta = (f"{len(dataset)} samples · {len(runs)} condensation run{'s' if len(runs) != 1 else ''} · "
            f"written {written} by fiftyone-condense {__version__}")
    contents = ""
    if runs:
        links = " · ".join(_run_link(run.key) for run in runs)
        contents = f'<p>Runs: {links}</p>'
    return f"<h1>Condensation report: {_text(dataset.name)}</h1>\n{_p(meta, 'meta')}\n{contents}"


def _runs_section(dataset: fo.Dataset, runs: list[RunRecord]) -> str:
    rows = reports.run_rows(dataset, runs)
    columns = reports.visible_columns(rows)
    cells = [[_run_link(row["key"]) if column == "key"
              else _bytes(row[column]) if column == "bytes" else row[column] for column in columns] for row in rows]
    return "<h2>Runs</h2>\n" + _table([reports.COLUMN_LABELS[column] for column in columns], cells,
                                      numbers=(columns.index("bytes"),) if "bytes" in columns else ())


def _accuracy_section(dataset: fo.Dataset, runs: list[RunRecord]) -> str:
    figures = reports.accuracy_figures(dataset, runs)
    parts = ["<h2>Accuracy against images per class</h2>"]
    if not figures:
        parts.append(_p("No run is evaluated yet: fc.evaluate(run_key=..., dataset=...) trains models on a run's "
                        "images and tests them beside a random subset of the same size (and, with include_full=True, "
                        "the whole source split).", "note"))
    for protocol, traces in figures.items():
        png = plot_png(traces, f"{protocol.capitalize()}-protocol test accuracy", "images per class (IPC)",
                       "test accuracy %")
        parts.append(_figure(png, f"{protocol} protocol: one line per method (mean ± std over the trained "
                                  "models), the random subset of the same size dotted, the whole source split dashed"))
    return "\n".join(parts)


def _scores_section(runs: list[RunRecord]) -> str:
    rows = []
    for run in runs:
        for protocol, evaluation in (run.results.get("evaluation") or {}).items():
            scores = (evaluation or {}).get("scores")
            if scores:
                rows.append([_run_link(run.key), protocol,
                             _mean_std(scores["hlr_mean"], scores["hlr_std"]),
                             _mean_std(scores["ior_mean"], scores["ior_std"], sign=True),
                             _mean_std(scores["lrs_mean"], scores["lrs_std"], spec=".4g"), scores.get("runs")])
    parts = ["<h2>DD-Ranking scores</h2>",
             _p("HLR = whole split − condensed set (points, lower is better), IOR = condensed set − random subset "
                "(points, higher is better), LRS = DD-Ranking's label-robust score of the two (higher is better); "
                "mean ± std over the trained models.", "note")]
    if rows:
        parts.append(_table(["Run", "Protocol", "HLR", "IOR", "LRS", "Models"], rows, numbers=(2, 3, 4)))
    else:
        parts.append(_p("No run has them yet: they need an evaluation with both references "
                        "(fc.evaluate(..., include_full=True)).", "note"))
    return "\n".join(parts)


# --------------------------------------------------------------------------- one run


def _run_section(dataset: fo.Dataset, run: RunRecord, per_class: int, cell: int) -> str:
    """A run's summary, images, evaluation, per-class accuracy, bytes on disk and settings."""
    made = f"made {run.timestamp:%Y-%m-%d %H:%M}" if run.timestamp else ""
    parts = [f'<h2 id="{_run_anchor(run.key)}">{_text(run.key)}</h2>',
             f"<p>{_inline_markdown(run_details.run_summary(run))}</p>", _p(made, "meta") if made else ""]
    if run.view is None:
        parts.append(_p(f"Its saved view condense-{run.key} is gone: no images or bytes on disk to show.", "note"))
    else:
        parts.append(_images_part(dataset, run, per_class, cell))
    evaluations = [(protocol, evaluation) for protocol, evaluation in (run.results.get("evaluation") or {}).items()
                   if evaluation]
    if evaluations:
        parts += ["<h3>Evaluation</h3>", _evaluation_table(evaluations), _per_class_part(dataset, run)]
    if run.view is not None:
        parts.append(_storage_part(dataset, run))
    settings = _settings_rows(run.config)
    parts.append(f"<details><summary><strong>Settings</strong> ({len(settings)}: method, budget, parameters, seed, "
                 f"versions…)</summary>\n{_table(['Setting', 'Value'], settings)}\n</details>")
    return "\n".join(part for part in parts if part)


def _settings_rows(config: dict) -> list[list]:
    """A run's config as ``[setting, value]`` rows, one level of nesting as ``parent.child`` (deeper
    dicts, such as the images per class, on one line); empty settings left out."""
    rows = []
    for key, value in config.items():
        if key == "plugin" or _empty(value):
            continue
        if isinstance(value, dict):
            rows += [[f"{key}.{name}", _short(item)] for name, item in value.items() if not _empty(item)]
        else:
            rows.append([key, _short(value)])
    return rows


def _empty(value) -> bool:
    return value is None or (isinstance(value, (str, list, tuple, dict)) and not value)


def _short(value) -> str:
    """A setting's value on one line, a long list or dict cut after ``LIST_LIMIT`` items."""
    if isinstance(value, dict):
        items = [f"{name} {_short(item)}" for name, item in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [_short(item) for item in value]
    else:
        return str(value)
    return ", ".join(items[:LIST_LIMIT]) + (f", … ({len(items)} in all)" if len(items) > LIST_LIMIT else "")


def _evaluation_table(evaluations: list[tuple[str, dict]]) -> str:
    rows = []
    for protocol, evaluation in evaluations:
        references = [_accuracy(evaluation.get(key)) for key in ("random", "full")]
        settings = {**(evaluation.get("protocol") or {}), "trained_on": evaluation.get("trained_on"),
                    "test_split": evaluation.get("eval_split")}
        rows.append([protocol, _accuracy(evaluation), *references,
                     " · ".join(f"{key} {_short(value)}" for key, value in settings.items()
                                if key != "name" and not _empty(value))])
    return _table(["Protocol", "Accuracy %", "Random subset %", "Whole split %", "Settings"], rows, numbers=(1, 2, 3))


def _accuracy(result: Optional[dict]) -> Optional[str]:
    return _mean_std(100 * result["mean"], 100 * result["std"]) if result else None


def _per_class_part(dataset: fo.Dataset, run: RunRecord) -> str:
    protocol, _ = reports.evaluation_of(run.results, None)
    rows = reports.per_class_rows(dataset, run, protocol)
    if not rows:
        return ""
    traces = reports.per_class_traces(dataset, run, protocol)
    png = plot_png(traces, f"Per-class test accuracy ({protocol} protocol)", "class", "accuracy %")
    labels = {"accuracy": "This run %", "random": "Random subset %", "full": "Whole split %", "vs_random": "vs random"}
    columns = [key for key in labels if any(row[key] is not None for row in rows)]
    table = _table(["Class", *(labels[key] for key in columns)],
                   [[row["class"], *(_signed(row[key]) if key == "vs_random" else row[key] for key in columns)]
                    for row in rows], numbers=tuple(range(1, len(columns) + 1)))
    return "\n".join([f"<h3>Per-class accuracy ({_text(protocol)} protocol), worst first</h3>",
                      _figure(png, "the run beside its references, per class"), table])


def _storage_part(dataset: fo.Dataset, run: RunRecord) -> str:
    rows = [[row["what"], _bytes(row["bytes"]), row["images"], _bytes(row["per_image"])]
            for row in run_details.storage_report(dataset, run)]
    return "<h3>Bytes on disk</h3>\n" + _table(["What", "Bytes", "Images", "Per image"], rows, numbers=(1, 2, 3))


def _images_part(dataset: fo.Dataset, run: RunRecord, per_class: int, cell: int) -> str:
    by_class = run_details.images_by_class(dataset, run, per_class)
    if not by_class:
        return "<h3>Images</h3>\n" + _p("The run has no images with a label.", "note")
    rows = []
    for name, paths in by_class:
        images = "".join(
            f'<img src="{run_details.data_url(run_details.png(run_details.thumbnail(path, cell)))}" width="{cell}" '
            f'height="{cell}" alt="{_text(name)}" title="{_text(os.path.basename(path))}">' for path in paths)
        rows.append(f"<tr><th>{_text(name)}</th><td>{images}</td></tr>")
    caption = f"Up to {per_class} of the run's images per class (a file's name on hover)."
    classes = run.config.get("classes") or []
    if len(classes) > len(by_class):
        caption += f" {len(by_class)} of its {len(classes)} classes shown."
    return f'<h3>Images</h3>\n{_p(caption, "note")}\n<table class="images">\n' + "\n".join(rows) + "\n</table>"


# --------------------------------------------------------------------------- plots


def plot_png(traces: list[dict], title: str, xlabel: str, ylabel: str) -> bytes:
    """A PNG of Plotly-style traces from :mod:`.reports` (lines with error bars, grouped bars), drawn
    with matplotlib so the report needs no JavaScript."""
    figure = Figure(figsize=(8, 4.2), dpi=100, layout="constrained")
    axes = figure.subplots()
    bars = [trace for trace in traces if trace.get("type") == "bar"]
    for trace in traces:
        if trace.get("type") != "bar":
            _draw_line(axes, trace)
    if bars:
        _draw_bars(axes, bars)
    axes.set_title(_plain(title))
    axes.set_xlabel(_plain(xlabel))
    axes.set_ylabel(_plain(ylabel))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _draw_line(axes, trace: dict) -> None:
    line = trace.get("line") or {}
    errors = (trace.get("error_y") or {}).get("array")
    axes.errorbar(trace["x"], trace["y"], yerr=errors, label=_plain(trace["name"]), color=line.get("color"),
                  linestyle=LINE_STYLES.get(line.get("dash"), "-"),
                  marker="o" if "markers" in trace.get("mode", "") else None, capsize=3)


def _draw_bars(axes, bars: list[dict]) -> None:
    classes = bars[0]["x"]
    width = 0.8 / len(bars)
    for index, trace in enumerate(bars):
        offset = (index - (len(bars) - 1) / 2) * width
        heights = [float("nan") if value is None else value for value in trace["y"]]
        axes.bar([position + offset for position in range(len(classes))], heights, width, label=_plain(trace["name"]))
    axes.set_xticks(range(len(classes)), [_plain(name) for name in classes], rotation=30 if len(classes) > 5 else 0,
                    ha="right" if len(classes) > 5 else "center")


def _plain(text) -> str:
    """Text matplotlib draws as written (a ``$`` would start mathtext)."""
    return str(text).replace("$", r"\$")


# --------------------------------------------------------------------------- HTML pieces


def _text(value) -> str:
    """A value as HTML text, escaped (``–`` for nothing), unless it is already :class:`Html`."""
    if isinstance(value, Html):
        return value
    return "–" if value is None or value == "" else html.escape(str(value), quote=True)


def _p(text: str, css_class: str = "") -> str:
    return f'<p class="{css_class}">{_text(text)}</p>' if css_class else f"<p>{_text(text)}</p>"


def _table(header: list[str], rows: list[list], numbers: tuple[int, ...] = ()) -> str:
    """A table, each cell escaped; numbers (and the columns ``numbers`` of formatted ones) right-aligned."""
    head = "".join(f"<th>{_text(cell)}</th>" for cell in header)
    body = "\n".join("<tr>" + "".join(
        f'<td class="number">{_text(cell)}</td>' if isinstance(cell, (int, float)) or column in numbers
        else f"<td>{_text(cell)}</td>" for column, cell in enumerate(row)) + "</tr>" for row in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}\n</table>"


def _figure(png: bytes, caption: str) -> str:
    return (f'<figure><img src="{run_details.data_url(png)}" alt="{_text(caption)}">'
            f"<figcaption>{_text(caption)}</figcaption></figure>")


def _inline_markdown(text: str) -> Html:
    """The panel's one-line Markdown summaries (bold in double asterisks, code in backquotes) as escaped HTML."""
    escaped = html.escape(text, quote=True)
    parts = escaped.split("**")
    escaped = "".join(f"<strong>{part}</strong>" if index % 2 else part for index, part in enumerate(parts))
    parts = escaped.split("`")
    return Html("".join(f"<code>{part}</code>" if index % 2 else part for index, part in enumerate(parts)))


def _run_anchor(run_key: str) -> str:
    return html.escape(f"run-{run_key}", quote=True)


def _run_link(run_key: str) -> Html:
    return Html(f'<a href="#{_run_anchor(run_key)}">{_text(run_key)}</a>')


def _bytes(size: Optional[int]) -> Optional[str]:
    return None if size is None else run_details.human_size(size)


def _signed(points: Optional[float]) -> Optional[str]:
    return None if points is None else f"{points:+.1f}"


def _mean_std(mean: float, std: float, spec: str = ".1f", sign: bool = False) -> str:
    return f"{mean:{'+' if sign else ''}{spec}} ± {std:{spec}}"
