"""The write-ahead journal: a run claims its key, then records what it will write before writing it.

FiftyOne's database offers no multi-document transaction here, so each run carries its own
journal. One document per claimed key lives in the collection ``condense_journal`` of FiftyOne's
database, unique per (dataset, key): inserting it *is* the claim, so of two writers of one key
exactly one gets it (the database's unique index decides, not a read-then-write check). The
entry names its writer (pid, host, boot and the process's start time, so a reused pid is told
apart) and, as the run goes on, everything needed to find its writes and undo them: the phase
(``claimed`` → ``backing up`` → ``writing`` → ``committed`` → ``closed``; ``deleting`` for a
deletion), the run key once a run sets aside what its key held, the media paths about to be
written, the folders made, the files set aside, the fields created or overwritten, and the replaced
run's record. What a run replaces is copied first to
``condense_journal_backups`` (samples, tagged ids, previous field values). The writes go through
:mod:`.transaction`; :mod:`.recovery` reads entries whose writer is gone and rolls them back, or
forward once committed; the entry is deleted last.

``FIFTYONE_CONDENSE_PAUSE_AFTER_WRITES=N`` stops the process (SIGSTOP) right after its N-th durable
write, so a crash test can kill it with SIGKILL at exactly that point.
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Iterator

import fiftyone as fo
import fiftyone.core.odm as foo
import psutil
from bson import ObjectId
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from ..algorithms.errors import CondensationError

JOURNAL = "condense_journal"
DOCUMENT_KEY = "dataset:document"  # the key of the dataset document's lock (run keys hold no ':')
BACKUPS = "condense_journal_backups"
PAUSE_AFTER_WRITES = "FIFTYONE_CONDENSE_PAUSE_AFTER_WRITES"
BACKUP_BATCH = 1000  # documents per insert of backups

_writes = 0
_indexed = False


# --------------------------------------------------------------------------- writers


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as file:
            return file.read().strip()
    except OSError:
        return str(round(psutil.boot_time()))


@dataclass(frozen=True)
class Writer:
    """A process that may write: told apart from a later process with the same pid by its start time."""

    pid: int
    host: str
    boot: str
    started: float

    @classmethod
    def current(cls) -> "Writer":
        return cls(os.getpid(), socket.gethostname(), _boot_id(), round(psutil.Process().create_time(), 2))

    @classmethod
    def of(cls, document: dict) -> "Writer":
        return cls(**document)

    def here(self) -> bool:
        """Whether this writer ran on this machine since its last boot (so its liveness can be checked)."""
        return self.host == socket.gethostname() and self.boot == _boot_id()

    def alive(self) -> bool:
        """Whether the process still runs here (not a zombie, not a later process that reuses the pid)."""
        try:
            process = psutil.Process(self.pid)
            return process.status() != psutil.STATUS_ZOMBIE and round(process.create_time(), 2) == self.started
        except psutil.Error:
            return False

    def __str__(self) -> str:
        return f"process {self.pid} on {self.host}"


def wrote() -> None:
    """Count one durable write; with ``$FIFTYONE_CONDENSE_PAUSE_AFTER_WRITES=N`` the N-th stops the process."""
    global _writes
    _writes += 1
    if os.environ.get(PAUSE_AFTER_WRITES) == str(_writes):
        os.kill(os.getpid(), signal.SIGSTOP)


def writes_done() -> int:
    """Durable writes this process has made (what the crash tests spread their kill points over)."""
    return _writes


# --------------------------------------------------------------------------- collections


def journal_collection():
    global _indexed
    db = foo.get_db_conn()
    if not _indexed:
        db[JOURNAL].create_index([("dataset_id", ASCENDING), ("key", ASCENDING)], unique=True)
        db[BACKUPS].create_index([("entry", ASCENDING), ("kind", ASCENDING)])
        _indexed = True
    return db[JOURNAL]


def backups_collection():
    journal_collection()
    return foo.get_db_conn()[BACKUPS]


def entries(dataset: fo.Dataset) -> list[dict]:
    """The open journal entries of a dataset (one indexed query; usually none)."""
    return list(journal_collection().find({"dataset_id": dataset._doc.id, "key": {"$ne": DOCUMENT_KEY}}))


def backups(entry_id: ObjectId, kind: str) -> Iterable[dict]:
    return backups_collection().find({"entry": entry_id, "kind": kind}, sort=[("_id", ASCENDING)])


# --------------------------------------------------------------------------- entries


class Entry:
    """This process's handle on the journal entry of a key it claimed; as a context manager, the
    claim is released on leaving (:meth:`release`)."""

    def __init__(self, dataset: fo.Dataset, key: str, entry_id: ObjectId):
        self.dataset, self.key, self.id = dataset, key, entry_id

    def __enter__(self) -> "Entry":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self.release()

    def note(self, **values: Any) -> None:
        """Record values on the entry (durably, before the write they announce)."""
        journal_collection().update_one({"_id": self.id}, {"$set": values})
        wrote()

    def add(self, name: str, items: list) -> None:
        """Append items to a list on the entry (e.g. the media paths about to be written)."""
        journal_collection().update_one({"_id": self.id}, {"$push": {name: {"$each": items}}})
        wrote()

    def back_up(self, kind: str, documents: Iterable[dict]) -> int:
        """Keep copies of what is about to be replaced, in batches; returns how many."""
        batch, count = [], 0
        for document in documents:
            batch.append({"entry": self.id, "kind": kind, **document})
            if len(batch) == BACKUP_BATCH:
                count += self._insert(batch)
                batch = []
        return count + (self._insert(batch) if batch else 0)

    def _insert(self, batch: list[dict]) -> int:
        backups_collection().insert_many(batch)
        wrote()
        return len(batch)

    def release(self) -> None:
        """End the claim: the entry goes if nothing was written; if writes were left half-done (an
        undo that failed, a deletion cut short) it is marked abandoned for the next call to recover."""
        collection = journal_collection()
        if not collection.delete_one({"_id": self.id, "phase": "claimed"}).deleted_count:
            collection.update_one({"_id": self.id}, {"$set": {"abandoned": True}})

    def close(self) -> None:
        """Close the entry (a run's last writes): see :func:`close`."""
        close(self.id)


def close(entry_id: ObjectId) -> None:
    """Mark the entry closed (its run is undone or finished: nothing is left to recover but the
    entry itself), then delete its backups, then the entry."""
    journal_collection().update_one({"_id": entry_id}, {"$set": {"phase": "closed"}})
    wrote()
    backups_collection().delete_many({"entry": entry_id})
    wrote()
    journal_collection().delete_one({"_id": entry_id})
    wrote()


def claim(dataset: fo.Dataset, key: str) -> Entry:
    """Claim ``key`` on the dataset for this process, atomically: a second claim of a key whose
    entry is open raises a CondensationError naming its writer."""
    document = {"dataset_id": dataset._doc.id, "dataset": dataset.name, "key": key,
                "phase": "claimed", "writer": asdict(Writer.current()),
                "since": datetime.datetime.now(datetime.timezone.utc)}
    try:
        entry_id = journal_collection().insert_one(document).inserted_id
    except DuplicateKeyError:
        raise CondensationError(busy_message(dataset, key)) from None
    wrote()
    return Entry(dataset, key, entry_id)


def busy_message(dataset: fo.Dataset, key: str) -> str:
    holder = journal_collection().find_one({"dataset_id": dataset._doc.id, "key": key}) or {}
    writer = Writer.of(holder["writer"]) if "writer" in holder else None
    since = holder.get("since")
    what = (f"embeddings field {key.partition(':')[2]!r}" if key.startswith("field:") else
            "document" if key == DOCUMENT_KEY else f"run key {key!r}")
    return (f"The {what} of dataset {dataset.name!r} is being written by {writer or 'another process'}"
            f"{f' since {since:%Y-%m-%d %H:%M:%S} UTC' if since else ''}; wait for it to finish or choose another "
            f"{'embeddings_field' if key.startswith('field:') else 'run_key'} (if that process is gone, "
            "fc.recover(dataset) undoes what it left).")


@contextmanager
def dataset_document(dataset: fo.Dataset, timeout: float = 60.0) -> Iterator[None]:
    """Hold the dataset's document against this plugin's other writers while FiftyOne rewrites one of
    its lists (saved views, the sample fields): FiftyOne saves such a list whole, so two processes
    changing it at once would lose one change. Waits for another holder (one that is gone is
    replaced); the dataset is reloaded once held, so the lists are as they are now."""
    collection, deadline = journal_collection(), time.monotonic() + timeout
    while True:
        lock = {"dataset_id": dataset._doc.id, "dataset": dataset.name, "key": DOCUMENT_KEY, "phase": "claimed",
                "writer": asdict(Writer.current()), "since": datetime.datetime.now(datetime.timezone.utc)}
        try:
            lock_id = collection.insert_one(lock).inserted_id
            break
        except DuplicateKeyError:
            holder = collection.find_one({"dataset_id": dataset._doc.id, "key": DOCUMENT_KEY})
            writer = Writer.of(holder["writer"]) if holder else None
            if writer is not None and writer.here() and not writer.alive():
                collection.delete_one({"_id": holder["_id"], "writer": holder["writer"]})
            elif time.monotonic() > deadline:
                raise CondensationError(busy_message(dataset, DOCUMENT_KEY)) from None
            else:
                time.sleep(0.02)
    try:
        dataset.reload()
        yield
    finally:
        collection.delete_one({"_id": lock_id})


def take_over(document: dict) -> bool:
    """Make this process the writer of an entry whose writer is gone, atomically (one recoverer wins)."""
    taken = journal_collection().update_one(
        {"_id": document["_id"], "writer": document["writer"]},
        {"$set": {"writer": asdict(Writer.current()), "abandoned": False}})
    wrote()
    return bool(taken.modified_count)
