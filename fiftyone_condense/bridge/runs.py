"""Condensation runs on a dataset: records (FiftyOne runs), tags, saved views, all-or-nothing.

A run ``key`` leaves: a FiftyOne run record (config + results), the tag ``condense:<key>`` on
the selected real samples, and the saved view ``condense-<key>``. :class:`Transaction` undoes
every write of a run that fails or is interrupted, so the dataset is left as it was.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import fiftyone as fo
from fiftyone.core.runs import Run, RunConfig, RunResults

from ..errors import CondensationError

PLUGIN = "fiftyone-condense"
SYNTHETIC_TAG = "synthetic"
RUN_FIELD = "condense_run"
SOURCES_FIELD = "condense_sources"


class CondensationRunConfig(RunConfig):
    """A FiftyOne run config marked as belonging to this plugin."""

    def __init__(self, **kwargs):
        kwargs.setdefault("plugin", PLUGIN)
        super().__init__(**kwargs)


class CondensationRun(Run):
    """The FiftyOne run class paired with :class:`CondensationRunConfig`."""


def run_tag(run_key: str) -> str:
    return f"condense:{run_key}"


def saved_view_name(run_key: str) -> str:
    return f"condense-{run_key}"


@dataclass
class RunRecord:
    """What :func:`load_run` returns: the run's config, results and output view."""

    key: str
    config: dict
    results: dict
    timestamp: Optional[datetime.datetime]
    view: Optional[fo.DatasetView]

    @property
    def method(self) -> str:
        return self.config.get("method")


def list_runs(dataset: fo.Dataset) -> list[str]:
    """Keys of this plugin's runs on the dataset."""
    return sorted(dataset.list_runs(plugin=PLUGIN))


def check_run_key(dataset: fo.Dataset, run_key: str, overwrite: bool) -> None:
    """Keys are Python identifiers, and an existing key needs ``overwrite=True``."""
    if not isinstance(run_key, str) or not run_key.isidentifier():
        raise CondensationError(f"Invalid run_key {run_key!r}: use letters, digits and underscores, not starting with a digit.")
    if run_key in dataset.list_runs() and not overwrite:
        raise CondensationError(f"A run with key {run_key!r} already exists; pass overwrite=True to replace it.")
    if run_key in dataset.list_runs() and run_key not in list_runs(dataset):
        raise CondensationError(f"Run key {run_key!r} belongs to another plugin's run; choose another key.")


def require_run(dataset: fo.Dataset, run_key: str) -> None:
    if run_key not in list_runs(dataset):
        raise CondensationError(f"No condensation run {run_key!r}. Runs: {list_runs(dataset) or 'none'}.")


def run_config(dataset: fo.Dataset, run_key: str) -> dict:
    """A run's config alone (cheap: no results are read)."""
    return {k: v for k, v in dataset.get_run_info(run_key).config.serialize().items() if k not in ("cls", "type")}


def load_run(dataset: fo.Dataset, run_key: str) -> RunRecord:
    require_run(dataset, run_key)
    info = dataset.get_run_info(run_key)
    config = run_config(dataset, run_key)
    results = dataset.load_run_results(run_key, cache=False)
    payload = {name: getattr(results, name) for name in results.attributes() if name != "cls"} if results else {}
    view_name = saved_view_name(run_key)
    view = dataset.load_saved_view(view_name) if dataset.has_saved_view(view_name) else None
    return RunRecord(run_key, config, payload, info.timestamp, view)


def save_results(dataset: fo.Dataset, run_key: str, results: dict) -> None:
    """Replace a run's stored results (config and outputs stay)."""
    info = dataset.get_run_info(run_key)
    dataset.save_run_results(run_key, RunResults(dataset, info.config, run_key, **results), overwrite=True, cache=False)


