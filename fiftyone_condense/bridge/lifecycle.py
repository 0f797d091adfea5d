"""The run life-cycle every capability shares: validate first, then write all-or-nothing and record."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import fiftyone as fo

from ..algorithms.progress import Progress, ProgressFn
from . import journal
from .records import CondensationRunConfig, RunRecord, check_run_key, load_run, run_tag, saved_view_name
from .transaction import Transaction
from .views import check_label_field, require_samples

Collection = fo.core.collections.SampleCollection


def begin(view: Collection, run_key: str, label_field: str, overwrite: bool) -> None:
    """Everything checkable before any work: an image view with samples, its labels, a free run key."""
    require_samples(view)
    check_label_field(view, label_field)
    check_run_key(view._dataset, run_key, overwrite)


@contextmanager
def claimed(dataset: fo.Dataset, key: str, run_key: Optional[str] = None, overwrite: bool = False) -> Iterator[journal.Entry]:
    """Hold ``key`` in the journal while computing and writing: a second writer of the same key is
    refused at once. A run key is checked again once held (another writer may have just finished)."""
    entry = journal.claim(dataset, key, run_key)
    try:
        if run_key is not None:
            dataset.reload()
            check_run_key(dataset, run_key, overwrite)
        yield entry
    finally:
        entry.release()


def record(view: Collection, entry: journal.Entry, config: CondensationRunConfig,
           write: Callable[[Transaction], dict]) -> RunRecord:
    """In one transaction on the claimed run key: set aside what the key held (a replaced run), let
    ``write`` make the outputs (returning the results), then save the view ``condense-<key>`` of its
    outputs and register the run on ``view``, last."""
    dataset, run_key = view._dataset, entry.run_key
    with Transaction(entry) as transaction:
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
