"""A float32 matrix kept on disk and read back by rows, so an (N, D) embedding matrix of a large
view never has to be in memory at once (selection reads one class's rows at a time)."""

from __future__ import annotations

import os
import tempfile
import weakref
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np
import torch

from .cache import cache_dir, make_private_dir


class RowStore:
    """Rows appended in batches to a temporary file (removed with the object), read by index."""

    def __init__(self, width: Optional[int] = None, directory: Optional[Path] = None):
        directory = directory or cache_dir() / "scratch"
        make_private_dir(directory)
        handle, self.path = tempfile.mkstemp(suffix=".f32", dir=directory)
        os.close(handle)
        self._remove = weakref.finalize(self, _remove_file, self.path)
        self.width, self.count = width, 0

    def append(self, rows: Union[np.ndarray, torch.Tensor]) -> None:
        rows = np.ascontiguousarray(rows.cpu().numpy() if isinstance(rows, torch.Tensor) else rows, dtype=np.float32)
        rows = rows.reshape(len(rows), -1)
        if self.width is None:
            self.width = rows.shape[1]
        if rows.shape[1] != self.width:
            raise ValueError(f"rows of width {rows.shape[1]} appended to a store of width {self.width}")
        with open(self.path, "ab") as file:
            file.write(rows.tobytes())
        self.count += len(rows)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.count, self.width or 0)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index) -> np.ndarray:
        """The rows at ``index`` (an int, a slice or an index array), copied into memory."""
        if self.count == 0:
            return np.empty((0, self.width or 0), dtype=np.float32)
        matrix = np.memmap(self.path, dtype=np.float32, mode="r", shape=self.shape)
        try:
            return np.array(matrix[index])
        finally:
            del matrix  # unmapped at once: only the rows asked for were resident

    def batches(self, size: int = 8192) -> Iterator[np.ndarray]:
        for start in range(0, self.count, size):
            yield self[start:start + size]

    @classmethod
    def of(cls, batches) -> "RowStore":
        store = cls()
        for batch in batches:
            store.append(batch)
        return store


def _remove_file(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


Rows = Union[np.ndarray, RowStore]