class Transaction:
    """Collects undo steps for each write; on any exception (or Ctrl-C) undoes them in reverse."""

    def __init__(self, dataset: fo.Dataset):
        self.dataset = dataset
        self._undo: list[Callable[[], Any]] = []
        self._commit: list[Callable[[], Any]] = []

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        if kind is not None:
            for step in reversed(self._undo):
                try:
                    step()
                except Exception:  # keep undoing the rest; the original error is what matters
                    pass
            self.dataset.reload()
        else:
            for step in self._commit:
                step()
        return False

    def on_undo(self, step: Callable[[], Any]) -> None:
        self._undo.append(step)

    def tag(self, sample_ids: list[str], tag: str) -> None:
        self.dataset.select(sample_ids).tag_samples(tag)
        self.on_undo(lambda: self.dataset.select(sample_ids).untag_samples(tag))

    def save_view(self, name: str, view: fo.DatasetView) -> None:
        self.dataset.save_view(name, view)
        self.on_undo(lambda: self.dataset.delete_saved_view(name))

    def register(self, source: fo.core.collections.SampleCollection, run_key: str, config: dict, results: dict) -> None:
        """Record the run on ``source`` (FiftyOne keeps the source view's stages with it)."""
        source.register_run(run_key, CondensationRunConfig(**config))
        self.on_undo(lambda: self.dataset.delete_run(run_key))
        save_results(self.dataset, run_key, results)

    def set_field(self, view: fo.core.collections.SampleCollection, field: str, values: list, info: dict) -> None:
        """Write per-sample values; undo restores the previous values or removes a new field."""
        existed = self.dataset.has_sample_field(field)
        previous = view.values(field) if existed else None
        ids = view.values("id")
        view.set_values(field, values)
        self.dataset.get_field(field).info = info
        self.dataset.get_field(field).save()
        if existed:
            self.on_undo(lambda: self.dataset.select(ids, ordered=True).set_values(field, previous))
        else:
            self.on_undo(lambda: self.dataset.delete_sample_field(field))

    def add_samples(self, samples: list[fo.Sample]) -> list[str]:
        """Add new samples; undo deletes them and any field they added to the schema."""
        fields_before = set(self.dataset.get_field_schema())

        def undo() -> None:
            self.dataset.delete_samples(ids)
            for field in set(self.dataset.get_field_schema()) - fields_before:
                self.dataset.delete_sample_field(field)

        ids = self.dataset.add_samples(samples, progress=False)
        self.on_undo(undo)
        return ids

    def add_synthetic_samples(
        self, run_key: str, label_field: str, paths: list[Path], labels: list[str], sources: list[list[str]],
        write_media: Callable[[list[Path]], Any],
    ) -> int:
        """Write a run's new media with ``write_media(paths)`` and add one sample per file (label,
        tags ``condense:<key>`` and ``synthetic``, ``condense_run``, ``condense_sources``); undo
        removes both. Returns the bytes written."""
        for folder in {path.parent for path in paths}:
            folder.mkdir(parents=True, exist_ok=True)
        self.on_undo(lambda: remove_files(paths))
        write_media(paths)
        self.add_samples([
            fo.Sample(filepath=str(path), tags=[run_tag(run_key), SYNTHETIC_TAG],
                      **{label_field: fo.Classification(label=label), RUN_FIELD: run_key, SOURCES_FIELD: list(origin)})
            for path, label, origin in zip(paths, labels, sources)
        ])
        return int(sum(path.stat().st_size for path in paths))

    def delete_run(self, run_key: str) -> None:
        """Remove a run and everything it made; undo puts it all back."""
        record = load_run(self.dataset, run_key)
        info = self.dataset.get_run_info(run_key)
        source_view = self.dataset.load_run_view(run_key)
        tag = run_tag(run_key)
        tagged = self.dataset.match_tags(tag).values("id")
        self._set_aside_synthetic(run_key)
        remove_run(self.dataset, run_key)

        def restore() -> None:
            source_view.register_run(run_key, info.config)
            save_results(self.dataset, run_key, record.results)
            self.dataset.select(tagged).tag_samples(tag)
            if record.view is not None:
                self.dataset.save_view(saved_view_name(run_key), record.view)

        self.on_undo(restore)


    def _set_aside_synthetic(self, run_key: str) -> None:
        """Remove a run's synthetic samples, keeping their media aside until the transaction ends."""
        synthetic = synthetic_samples(self.dataset, run_key)
        if not len(synthetic):
            return
        documents = [sample.to_dict() for sample in synthetic]
        media = [Path(p) for p in synthetic.values("filepath")]
        kept = [path.with_name(path.name + ".condense-undo") for path in media]
        for path, aside in zip(media, kept):
            path.replace(aside)
        self.dataset.delete_samples(synthetic)

        def restore() -> None:
            for path, aside in zip(media, kept):
                aside.replace(path)
            self.dataset.add_samples([fo.Sample.from_dict(d) for d in documents], progress=False)

        self.on_undo(restore)
        self._commit.append(lambda: remove_files(kept))


def synthetic_samples(dataset: fo.Dataset, run_key: str) -> fo.DatasetView:
    """The samples a run created (distilled or colour-compensated images)."""
    if not dataset.has_sample_field(RUN_FIELD):
        return dataset.limit(0)
    return dataset.match_tags(SYNTHETIC_TAG).match({RUN_FIELD: run_key})


def remove_files(paths: list[Path]) -> None:
    for path in paths:
        Path(path).unlink(missing_ok=True)
    for folder in {Path(p).parent for p in paths}:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def remove_run(dataset: fo.Dataset, run_key: str) -> None:
    """Delete a run's synthetic samples and their media, its tags, saved view and record."""
    synthetic = synthetic_samples(dataset, run_key)
    if len(synthetic):
        media = [Path(p) for p in synthetic.values("filepath")]
        dataset.delete_samples(synthetic)
        remove_files(media)
    tag = run_tag(run_key)
    dataset.match_tags(tag).untag_samples(tag)
    name = saved_view_name(run_key)
    if dataset.has_saved_view(name):
        dataset.delete_saved_view(name)
    dataset.delete_run(run_key)
