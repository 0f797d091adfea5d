"""Fashion-MNIST as tensors, straight from its IDX files (the Debian package's, or any folder
holding the four ``*-ubyte.gz`` files), with no FiftyOne: what benchmarks on a bare PyTorch
machine read."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from .errors import CondensationError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
FASHION_MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                       "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file of unsigned bytes into an array of its declared shape."""
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    magic = int.from_bytes(data[:4], "big")
    if magic >> 8 != 0x08:
        raise CondensationError(f"{path} is not an IDX file of unsigned bytes")
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist_tensors(split: str, folder: Path = FASHION_MNIST_DIR) -> tuple[torch.Tensor, torch.Tensor]:
    """A split's images as (N, 1, 28, 28) floats in [0, 1] and its labels as int64."""
    image_file, label_file = FASHION_MNIST_FILES[split]
    images = torch.from_numpy(read_idx(Path(folder) / image_file).copy()).float().div_(255).unsqueeze(1)
    return images, torch.from_numpy(read_idx(Path(folder) / label_file).astype(np.int64))
