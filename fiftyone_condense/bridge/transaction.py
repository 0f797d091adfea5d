"""All-or-nothing writes: :class:`Transaction` undoes every write of a run that fails or is interrupted."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import fiftyone as fo

from .runs import (
    RUN_FIELD, SOURCES_FIELD, SYNTHETIC_TAG, CondensationRunConfig, load_run, remove_files, run_tag, save_results,
    saved_view_name, synthetic_samples,
)


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

    def register(self, source: fo.core.collections.SampleCollection, run_key: str, config: CondensationRunConfig,
                 results: dict) -> None:
        """Record the run on ``source`` (FiftyOne keeps the source view's stages with it)."""
        source.register_run(run_key, config)
        self.on_undo(lambda: self.dataset.delete_run(run_key))
        save_results(self.dataset, run_key, results)

    def set_field(self, view: fo.core.collections.SampleCollection, field: str, values, info: dict,
                  batch: int = 8192) -> None:
        """Write per-sample values (a list, an array or a row store, in the view's order), ``batch``
        samples at a time; undo restores the previous values or removes a new field."""
        existed = self.dataset.has_sample_field(field)
        previous = view.values(field) if existed else None
        ids = view.values("id")
        for start in range(0, len(ids), batch):
            chunk = ids[start:start + batch]
            self.dataset.set_values(field, dict(zip(chunk, list(values[start:start + len(chunk)]))), key_field="id")
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
        write_media: Callable[[list[Path]], Any], shape: tuple[int, int, int],
    ) -> int:
        """Write a run's new media with ``write_media(paths)`` and add one sample per file (label,
        tags ``condense:<key>`` and ``synthetic``, ``condense_run``, ``condense_sources``, and
        ``metadata`` of the (channels, height, width) ``shape`` written, which a palette PNG's
        header does not tell); undo removes both. Returns the bytes written."""
        for folder in {path.parent for path in paths}:
            folder.mkdir(parents=True, exist_ok=True)
        self.on_undo(lambda: remove_files(paths))
        write_media(paths)
        channels, height, width = shape
        sizes = [path.stat().st_size for path in paths]
        self.add_samples([
            fo.Sample(filepath=str(path), tags=[run_tag(run_key), SYNTHETIC_TAG],
                      metadata=fo.ImageMetadata(size_bytes=size, mime_type="image/png", width=width, height=height,
                                                num_channels=channels),
                      **{label_field: fo.Classification(label=label), RUN_FIELD: run_key, SOURCES_FIELD: list(origin)})
            for path, label, origin, size in zip(paths, labels, sources, sizes)
        ])
        return int(sum(sizes))

    def delete_run(self, run_key: str) -> None:
        """Remove a run and everything it made (FiftyOne's delete, which runs the run's cleanup);
        undo puts it all back."""
        record = load_run(self.dataset, run_key)
        info = self.dataset.get_run_info(run_key)
        source_view = self.dataset.load_run_view(run_key)
        tag = run_tag(run_key)
        tagged = self.dataset.match_tags(tag).values("id")
        self._set_aside_synthetic(run_key)
        self.dataset.delete_run(run_key)

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
        present = [path for path in media if path.exists()]
        kept = [path.with_name(path.name + ".condense-undo") for path in present]
        for path, aside in zip(present, kept):
            path.replace(aside)
        self.dataset.delete_samples(synthetic)

        def restore() -> None:
            for path, aside in zip(present, kept):
                aside.replace(path)
            self.dataset.add_samples([fo.Sample.from_dict(d) for d in documents], progress=False)

        self.on_undo(restore)
        self._commit.append(lambda: remove_files(kept))
