"""Recovery from the journal: undo a run whose writer is gone, or finish one that had committed.

Every step reads what the journal entry recorded (never the writer's memory) and is safe to repeat,
so a recovery that is itself interrupted is simply run again by the next call. The same
:func:`roll_back` undoes a run that fails with an exception in its own process.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import fiftyone as fo
import fiftyone.core.odm as foo
import gridfs
from bson import ObjectId, json_util
from pymongo import UpdateOne

from . import journal
from .journal import Writer
from .records import (
    PLUGIN, RUN_FIELD, SYNTHETIC_TAG, DeleteReport, remove_empty_folders, remove_files, remove_run, run_tag,
    saved_view_name,
)

logger = logging.getLogger(__name__)


@dataclass
class Recovered:
    """What recovery did with one journal entry."""

    key: str
    action: str  # "rolled back", "completed", "left alone"
    why: str
    steps: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        steps = f": {'; '.join(self.steps)}" if self.steps else ""
        return f"{self.key!r} {self.action} ({self.why}){steps}"


@dataclass
class RecoveryReport:
    """What :func:`recover` found on a dataset and what it did (empty: nothing was left half-written)."""

    dataset: str
    entries: list[Recovered] = field(default_factory=list)

    @property
    def recovered(self) -> list[Recovered]:
        return [entry for entry in self.entries if entry.action != "left alone"]

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __str__(self) -> str:
        if not self.entries:
            return f"Dataset {self.dataset!r}: no half-written runs."
        return "\n".join([f"Dataset {self.dataset!r}:", *(f"  {entry}" for entry in self.entries)])


def recover(dataset: fo.Dataset, force: bool = False) -> RecoveryReport:
    """Roll back (or, once committed, finish) every journal entry of ``dataset`` whose writer is
    gone: a process of this machine that no longer runs, or one that gave its entry up. Entries of
    running writers are left alone; so are those written from another machine, whose process cannot
    be checked from here, unless ``force``."""
    report = RecoveryReport(dataset.name)
    for document in journal.entries(dataset):
        busy = _still_writing(document, force)
        if busy:
            report.entries.append(Recovered(document["key"], "left alone", busy))
        elif journal.take_over(document):  # else another process took it over first
            report.entries.append(_recovered(dataset, document))
    if report.recovered:
        logger.warning("fiftyone-condense recovered half-written runs. %s", report)
        dataset.reload()
    return report


def _still_writing(entry: dict, force: bool) -> Optional[str]:
    """Why the entry's writer may still be writing it; None when it is gone or gave the entry up."""
    writer = Writer.of(entry["writer"])
    if entry.get("abandoned") or (writer.here() and not writer.alive()):
        return None
    if writer.here():
        return f"{writer} is still writing"
    return None if force else (f"written by {writer}, which cannot be checked from here; if it is gone, "
                               "fc.recover(dataset, force=True)")


def _recovered(dataset: fo.Dataset, entry: dict) -> Recovered:
    """Finish a committed entry, roll back any other (then close it)."""
    writer = Writer.of(entry["writer"])
    why = ("given up by its writer" if entry.get("abandoned") else
           f"{writer} is gone" if writer.here() else f"{writer}, recovery forced")
    if entry["phase"] == "closed":  # undone or finished already
        journal.close(entry["_id"])
        return Recovered(entry["key"], "completed", why, ["closed its journal entry"])
    if entry["phase"] in ("committed", "deleting"):
        return Recovered(entry["key"], "completed", why, finish(dataset, entry))
    steps = roll_back(dataset, entry)
    journal.close(entry["_id"])
    return Recovered(entry["key"], "rolled back", why, steps)


# --------------------------------------------------------------------------- rolling forward


def finish(dataset: fo.Dataset, entry: dict) -> list[str]:
    """Complete a committed run (drop what it replaced) or a deletion, then close the entry."""
    steps = []
    dataset.reload()  # another process wrote it
    if entry["phase"] == "deleting":
        steps.append(str(remove_run(dataset, entry["run_key"])))
    else:
        asides = [Path(aside) for _, aside in entry.get("asides", []) if os.path.exists(aside)]
        remove_files(asides)
        journal.wrote()
        if asides:
            steps.append(f"removed {len(asides)} replaced media files")
        if entry.get("run") and _delete_run_documents({"_id": entry["run"]}):
            steps.append("removed the replaced run's record")
        journal.wrote()
    journal.close(entry["_id"])
    return steps


