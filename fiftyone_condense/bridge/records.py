"""Condensation runs as FiftyOne runs: typed configs, and a run class that cleans up after itself.

A run ``key`` leaves: a FiftyOne run record (config + results), the tag ``condense:<key>`` on
its output samples, the saved view ``condense-<key>``, and for compensation and distillation
new samples (tags ``condense:<key>`` and ``synthetic``, field ``condense_run``) with media on
disk. Each kind has its own config class (:class:`SelectionRunConfig`,
:class:`CompensationRunConfig`, :class:`DistillationRunConfig`) paired by FiftyOne's naming
rule with a run class whose :meth:`~CondensationRun.cleanup`, :meth:`~CondensationRun.rename`
and :meth:`~CondensationRun.get_fields` keep FiftyOne's own ``dataset.delete_run()``,
``delete_runs()`` and ``rename_run()`` consistent with :func:`fiftyone_condense.delete_run`, which
is :func:`delete`: the same removal, journalled under the key's claim so that one cut short is
completed by recovery.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import fiftyone as fo
import fiftyone.core.odm as foo
import gridfs
from bson import ObjectId, json_util
from fiftyone.core.runs import Run, RunConfig, RunResults

from ..algorithms.errors import CondensationError
from .journal import Entry, close, dataset_document, wrote

logger = logging.getLogger(__name__)
PLUGIN = "fiftyone-condense"
SYNTHETIC_TAG = "synthetic"
RUN_FIELD = "condense_run"
SOURCES_FIELD = "condense_sources"
FLOATS_FIELD = "condense_floats"  # a distilled image's float pixels (C, H, W) as optimised: its PNG is clamped and 8-bit
KINDS = ("selection", "compensation", "distillation")


def run_tag(run_key: str) -> str:
    return f"condense:{run_key}"


def saved_view_name(run_key: str) -> str:
    return f"condense-{run_key}"


SCORES_PREFIX = "condense_scores_"


def scores_field_name(scores_field, run_key: str) -> Optional[str]:
    """Where a selection writes its per-sample scores: ``True`` → ``condense_scores_<run_key>`` (a
    name that follows the run when it is renamed), a name of your own (kept), or nowhere."""
    if scores_field is None or scores_field is False:
        return None
    return f"{SCORES_PREFIX}{run_key}" if scores_field is True else str(scores_field)


# --------------------------------------------------------------------------- run classes


class CondensationRun(Run):
    """What every condensation run made, found from its key; FiftyOne calls these on delete/rename."""

    @classmethod
    def validate(cls, config):
        """Any condensation config (runs of the first version share one config class for every kind)."""
        if not isinstance(config, CondensationRunConfig):
            super().validate(config)

    def get_fields(self, samples, key):
        fields = [f for f in (getattr(self.config, "embeddings_field", None), getattr(self.config, "scores_field", None))
                  if f]
        if getattr(self.config, "kind", None) in ("compensation", "distillation"):
            fields += [self.config.label_field, RUN_FIELD, SOURCES_FIELD, FLOATS_FIELD]
        return fields

    def cleanup(self, samples, key):
        """Remove what there is of the run's synthetic samples and media, its tag and its saved view;
        what was already gone (removed by hand) is logged, not an error."""
        report = remove_outputs(samples._root_dataset, key)
        if report.missing:
            logger.warning("%s", report)

    def rename(self, samples, key, new_key):
        """Move the tag, ``condense_run`` values, saved view, scores field and other runs' references
        to ``new_key`` (FiftyOne's ``rename_run`` re-keys the record next; ``fc.rename_run`` journals it all)."""
        from .renaming import move_outputs  # renaming builds on this module

        move_outputs(samples._root_dataset, key, new_key)


class SelectionRun(CondensationRun):
    """Real samples picked per class (tagged, no new samples)."""


class CompensationRun(CondensationRun):
    """Colour-compensated copies of a selection (new samples and media)."""


class DistillationRun(CondensationRun):
    """Synthetic images optimised from real ones (new samples and media)."""


RUN_CLASSES = {"selection": SelectionRun, "compensation": CompensationRun, "distillation": DistillationRun}


class CondensationRunConfig(RunConfig):
    """Config of a condensation run; the kind's subclass says which run class handles it.

    Runs recorded before the typed configs existed were stored with this class and a ``kind``
    attribute; they load as this class and are handled by their kind's run class.
    """

    kind: Optional[str] = None

    def __init__(self, **kwargs):
        kwargs.setdefault("plugin", PLUGIN)
        if type(self).kind is not None:
            kwargs["kind"] = type(self).kind
        super().__init__(**kwargs)

    @property
    def run_cls(self):
        return RUN_CLASSES.get(getattr(self, "kind", None), CondensationRun)


class SelectionRunConfig(CondensationRunConfig):
    """A selection: method, ipc, label field, method parameters, embeddings used, seed, classes."""

    kind = "selection"


class CompensationRunConfig(CondensationRunConfig):
    """A colour compensation of the ``parent`` selection: backend, combine mode, parameters."""

    kind = "compensation"


class DistillationRunConfig(CondensationRunConfig):
    """A distillation: method, images per class, ``init``, engine settings, output folder."""

    kind = "distillation"


CONFIG_CLASSES = {"selection": SelectionRunConfig, "compensation": CompensationRunConfig,
                  "distillation": DistillationRunConfig}


def config_for(kind: str, **config) -> CondensationRunConfig:
    """The typed run config of ``kind`` holding ``config``."""
    return CONFIG_CLASSES[kind](**config)


# --------------------------------------------------------------------------- records


@dataclass
class RunRecord:
    """What :func:`load_run` returns: the run's config and results (plain data) and output view."""

    key: str
    config: dict
    results: dict
    timestamp: Optional[datetime.datetime]
    view: Optional[fo.DatasetView]

    @property
    def method(self) -> str:
        return self.config.get("method")

    @property
    def kind(self) -> str:
        return self.config.get("kind")


def list_runs(dataset: fo.Dataset, kind: Optional[str] = None) -> list[str]:
    """Keys of this plugin's runs on the dataset, optionally of one ``kind``."""
    if kind is None:
        return sorted(dataset.list_runs(plugin=PLUGIN))
    if kind not in RUN_CLASSES:
        raise CondensationError(f"Unknown run kind {kind!r}; choose one of {KINDS}")
    return sorted(dataset.list_runs(type=RUN_CLASSES[kind]))


def require_run(dataset: fo.Dataset, run_key: str) -> None:
    if run_key not in list_runs(dataset):
        raise CondensationError(f"No condensation run {run_key!r}. Runs: {list_runs(dataset) or 'none'}.")


def run_config(dataset: fo.Dataset, run_key: str) -> dict:
    """A run's config alone as plain data (cheap: no results are read)."""
    return {k: v for k, v in dataset.get_run_info(run_key).config.serialize().items() if k not in ("cls", "type")}


def load_run(dataset: fo.Dataset, run_key: str) -> RunRecord:
    require_run(dataset, run_key)
    info = dataset.get_run_info(run_key)
    results = dataset.load_run_results(run_key, cache=False)
    payload = {name: getattr(results, name) for name in results.attributes() if name != "cls"} if results else {}
    view_name = saved_view_name(run_key)
    try:
        view = dataset.load_saved_view(view_name) if dataset.has_saved_view(view_name) else None
    except ValueError as error:  # FiftyOne stamps the view it loads: gone meanwhile, the stamp fails
        raise CondensationError(f"Run {run_key!r} changed while it was read ({error}); it is being deleted or "
                                "rewritten by another process: try again when that has finished.") from None
    return RunRecord(run_key, run_config(dataset, run_key), payload, info.timestamp, view)


def save_results(entry: Entry, run_key: str, results: dict) -> None:
    """Replace a run's stored results (config and outputs stay), as FiftyOne stores them but in an
    order a kill cannot break: the ids of the new and old results files are journalled on the
    claimed ``entry``, the new results are stored, then the record points at them, then the old ones
    are deleted (FiftyOne's own save deletes the old ones first). Whichever of the two files a kill
    leaves unreferenced, recovery deletes (:func:`remove_unreferenced_results`)."""
    dataset = entry.dataset
    stored = RunResults(dataset, dataset.get_run_info(run_key).config, run_key, **results)
    db = foo.get_db_conn()
    files = gridfs.GridFS(db)
    record = db.datasets.find_one({"_id": dataset._doc.id}, {"runs": 1})["runs"][run_key]
    previous, new = db.runs.find_one({"_id": record}, {"results": 1}).get("results"), ObjectId()
    entry.note(phase="writing", results_files=[new] + ([previous] if previous else []))
    files.put(json_util.dumps(stored.serialize()).encode(), _id=new, content_type="application/json",
              condense_dataset=dataset._doc.id)  # marks the file as this plugin's, for the crash tests
    wrote()
    db.runs.update_one({"_id": record}, {"$set": {"results": new, "results_meta": dict(stored.get_meta() or {})}})
    wrote()
    if previous:
        files.delete(previous)
        wrote()
    dataset.reload()  # its run documents in memory point at the old results


def remove_unreferenced_results(file_ids: list) -> int:
    """Delete those of a journal entry's results files that no run document refers to (one stored
    before a kill kept the record from pointing at it, or one a kill kept from being deleted)."""
    db = foo.get_db_conn()
    files = gridfs.GridFS(db)
    referenced = {d["results"] for d in db.runs.find({"results": {"$in": file_ids}}, {"results": 1})}
    gone = [file_id for file_id in file_ids if file_id not in referenced and files.exists(file_id)]
    for file_id in gone:
        files.delete(file_id)
    return len(gone)


def synthetic_samples(dataset: fo.Dataset, run_key: str) -> fo.DatasetView:
    """The samples a run created (distilled or colour-compensated images)."""
    if not dataset.has_sample_field(RUN_FIELD):
        return dataset.limit(0)
    return dataset.match_tags(SYNTHETIC_TAG).match({RUN_FIELD: run_key})


def remove_files(paths: list[Path]) -> None:
    """Delete files that are there, then their folders left empty."""
    for path in paths:
        Path(path).unlink(missing_ok=True)
    for folder in {Path(p).parent for p in paths}:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def remove_empty_folders(folders: list[str]) -> None:
    """Delete those of ``folders`` that are empty, the deepest first (a run's media folders and the
    parents it had to make)."""
    for folder in sorted(folders, key=len, reverse=True):
        if os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)


