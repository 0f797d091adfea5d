"""The run life-cycle every capability shares: validate first, then write all-or-nothing and record."""

from __future__ import annotations

from typing import Callable, Optional

import fiftyone as fo

from ..bridge.runs import CondensationRunConfig, RunRecord, check_run_key, list_runs, load_run, run_tag, saved_view_name
from ..bridge.transaction import Transaction
from ..bridge.views import check_label_field, require_samples
from ..progress import Progress, ProgressFn

Collection = fo.core.collections.SampleCollection


def begin(view: Collection, run_key: str, label_field: str, overwrite: bool) -> None:
    """Everything checkable before any work: an image view with samples, its labels, a free run key."""
    require_samples(view)
    check_label_field(view, label_field)
    check_run_key(view._dataset, run_key, overwrite)


def record(view: Collection, run_key: str, config: CondensationRunConfig,
           write: Callable[[Transaction], dict]) -> RunRecord:
    """In one transaction: replace a run with this key, let ``write`` make the outputs (returning the
    results), then register the run on ``view`` and save the view ``condense-<key>`` of its outputs."""
    dataset = view._dataset
    with Transaction(dataset) as transaction:
        if run_key in list_runs(dataset):
            transaction.delete_run(run_key)
        results = write(transaction)
        transaction.register(view, run_key, config, {"evaluation": {}, **results})
        transaction.save_view(saved_view_name(run_key), dataset.match_tags(run_tag(run_key)))
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
