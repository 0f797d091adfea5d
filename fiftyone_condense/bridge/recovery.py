"""Recovery from the journal: undo a run whose writer is gone, or finish one that had committed
(a deletion or a rename that had begun is finished too).

Every step reads what the journal entry recorded (never the writer's memory) and is safe to repeat,
so a recovery that is itself interrupted is simply run again: by the next writer of the dataset
(each claims its key through :func:`.lifecycle.claimed`, which recovers first) or by
``fc.recover``. Undoing and finishing are the transaction's own :func:`.transaction.roll_back` and
:func:`.transaction.finish`; a deletion cut short is completed by :func:`.records.finish_deletion`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

import fiftyone as fo

from . import journal
from .journal import Writer
from .records import finish_deletion
from .renaming import finish_rename
from .transaction import finish, roll_back

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
    # a rename first: completing it before the new key's entry goes keeps that key held meanwhile
    for document in sorted(journal.entries(dataset), key=lambda entry: entry["phase"] != "renaming"):
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
    """Finish a committed run or a deletion, roll back any other entry (then close it)."""
    writer = Writer.of(entry["writer"])
    why = ("given up by its writer" if entry.get("abandoned") else
           f"{writer} is gone" if writer.here() else f"{writer}, recovery forced")
    if entry["phase"] == "closed":  # undone or finished already
        journal.close(entry["_id"])
        return Recovered(entry["key"], "completed", why, ["closed its journal entry"])
    if entry["phase"] == "renaming":  # a rename only goes forward
        return Recovered(entry["key"], "completed", why, finish_rename(dataset, entry))
    if entry["phase"] == "deleting":
        return Recovered(entry["key"], "completed", why, finish_deletion(dataset, entry))
    if entry["phase"] == "committed":
        return Recovered(entry["key"], "completed", why, finish(dataset, entry))
    steps = roll_back(dataset, entry)
    journal.close(entry["_id"])
    return Recovered(entry["key"], "rolled back", why, steps)