# --------------------------------------------------------------------------- deleting


@dataclass
class DeleteReport:
    """What deleting a run removed, and what it expected but found already gone (removed by hand)."""

    run_key: str
    samples: int = 0
    media: int = 0
    untagged: int = 0
    saved_view: bool = False
    record: bool = False
    scores_field: Optional[str] = None
    missing: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        removed = [f"{self.samples} synthetic samples", f"{self.media} media files", f"its tag on {self.untagged} samples"]
        removed += ["its saved view"] * self.saved_view + [f"its scores field {self.scores_field!r}"] * bool(self.scores_field)
        removed += ["its record"] * self.record
        text = f"Deleted run {self.run_key!r}: {', '.join(removed)}."
        return text + (f" Already gone: {'; '.join(self.missing)}." if self.missing else "")


def delete(entry: Entry) -> DeleteReport:
    """Delete the run of the claimed key, journalled first as a deletion: one cut short (by an
    exception or a killed process) is completed by recovery (:func:`finish_deletion`)."""
    require_run(entry.dataset, entry.key)
    entry.note(phase="deleting")
    report = remove_run(entry.dataset, entry.key)
    entry.close()
    return report


def finish_deletion(dataset: fo.Dataset, entry: dict) -> list[str]:
    """Complete a deletion cut short (what is left of the run is removed), then close its entry."""
    dataset.reload()  # another process wrote it
    report = remove_run(dataset, entry["key"])
    close(entry["_id"])
    return [str(report)]