# --------------------------------------------------------------------------- rolling back


def roll_back(dataset: fo.Dataset, entry: dict) -> list[str]:
    """Put the dataset back as it was before the entry's run wrote anything (idempotent: each step
    looks at what is there, so a roll-back cut short is simply done again)."""
    if entry["phase"] in ("claimed", "backing up"):
        return []  # the dataset was not written yet (backups go with the entry)
    key, entry_id = entry.get("run_key"), entry["_id"]
    kept = [backup["doc"]["_id"] for backup in journal.backups(entry_id, "sample")]
    run_steps = [
        lambda: _remove_new_samples(dataset, key, kept),
        lambda: _restore_media(entry.get("media", []), entry.get("asides", []), entry.get("folders", [])),
        lambda: _restore_samples(dataset, entry_id),
        lambda: _restore_tags(dataset, key, entry_id),
    ] if key is not None else []
    field_steps = [lambda written=written: _restore_field(dataset, entry_id, written)
                   for written in reversed(entry.get("fields", []))]
    field_steps.append(lambda: _remove_created_fields(dataset, entry.get("created_fields", [])))
    record_steps = [lambda: _restore_view(dataset, key, entry.get("view")),
                    lambda: _restore_record(dataset, key, entry.get("run"))] if key is not None else []
    dataset.reload()  # another process wrote it
    done = []
    for step in run_steps + field_steps + record_steps:
        done += step()
        journal.wrote()
    dataset.reload()
    return done


def _said(count: int, what: str) -> list[str]:
    return [what.format(count)] if count else []


def _remove_new_samples(dataset: fo.Dataset, key: str, kept: list[ObjectId]) -> list[str]:
    """The run's new synthetic samples (those it replaced are in the backups, and stay)."""
    query = {"tags": SYNTHETIC_TAG, RUN_FIELD: key, "_id": {"$nin": kept}}
    ids = [str(d["_id"]) for d in dataset._sample_collection.find(query, {"_id": 1})]
    if ids:
        dataset.delete_samples(ids)
    return _said(len(ids), "removed {} new samples")


def _restore_media(written: list[str], asides: list[list[str]], folders: list[str]) -> list[str]:
    """Remove the files the run wrote and move back those it set aside (a path can be both), then
    the folders it made, once empty."""
    replaced = {path for path, _ in asides}
    new = [Path(path) for path in written if path not in replaced and os.path.exists(path)]
    remove_files(new)
    back = [(path, aside) for path, aside in asides if os.path.exists(aside)]
    for path, aside in back:
        os.replace(aside, path)
    remove_empty_folders(folders)
    return _said(len(new), "removed {} new media files") + _said(len(back), "put back {} replaced media files")


def _restore_samples(dataset: fo.Dataset, entry_id: ObjectId) -> list[str]:
    """Insert again the replaced run's samples that were removed, as they were (same ids)."""
    documents = [backup["doc"] for backup in journal.backups(entry_id, "sample")]
    present = {d["_id"] for d in dataset._sample_collection.find({"_id": {"$in": [d["_id"] for d in documents]}},
                                                                 {"_id": 1})}
    missing = [d for d in documents if d["_id"] not in present]
    if missing:
        dataset._sample_collection.insert_many(missing)
    return _said(len(missing), "restored {} replaced samples")


def _restore_tags(dataset: fo.Dataset, key: str, entry_id: ObjectId) -> list[str]:
    """The run's tag exactly on the samples that had it before."""
    tag = run_tag(key)
    tagged = [i for backup in journal.backups(entry_id, "tagged") for i in backup["ids"]]
    now = {str(d["_id"]) for d in dataset._sample_collection.find({"tags": tag}, {"_id": 1})}
    if now != set(tagged):
        dataset.match_tags(tag).untag_samples(tag)
        dataset.select(tagged).tag_samples(tag)
        return [f"tag {tag!r} back on the {len(tagged)} samples that had it"]
    return []


