"""All-or-nothing writes: :class:`Transaction` journals each write of a run before making it, then
finishes it once committed (:func:`finish`) or undoes it (:func:`roll_back`) from the journal. The
two read only what the journal entry recorded and are safe to repeat, so :mod:`.recovery` runs the
same ones for a process that was killed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import fiftyone as fo
import fiftyone.core.odm as foo
import torch
from bson import ObjectId, json_util
from pymongo import UpdateOne

from . import journal
from .records import (
    FLOATS_FIELD, RUN_FIELD, SOURCES_FIELD, SYNTHETIC_TAG, CondensationRunConfig, delete_run_documents, remove_empty_folders,
    remove_files, remove_unreferenced_results, run_tag, save_results, saved_view_name,
)

logger = logging.getLogger(__name__)
WRITE_BATCH = 256  # new media files and samples written per step
ASIDE = ".condense-undo"  # suffix of a replaced run's media file, kept until the new run commits


@dataclass
class Held:
    """What a run key held when a run began writing it."""

    run: Optional[ObjectId]  # the record
    view: bool
    tagged: list[str]
    synthetic: list[str]
    asides: list[list[str]]  # [media path, where it is kept until the commit]


class Transaction:
    """The writes of one claimed journal entry: a run (``run``: the entry's key is the run key) or a
    field (``compute_embeddings``).

    On entering a run, everything its key already holds (a replaced run's record, saved view,
    samples, tags and media) is backed up in the journal and set aside. Each write is announced in
    the entry before it is made. On success the entry is committed, what was replaced is dropped
    and the entry closed, last; on any exception (or Ctrl-C) the writes are rolled back from the
    journal, as recovery does for a process that was killed.
    """

    def __init__(self, entry: journal.Entry, run: bool = False):
        self.entry = entry
        self.dataset = entry.dataset
        self.run_key = entry.key if run else None
        self.new_folders: list[str] = []  # made for the run's media: its deletion removes them once empty

    def __enter__(self) -> "Transaction":
        if self.run_key is not None:
            self._set_aside(self.run_key)
        else:
            self.entry.note(phase="writing")
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        if kind is None:
            self.entry.note(phase="committed")
            self._settle(finish, "finishing")
        elif self._settle(roll_back, "undoing"):
            self.entry.close()
        return False

    def _settle(self, step: Callable[[fo.Dataset, dict], Any], doing: str) -> bool:
        """Finish or undo the writes; a failure leaves the entry for the next call to recover."""
        try:
            step(self.dataset, self._document())
            return True
        except Exception:
            logger.exception("fiftyone-condense: %s the writes of %r failed; the next call on dataset %r will "
                             "retry it (or fc.recover(dataset))", doing, self.entry.key, self.dataset.name)
            return False

    def _document(self) -> dict:
        return journal.journal_collection().find_one({"_id": self.entry.id})

    # ------------------------------------------------------------------ what the key already holds

    def _set_aside(self, run_key: str) -> None:
        """Back up, then remove, whatever carries the run key (a replaced run, or leftovers)."""
        held = self._back_up(run_key)
        self._remove(run_key, held)

    def _back_up(self, run_key: str) -> "Held":
        """Journal what the key holds: its record and saved view (kept aside), then copies of its tagged
        ids and synthetic samples, then the media paths about to be set aside."""
        dataset, samples = self.dataset, self.dataset._sample_collection
        view_name = saved_view_name(run_key)
        run = (foo.get_db_conn().datasets.find_one({"_id": dataset._doc.id}, {"runs": 1}).get("runs") or {}).get(run_key)
        view = dataset._get_saved_view_doc(view_name) if dataset.has_saved_view(view_name) else None
        self.entry.note(phase="backing up", run_key=run_key, run=run, view=view and {
            "view_stages": list(view.view_stages), "description": view.description, "color": view.color})
        tagged = [str(d["_id"]) for d in samples.find({"tags": run_tag(run_key)}, {"_id": 1})]
        self.entry.back_up("tagged", ({"ids": tagged[i:i + 10000]} for i in range(0, len(tagged), 10000)))
        synthetic = {"tags": SYNTHETIC_TAG, RUN_FIELD: run_key}
        self.entry.back_up("sample", ({"doc": document} for document in samples.find(synthetic)))
        documents = list(samples.find(synthetic, {"filepath": 1}))
        asides = [[d["filepath"], d["filepath"] + ASIDE] for d in documents if os.path.exists(d["filepath"])]
        self.entry.note(phase="writing", asides=asides)
        return Held(run, view is not None, tagged, [str(d["_id"]) for d in documents], asides)

    def _remove(self, run_key: str, held: "Held") -> None:
        """Set the media aside, then remove the samples, tag, saved view and record (each a write)."""
        for start in range(0, len(held.asides), WRITE_BATCH):
            for path, aside in held.asides[start:start + WRITE_BATCH]:
                os.replace(path, aside)
            journal.wrote()
        steps = [(held.synthetic, lambda: self.dataset.delete_samples(held.synthetic)),
                 (held.tagged, lambda: self.dataset.match_tags(run_tag(run_key)).untag_samples(run_tag(run_key))),
                 (held.view, lambda: self._delete_view(saved_view_name(run_key))),
                 (held.run, lambda: self._detach_record(run_key))]
        for present, remove in steps:
            if present:
                remove()
                journal.wrote()

    def _delete_view(self, name: str) -> None:
        with journal.dataset_document(self.dataset):
            self.dataset.delete_saved_view(name)

    def _detach_record(self, run_key: str) -> None:
        """Take the record off the dataset; the journal keeps it for an undo until the commit deletes it."""
        foo.get_db_conn().datasets.update_one({"_id": self.dataset._doc.id}, {"$unset": {f"runs.{run_key}": ""}})
        self.dataset.reload()

    # ------------------------------------------------------------------ the run's writes

    def tag(self, sample_ids: list[str], tag: str) -> None:
        """Tag existing samples (undone from the tagged ids backed up on entering)."""
        self.dataset.select(sample_ids).tag_samples(tag)
        journal.wrote()

    def save_view(self, name: str, view: fo.DatasetView) -> None:
        with journal.dataset_document(self.dataset):
            self.dataset.save_view(name, view)
        journal.wrote()

    def register(self, source: fo.core.collections.SampleCollection, run_key: str, config: CondensationRunConfig,
                 results: dict) -> None:
        """Record the run on ``source`` (FiftyOne keeps the source view's stages with it)."""
        source.register_run(run_key, config)
        journal.wrote()
        save_results(self.entry, run_key, results)

    def set_field(self, view: fo.core.collections.SampleCollection, field: str, values, info: dict,
                  batch: int = 8192) -> None:
        """Write per-sample values (a list, an array or a row store, in the view's order), ``batch``
        samples at a time. The previous values are backed up first (a new field is simply removed
        on undo)."""
        existed = self.dataset.has_sample_field(field)
        ids = view.values("id")
        previous_info = self.dataset.get_field(field).info if existed else None
        if existed:
            self.entry.back_up(f"value:{field}", self._values(ids, field))
        self.entry.add("fields", [{"field": field, "created": not existed, "info": previous_info}])
        for start in range(0, len(ids), batch):
            chunk = ids[start:start + batch]
            with journal.dataset_document(self.dataset):  # the first batch adds a new field to the schema
                self.dataset.set_values(field, dict(zip(chunk, list(values[start:start + len(chunk)]))),
                                        key_field="id")
            journal.wrote()
        with journal.dataset_document(self.dataset):
            self.dataset.get_field(field).info = info
            self.dataset.get_field(field).save()
        journal.wrote()

    def drop_field_on_commit(self, field: str) -> None:
        """A field of the replaced run the new one does not write: kept until the commit, then deleted."""
        self.entry.add("dropped_fields", [field])

    def _values(self, ids: list[str], field: str) -> Iterator[dict]:
        """The raw stored values of ``field`` on these samples (absent: no ``value``)."""
        for start in range(0, len(ids), journal.BACKUP_BATCH):
            chunk = [ObjectId(i) for i in ids[start:start + journal.BACKUP_BATCH]]
            for document in self.dataset._sample_collection.find({"_id": {"$in": chunk}}, {field: 1}):
                yield {"sample": document["_id"], **({"value": document[field]} if field in document else {})}

    def add_synthetic_samples(
        self, run_key: str, label_field: str, paths: list[Path], labels: list[str], sources: list[list[str]],
        write_media: Callable[[slice, list[Path]], Any], shape: tuple[int, int, int],
        floats: Optional[torch.Tensor] = None,
    ) -> int:
        """Write a run's new media, ``WRITE_BATCH`` files at a time with ``write_media(rows, paths)``,
        and add one sample per file (label, tags ``condense:<key>`` and ``synthetic``,
        ``condense_run``, ``condense_sources``, and ``metadata`` of the (channels, height, width)
        ``shape`` written, which a palette PNG's header does not tell; with ``floats``, each image's
        float pixels in ``condense_floats``). Each batch's paths are journalled before its files are
        written. Returns the bytes written."""
        fields = (RUN_FIELD, SOURCES_FIELD) + ((FLOATS_FIELD,) if floats is not None else ())
        created = [f for f in fields if not self.dataset.has_sample_field(f)]
        if created:
            self.entry.add("created_fields", created)
        folders = sorted({path.parent for path in paths})
        new_folders = sorted({str(f) for folder in folders for f in (folder, *folder.parents) if not f.exists()})
        if new_folders:
            self.entry.add("folders", new_folders)
            self.new_folders += new_folders
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
        written = 0
        for start in range(0, len(paths), WRITE_BATCH):
            rows = slice(start, min(start + WRITE_BATCH, len(paths)))
            self.entry.add("media", [str(path) for path in paths[rows]])
            write_media(rows, paths[rows])
            journal.wrote()
            sizes = [path.stat().st_size for path in paths[rows]]
            with journal.dataset_document(self.dataset):  # the first batch adds the synthetic fields to the schema
                self._add_samples(run_key, label_field, paths[rows], labels[rows], sources[rows], sizes, shape,
                                  None if floats is None else floats[rows])
            journal.wrote()
            written += sum(sizes)
        return int(written)

    def _add_samples(self, run_key: str, label_field: str, paths: list[Path], labels: list[str],
                     sources: list[list[str]], sizes: list[int], shape: tuple[int, int, int],
                     floats: Optional[torch.Tensor]) -> None:
        """One batch of the run's new samples."""
        channels, height, width = shape
        pixels = [{} if floats is None else {FLOATS_FIELD: image.float().numpy()} for image in
                  (floats if floats is not None else [None] * len(paths))]
        self.dataset.add_samples([
            fo.Sample(filepath=str(path), tags=[run_tag(run_key), SYNTHETIC_TAG],
                      metadata=fo.ImageMetadata(size_bytes=size, mime_type="image/png", width=width, height=height,
                                                num_channels=channels),
                      **{label_field: fo.Classification(label=label), RUN_FIELD: run_key, SOURCES_FIELD: list(origin)},
                      **extra)
            for path, label, origin, size, extra in zip(paths, labels, sources, sizes, pixels)
        ], progress=False)


# --------------------------------------------------------------------------- rolling forward


def finish(dataset: fo.Dataset, entry: dict) -> list[str]:
    """Complete a committed run: drop what it replaced (media set aside, fields, the record), then close the entry."""
    dataset.reload()  # another process may have written it
    asides = [Path(aside) for _, aside in entry.get("asides", []) if os.path.exists(aside)]
    remove_files(asides)
    journal.wrote()
    with journal.dataset_document(dataset):
        dropped = [name for name in entry.get("dropped_fields", []) if dataset.has_sample_field(name)]
        if dropped:
            dataset.delete_sample_fields(dropped)
    journal.wrote()
    removed = bool(entry.get("run")) and bool(delete_run_documents({"_id": entry["run"]}))
    journal.wrote()
    _remove_results_files(entry)
    journal.wrote()
    journal.close(entry["_id"])
    return (_said(len(asides), "removed {} replaced media files") + [f"removed field {name!r}" for name in dropped]
            + ["removed the replaced run's record"] * removed)


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
    record_steps.append(lambda: _remove_results_files(entry))
    dataset.reload()  # another process may have written it
    done = []
    for step in run_steps + field_steps + record_steps:
        done += step()
        journal.wrote()
    dataset.reload()
    return done


def _remove_results_files(entry: dict) -> list[str]:
    """The results files the entry stored or replaced that no record refers to (a kill came between)."""
    return _said(remove_unreferenced_results(entry.get("results_files", [])), "removed {} unreferenced results files")


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
    removed = delete_run_documents({"_dataset_id": dataset._doc.id, "key": key, "_id": {"$ne": replaced}})
    dataset.reload()
    return ["removed the new run record"] * bool(removed) + ["restored the replaced run record"] * restored
