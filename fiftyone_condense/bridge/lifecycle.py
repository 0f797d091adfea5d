"""The run life-cycle every capability shares: validate first, claim the key (recovering the dataset
first; the key is checked once, under the claim), then write all-or-nothing and record."""

from __future__ import annotations

import re
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import fiftyone as fo
import fiftyone.core.utils as fou

from ..algorithms.budgets import Budget
from ..algorithms.errors import CondensationError
from ..algorithms.progress import Progress, ProgressFn
from . import journal, recovery
from .records import CondensationRunConfig, RunRecord, list_runs, load_run, run_tag, saved_view_name
from .transaction import Transaction
from .views import Reading, check_label_field, require_samples

Collection = fo.core.collections.SampleCollection
MAX_RUN_KEY_LENGTH = 100  # a key names a folder of media and a checkpoint folder: well within a file name's 255 bytes
_RUN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class RunRequest:
    """A method run (a selection or a distillation) as the SDK was asked for it: the method and its own
    ``params`` (checked by the capability against the method's declaration), the budget, the run key."""

    method: str
    budget: Budget
    run_key: str
    label_field: Optional[str]
    seed: int
    device: str
    overwrite: bool
    small_classes: str
    params: dict
    reading: Reading
    scores_field: Optional[str] = field(default=None, kw_only=True)  # selections: where the per-sample scores go


def default_run_key(run_key: Optional[str], method: str, budget: Budget) -> str:
    """``run_key`` as given (an empty one is checked, not replaced), else ``<method>_<budget>``
    (``herding_ipc10``, ``herding_frac0_05``, ``herding_n2000``)."""
    return f"{method}_{budget.key()}" if run_key is None else run_key


def begin(view: Collection, label_field: Optional[str]) -> None:
    """Everything checkable before any work and any claim: an image view with samples, its labels
    (none to check for an unlabeled pool, ``label_field=None``)."""
    require_samples(view)
    if label_field is not None:
        check_label_field(view, label_field)


@contextmanager
def claimed(dataset: fo.Dataset, *keys: str) -> Iterator[list[journal.Entry]]:
    """Hold ``keys`` in the journal while computing and writing (a second writer of one is refused at
    once), after recovering what killed writers left half-written on the dataset: the plugin
    recovers where it writes (one indexed query when nothing was left). The dataset is reloaded
    once held, so what is checked under the claim is current."""
    recovery.recover(dataset)
    with ExitStack() as held:
        # a key given twice (a run renamed to its own key) is held once
        entries = [held.enter_context(journal.claim(dataset, key)) for key in dict.fromkeys(keys)]
        dataset.reload()
        yield entries


def field_key(field: str) -> str:
    """The journal key of a sample field being written (run keys hold no ':')."""
    return f"field:{field}"


@contextmanager
def fields_claimed(dataset: fo.Dataset, fields: list[str]) -> Iterator[None]:
    """Hold the journal keys of the embeddings fields a run is about to write, next to its run key:
    one field has one writer at a time (``compute_embeddings`` claims the same key), and a run
    that would write a field another process is writing is refused before writing anything."""
    with ExitStack() as held:
        for name in dict.fromkeys(fields):
            held.enter_context(journal.claim(dataset, field_key(name)))
        yield


@contextmanager
def claimed_run(dataset: fo.Dataset, run_key: str, overwrite: bool) -> Iterator[journal.Entry]:
    """Claim ``run_key`` for a run about to be written under it; the key is checked once, under the
    claim (no other writer can take or free it meanwhile)."""
    check_run_key_name(run_key)  # before it names a journal entry
    with claimed(dataset, run_key) as (entry,):
        check_run_key_free(dataset, run_key, overwrite)
        yield entry


def check_run_key(dataset: fo.Dataset, run_key: str, overwrite: bool) -> None:
    """A valid key that is free to write (what the operators' forms check as the user types)."""
    check_run_key_name(run_key)
    check_run_key_free(dataset, run_key, overwrite)


def check_run_key_name(run_key: str) -> None:
    """Keys are ASCII Python identifiers of at most 100 characters (a key names a FiftyOne run, a
    tag, a media folder and the saved view ``condense-<key>``)."""
    if not isinstance(run_key, str) or not _RUN_KEY.fullmatch(run_key) or len(run_key) > MAX_RUN_KEY_LENGTH:
        raise CondensationError(
            f"Invalid run_key {run_key!r}: use letters, digits and underscores (ASCII, at most {MAX_RUN_KEY_LENGTH} "
            "characters), not starting with a digit, e.g. 'herding_ipc10'.")


def check_run_key_free(dataset: fo.Dataset, run_key: str, overwrite: bool) -> None:
    """An existing key needs ``overwrite=True`` (and must be this plugin's run), and the key's saved
    view must not clash with another saved view (FiftyOne refuses two views whose URL slugs agree:
    keys that differ only in case or underscores). A writer checks it under the key's claim."""
    existing = dataset.list_runs()
    if run_key in existing and not overwrite:
        raise CondensationError(f"A run with key {run_key!r} already exists; pass overwrite=True to replace it.")
    if run_key in existing and run_key not in list_runs(dataset):
        raise CondensationError(f"Run key {run_key!r} belongs to another plugin's run; choose another key.")
    name = saved_view_name(run_key)
    slug = fou.to_slug(name)
    for view in dataset._doc.get_saved_views():
        if (view.name == name or view.slug == slug) and not (view.name == name and run_key in existing):
            owner = next((key for key in list_runs(dataset) if saved_view_name(key) == view.name), None)
            whose = f"the saved view {view.name!r} of run {owner!r}" if owner else f"your saved view {view.name!r}"
            raise CondensationError(
                f"Run key {run_key!r} would save its output as the view {name!r}, which clashes with {whose} "
                f"(FiftyOne tells views apart by their slug, {slug!r}, which ignores case and '_'/'-'); choose another "
                "run_key" + ("." if owner else ", or rename or delete that view."))


def record(view: Collection, entry: journal.Entry, config: CondensationRunConfig,
           write: Callable[[Transaction], dict]) -> RunRecord:
    """In one transaction on the claimed run key: set aside what the key held (a replaced run), let
    ``write`` make the outputs (returning the results), then save the view ``condense-<key>`` of its
    outputs and register the run on ``view``, last."""
    dataset, run_key = view._dataset, entry.key
    with Transaction(entry, run=True) as transaction:
        results = write(transaction)
        transaction.save_view(saved_view_name(run_key), dataset.match_tags(run_tag(run_key)))
        transaction.register(view, run_key, config,
                             {"evaluation": {}, **results, "new_folders": transaction.new_folders})
    return load_run(dataset, run_key)


def reporter(progress: Optional[ProgressFn]) -> Progress:
    """Stage-aware progress for a public function's ``progress`` callback (a console bar when None)."""
    return Progress(progress)


def versions() -> dict:
    """Library versions recorded with every run."""
    import submodlib  # noqa: F401  (selection runs need it; recorded runs say it was there)
    import torch
    import torchvision

    from .. import __version__

    return {"fiftyone_condense": __version__, "fiftyone": fo.__version__, "torch": torch.__version__,
            "torchvision": torchvision.__version__}