def remove_run(dataset: fo.Dataset, run_key: str) -> DeleteReport:
    """Remove a run's outputs, then its record: whatever of them is there (idempotent)."""
    report = remove_outputs(dataset, run_key)
    dataset.reload()
    if run_key in dataset.list_runs():
        Run.delete_run(dataset, run_key, cleanup=False)
        wrote()
        report.record = True
    else:
        report.missing.append("the run record")
    return report


def delete_run_documents(query: dict) -> int:
    """Delete this plugin's run documents matching ``query`` and their stored results (a replaced or
    undone run's record, which the dataset no longer lists)."""
    db = foo.get_db_conn()
    files = gridfs.GridFS(db)
    documents = list(db.runs.find({**query, "config.plugin": PLUGIN}, {"results": 1}))
    for document in documents:
        if document.get("results"):
            files.delete(document["results"])
        db.runs.delete_one({"_id": document["_id"]})
    return len(documents)


def remove_outputs(dataset: fo.Dataset, run_key: str) -> DeleteReport:
    """Remove what is there of a run's outputs — media files, synthetic samples, tag, saved view, the
    synthetic fields once unused — and say what was expected but already gone."""
    report = DeleteReport(run_key)
    config, results = _recorded(dataset, run_key)
    _remove_synthetic(dataset, run_key, config, results, report)
    selection = config.get("kind") == "selection"
    _remove_tag(dataset, run_key, selection, report)
    produced, expected = (report.untagged if selection else report.samples), results.get("num_samples")
    if expected is not None and produced < expected:
        what = "selected samples no longer carried the tag" if selection else "synthetic samples"
        report.missing.append(f"{expected - produced} of its {expected} {what} (deleted by hand)")
    _remove_view(dataset, run_key, report)
    _remove_scores(dataset, config.get("scores_field"), report)
    return report


