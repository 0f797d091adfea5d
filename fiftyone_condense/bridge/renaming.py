"""Renaming a run, journalled: after a kill at any write the dataset shows the old name or the new, never a mix.

A rename holds the claims of both keys. Its first write records on the old key's entry (phase
``renaming``) the old and new key, the run's record and the scores field that follows the name;
from then on it only ever goes forward: each step below looks at what is there and moves what still
carries the old name, so :func:`finish_rename` (recovery, or the next writer of the dataset) simply
runs them all again. Killed before that first write, nothing was moved and the run keeps its old
name. FiftyOne's own ``dataset.rename_run`` calls the same steps (:func:`move_outputs`) through the
run class, unjournalled, and then re-keys the record itself.
"""

from __future__ import annotations

import datetime
from typing import Callable, Optional

import fiftyone as fo
import fiftyone.core.odm as foo

from .journal import Entry, close, dataset_document, journal_collection, wrote
from .records import PLUGIN, RUN_FIELD, SYNTHETIC_TAG, run_config, run_tag, saved_view_name, scores_field_name

REFERENCES = ("parent", "init")  # config attributes by which a run names another (its selection, its init)


def rename(entry: Entry, new_key: str) -> None:
    """Rename the run of the claimed ``entry.key`` to ``new_key`` (claimed too by the caller)."""
    entry.note(**plan(entry.dataset, entry.key, new_key))
    for step in steps(entry.dataset, journal_collection().find_one({"_id": entry.id})):
        step()
        wrote()
    entry.close()


def finish_rename(dataset: fo.Dataset, entry: dict) -> list[str]:
    """Complete a rename cut short (every step again: those done change nothing), then close its entry."""
    dataset.reload()  # another process wrote it
    for step in steps(dataset, entry):
        step()
        wrote()
    close(entry["_id"])
    return [f"renamed run {entry['run_key']!r} to {entry['new_key']!r}"]


def plan(dataset: fo.Dataset, key: str, new_key: str) -> dict:
    """What the rename will change, recorded before its first change."""
    record = foo.get_db_conn().datasets.find_one({"_id": dataset._doc.id}, {"runs": 1})["runs"][key]
    scores = run_config(dataset, key).get("scores_field")
    follows = scores is not None and scores == scores_field_name(True, key)
    return {"phase": "renaming", "run_key": key, "new_key": new_key, "run": record,
            "scores": [scores, scores_field_name(True, new_key)] if follows else None}


def steps(dataset: fo.Dataset, entry: dict) -> list[Callable[[], None]]:
    """The rename's writes in order, each idempotent; the record is re-keyed last."""
    key, new_key, scores = entry["run_key"], entry["new_key"], entry.get("scores")
    return [*outputs_steps(dataset, key, new_key, scores),
            lambda: _rename_scores_config(entry["run"], scores),
            lambda: _rekey_record(entry["run"], key, new_key),
            lambda: _rekey_dataset(dataset, key, new_key)]


def outputs_steps(dataset: fo.Dataset, key: str, new_key: str, scores: Optional[list]) -> list[Callable[[], None]]:
    """Moving what carries the run's name on the samples and the dataset (the record aside)."""
    return [lambda: dataset.match_tags(run_tag(key)).tag_samples(run_tag(new_key)),
            lambda: dataset.match_tags(run_tag(key)).untag_samples(run_tag(key)),
            lambda: _move_run_field(dataset, key, new_key),
            lambda: _move_view(dataset, key, new_key),
            lambda: _move_references(dataset, key, new_key),
            lambda: _rename_scores_field(dataset, scores)]


def move_outputs(dataset: fo.Dataset, key: str, new_key: str) -> None:
    """What FiftyOne's ``dataset.rename_run`` has the run class do before it re-keys the record itself."""
    scores = plan(dataset, key, new_key)["scores"]
    for step in outputs_steps(dataset, key, new_key, scores):
        step()
    run = foo.get_db_conn().datasets.find_one({"_id": dataset._doc.id}, {"runs": 1})["runs"][key]
    _rename_scores_config(run, scores)
    dataset.reload()  # FiftyOne re-keys the record from the dataset's document in memory


def _move_run_field(dataset: fo.Dataset, key: str, new_key: str) -> None:
    """The run's synthetic samples say which run made them (``condense_run``)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    dataset._sample_collection.update_many({"tags": SYNTHETIC_TAG, RUN_FIELD: key},
                                           {"$set": {RUN_FIELD: new_key, "last_modified_at": now}})


def _move_view(dataset: fo.Dataset, key: str, new_key: str) -> None:
    """The saved view ``condense-<new_key>`` of the run's outputs, then the old one gone."""
    with dataset_document(dataset):
        if not dataset.has_saved_view(saved_view_name(new_key)):
            dataset.save_view(saved_view_name(new_key), dataset.match_tags(run_tag(new_key)))
        if dataset.has_saved_view(saved_view_name(key)):
            dataset.delete_saved_view(saved_view_name(key))


def _move_references(dataset: fo.Dataset, key: str, new_key: str) -> None:
    """Other runs of the dataset that name the run (a compensation's parent, a distillation's init)."""
    runs = foo.get_db_conn().runs
    for reference in REFERENCES:
        runs.update_many({"_dataset_id": dataset._doc.id, "config.plugin": PLUGIN, f"config.{reference}": key},
                         {"$set": {f"config.{reference}": new_key}})


def _rename_scores_field(dataset: fo.Dataset, scores: Optional[list]) -> None:
    """A scores field named after the run (``condense_scores_<key>``) follows it; one of the user's keeps its name."""
    if not scores:
        return
    old, new = scores
    with dataset_document(dataset):
        if dataset.has_sample_field(old) and not dataset.has_sample_field(new):
            dataset.rename_sample_field(old, new)


def _rename_scores_config(run, scores: Optional[list]) -> None:
    if scores:
        foo.get_db_conn().runs.update_one({"_id": run, "config.scores_field": scores[0]},
                                          {"$set": {"config.scores_field": scores[1]}})


def _rekey_record(run, key: str, new_key: str) -> None:
    """The record's own document names its key too."""
    foo.get_db_conn().runs.update_one({"_id": run, "key": key}, {"$set": {"key": new_key}})


def _rekey_dataset(dataset: fo.Dataset, key: str, new_key: str) -> None:
    """The dataset lists the record under the new key (one atomic change of its document)."""
    with dataset_document(dataset):
        foo.get_db_conn().datasets.update_one({"_id": dataset._doc.id, f"runs.{key}": {"$exists": True}},
                                              {"$rename": {f"runs.{key}": f"runs.{new_key}"}})
    dataset.reload()