def _restore_field(dataset: fo.Dataset, entry_id: ObjectId, written: dict) -> list[str]:
    """A field the run created is deleted; one it overwrote gets its previous values and info back."""
    name = written["field"]
    if written["created"]:
        with journal.dataset_document(dataset):
            present = dataset.has_sample_field(name)
            if present:
                dataset.delete_sample_field(name)
        return [f"removed field {name!r}"] * present
    updates = [UpdateOne({"_id": b["sample"]}, {"$set": {name: b["value"]}} if "value" in b else {"$unset": {name: ""}})
               for b in journal.backups(entry_id, f"value:{name}")]
    for start in range(0, len(updates), journal.BACKUP_BATCH):
        dataset._sample_collection.bulk_write(updates[start:start + journal.BACKUP_BATCH], ordered=False)
    dataset.reload()
    with journal.dataset_document(dataset):
        if dataset.has_sample_field(name):
            stored = dataset.get_field(name)
            stored.info = written.get("info")
            stored.save()
    return [f"previous values of field {name!r} on {len(updates)} samples"]


def _remove_created_fields(dataset: fo.Dataset, names: list[str]) -> list[str]:
    """Fields the run's samples added, once no sample holds a value in them."""
    with journal.dataset_document(dataset):
        gone = [name for name in dict.fromkeys(names) if dataset.has_sample_field(name) and not len(dataset.exists(name))]
        if gone:
            dataset.delete_sample_fields(gone)
    return [f"removed field {name!r}" for name in gone]


def _restore_view(dataset: fo.Dataset, key: str, view: Optional[dict]) -> list[str]:
    """Delete the run's saved view; save the replaced run's again."""
    name = saved_view_name(key)
    with journal.dataset_document(dataset):
        removed = dataset.has_saved_view(name)
        if removed:
            dataset.delete_saved_view(name)
        if view is not None:
            stages = fo.DatasetView._build(dataset, [json_util.loads(stage) for stage in view["view_stages"]])
            dataset.save_view(name, stages, description=view.get("description"), color=view.get("color"))
    if view is None:
        return [f"removed saved view {name!r}"] if removed else []
    return [f"restored saved view {name!r}"]


def _restore_record(dataset: fo.Dataset, key: str, replaced: Optional[ObjectId]) -> list[str]:
    """Point the dataset back at the replaced record (or at none), then delete the run's new record
    (even one FiftyOne had stored but not yet listed)."""
    datasets = foo.get_db_conn().datasets
    current = (datasets.find_one({"_id": dataset._doc.id}, {"runs": 1}).get("runs") or {}).get(key)
    restored = replaced is not None and current != replaced
    if restored:
        datasets.update_one({"_id": dataset._doc.id}, {"$set": {f"runs.{key}": replaced}})
    elif replaced is None and current is not None:
        datasets.update_one({"_id": dataset._doc.id}, {"$unset": {f"runs.{key}": ""}})
    removed = _delete_run_documents({"_dataset_id": dataset._doc.id, "key": key, "_id": {"$ne": replaced}})
    dataset.reload()
    return ["removed the new run record"] * bool(removed) + ["restored the replaced run record"] * restored


def _delete_run_documents(query: dict) -> int:
    """Delete this plugin's run documents matching ``query`` and their stored results."""
    db = foo.get_db_conn()
    files = gridfs.GridFS(db)
    documents = list(db.runs.find({**query, "config.plugin": PLUGIN}, {"results": 1}))
    for document in documents:
        if document.get("results"):
            files.delete(document["results"])
        db.runs.delete_one({"_id": document["_id"]})
    return len(documents)


def delete(dataset: fo.Dataset, run_key: str) -> DeleteReport:
    """Delete a run under a claim of its key, journalled first as a deletion: one cut short (by an
    exception or a killed process) is completed by the next call."""
    entry = journal.claim(dataset, run_key, run_key)
    try:
        entry.note(phase="deleting")
        report = remove_run(dataset, run_key)
        entry.close()
        return report
    finally:
        entry.release()