def _remove_scores(dataset: fo.Dataset, field: Optional[str], report: "DeleteReport") -> None:
    if not field:
        return
    with dataset_document(dataset):
        present = dataset.has_sample_field(field)
        if present:
            dataset.delete_sample_field(field)
    if present:
        report.scores_field = field
        wrote()
    else:
        report.missing.append(f"the scores field {field!r} (deleted or renamed by hand)")


def _remove_synthetic(dataset: fo.Dataset, run_key: str, config: dict, results: dict, report: DeleteReport) -> None:
    """The run's media files (before their samples, so a deletion cut short still finds them), with
    those of samples deleted by hand and the folders the run made, then its samples."""
    synthetic = synthetic_samples(dataset, run_key)
    paths = [Path(p) for p in synthetic.values("filepath")]
    strays = _unreferenced_files(dataset, config.get("output_dir"), paths)
    absent = [path for path in paths if not path.exists()]
    remove_files(paths + strays)
    remove_empty_folders(results.get("new_folders", []))
    wrote()
    report.media = len(paths) - len(absent) + len(strays)
    if absent:
        report.missing.append(f"{len(absent)} media files (e.g. {absent[0]})")
    if paths:
        dataset.delete_samples(synthetic)
        wrote()
    report.samples = len(paths)
    with dataset_document(dataset):
        if dataset.has_sample_field(RUN_FIELD) and not len(dataset.exists(RUN_FIELD)):
            dataset.delete_sample_fields([f for f in (RUN_FIELD, SOURCES_FIELD, FLOATS_FIELD)
                                          if dataset.has_sample_field(f)])


def _remove_tag(dataset: fo.Dataset, run_key: str, selection: bool, report: DeleteReport) -> None:
    tagged = dataset.match_tags(run_tag(run_key))
    report.untagged = len(tagged) if selection else 0
    tagged.untag_samples(run_tag(run_key))
    wrote()


def _remove_view(dataset: fo.Dataset, run_key: str, report: DeleteReport) -> None:
    name = saved_view_name(run_key)
    with dataset_document(dataset):
        report.saved_view = dataset.has_saved_view(name)
        if report.saved_view:
            dataset.delete_saved_view(name)
    if report.saved_view:
        wrote()
    else:
        report.missing.append(f"the saved view {name!r} (renamed or deleted by hand; a renamed view is left as it is)")


def _recorded(dataset: fo.Dataset, run_key: str) -> tuple[dict, dict]:
    """A run's config and results, when its record is there."""
    if run_key not in dataset.list_runs():
        return {}, {}
    results = dataset.load_run_results(run_key, cache=False)
    stored = {name: getattr(results, name) for name in results.attributes() if name != "cls"} if results else {}
    return run_config(dataset, run_key), stored


def _unreferenced_files(dataset: fo.Dataset, folder: Optional[str], known: list[Path]) -> list[Path]:
    """Files left in a run's own output folder that no sample of the dataset refers to (their samples
    were deleted by hand)."""
    if not folder or not os.path.isdir(folder):
        return []
    candidates = {str(p) for p in Path(folder).iterdir() if p.is_file()} - {str(p) for p in known}
    referenced = set(dataset.match(fo.ViewField("filepath").is_in(sorted(candidates))).values("filepath"))
    return [Path(p) for p in sorted(candidates - referenced)]
