"""Datasets available offline, loaded into FiftyOne with images on disk."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import fiftyone as fo
import numpy as np
from PIL import Image

from ..algorithms.errors import CondensationError
from ..algorithms.idx import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, FASHION_MNIST_FILES, read_idx  # noqa: F401 (re-exported)
from ..algorithms.progress import Progress, ProgressFn, chunks


def _balanced_head(labels: np.ndarray, per_class: Optional[int]) -> np.ndarray:
    """Indices of the first ``per_class`` samples of each class (all when None), in file order."""
    if per_class is None:
        return np.arange(len(labels))
    keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)])
    return np.sort(keep)


def _write_pngs(images: np.ndarray, paths: list[str], progress: ProgressFn) -> None:
    def write(item):
        pixels, path = item
        if not os.path.isfile(path):
            Image.fromarray(pixels).save(path, optimize=False)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for start, stop in chunks(len(paths), 2000):
            list(pool.map(write, zip(images[start:stop], paths[start:stop])))
            progress(stop / len(paths), f"{stop}/{len(paths)} PNGs")


def load_fashion_mnist(
    name: str = "fashion-mnist",
    source_dir: str | Path = FASHION_MNIST_DIR,
    media_dir: Optional[str | Path] = None,
    train_per_class: Optional[int] = None,
    test_per_class: Optional[int] = None,
    persistent: bool = True,
    overwrite: bool = False,
    progress: Optional[ProgressFn] = None,
) -> fo.Dataset:
    """Fashion-MNIST from the Debian ``dataset-fashion-mnist`` files as a FiftyOne dataset.

    Images are written as PNG files under ``media_dir`` (default: FiftyOne's dataset
    directory / ``name``); samples are tagged ``train`` or ``test`` and labelled in the
    ``ground_truth`` Classification field. ``*_per_class`` keep the first N images of each
    class (for quick experiments). An existing dataset built with the same settings is
    reused; ``overwrite=True`` rebuilds it.
    """
    source_dir = Path(source_dir)
    settings = {"source": "fashion-mnist", "train_per_class": train_per_class, "test_per_class": test_per_class}
    if fo.dataset_exists(name):
        existing = fo.load_dataset(name)
        if existing.info.get("condense_source") == settings and not overwrite:
            return existing
        if not overwrite:
            raise CondensationError(f"Dataset {name!r} exists with other contents; pass overwrite=True or another name")
        existing.delete()
    missing = [f for files in FASHION_MNIST_FILES.values() for f in files if not (source_dir / f).is_file()]
    if missing:
        raise CondensationError(
            f"Fashion-MNIST files {missing} not found in {source_dir}; install the Debian package dataset-fashion-mnist"
        )
    media_root = Path(media_dir) if media_dir else Path(fo.config.default_dataset_dir) / name
    reporter = Progress(progress)
    samples = []
    for position, (split, (image_file, label_file)) in enumerate(FASHION_MNIST_FILES.items()):
        images, labels = read_idx(source_dir / image_file), read_idx(source_dir / label_file)
        keep = _balanced_head(labels, train_per_class if split == "train" else test_per_class)
        folder = media_root / split
        folder.mkdir(parents=True, exist_ok=True)
        paths = [str(folder / f"{index:05d}.png") for index in keep]
        _write_pngs(images[keep], paths, reporter.stage(f"writing {split} images", 0.4 * position, 0.4 * position + 0.4))
        samples.extend(
            fo.Sample(filepath=path, tags=[split], ground_truth=fo.Classification(label=FASHION_MNIST_CLASSES[labels[i]]))
            for path, i in zip(paths, keep)
        )
    dataset = fo.Dataset(name)
    try:
        dataset.default_classes = FASHION_MNIST_CLASSES
        dataset.add_samples(samples)
        dataset.info = {"condense_source": settings}
        dataset.persistent = persistent
        dataset.save()
    except BaseException:
        dataset.delete()
        raise
    reporter.stage("adding samples", 0.8, 1.0)(1.0)
    return dataset
