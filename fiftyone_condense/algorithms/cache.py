"""A content-addressed cache for trained models (teachers), so each is trained once."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch


def cache_dir() -> Path:
    """``$FIFTYONE_CONDENSE_CACHE_DIR``, else ``~/.cache/fiftyone-condense``."""
    root = os.environ.get("FIFTYONE_CONDENSE_CACHE_DIR") or Path.home() / ".cache" / "fiftyone-condense"
    return Path(root)


def digest(parts: Any) -> str:
    """A short stable hash of JSON-serialisable ``parts``."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached_path(kind: str, parts: Any, suffix: str = ".pt") -> Path:
    return cache_dir() / kind / f"{digest(parts)}{suffix}"


def save_atomically(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file then rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    torch.save(obj, partial)
    partial.replace(path)
