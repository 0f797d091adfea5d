"""A small real dataset for tests that write: 3 classes of 28×28 grey PNGs told apart by their
brightness, 8 train and 4 test images each."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import fiftyone as fo
import numpy as np
from PIL import Image

CLASSES = ("circle", "square", "stripe")
TRAIN, TEST = 8, 4


def build(folder: Path, name: Optional[str] = None, persistent: bool = False) -> fo.Dataset:
    """The dataset, its PNGs written to ``folder``, tagged train/test, with ``info``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    samples = []
    for c, label in enumerate(CLASSES):
        for i in range(TRAIN + TEST):
            path = folder / f"{label}_{i:02d}.png"
            Image.fromarray(np.clip(rng.normal(50 + 75 * c, 30, (28, 28)), 0, 255).astype(np.uint8), "L").save(path)
            samples.append(fo.Sample(filepath=str(path), tags=["train" if i < TRAIN else "test"],
                                     ground_truth=fo.Classification(label=label)))
    dataset = fo.Dataset(name, persistent=persistent)
    dataset.add_samples(samples, progress=False)
    dataset.info = {"made_by": "tests"}
    dataset.save()
    return dataset
