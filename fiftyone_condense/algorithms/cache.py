"""A content-addressed cache for trained models (teachers), so each is trained once, and the one
way the plugin writes files it reads back (teachers, experts, distillation checkpoints) and reads
them again: plain data only, checked against the SHA-256 recorded when it was written.

:func:`save_atomically` writes tensors and plain data (lists, dicts, strings, numbers) with
``torch.save`` and records the file's SHA-256 beside it, in ``<file>.sha256`` (``sha256sum``'s
format). :func:`load_cached` reads a file back only when its bytes match that digest, and only with
``torch.load(weights_only=True)``, which rebuilds tensors and plain data and never runs code from the
file. Anything else found there is refused: a warning names the file and why, the file is moved
aside (``<file>.refused``) and the caller computes it again.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from pathlib import Path
from typing import Any, Optional

import torch

DIGEST_SUFFIX = ".sha256"
REFUSED_SUFFIX = ".refused"
TORCH_ADVICE = ("Weights only load failed", "Please file an issue", "Check the documentation")

logger = logging.getLogger(__name__)


def cache_dir() -> Path:
    """``$FIFTYONE_CONDENSE_CACHE_DIR``, else ``~/.cache/fiftyone-condense``."""
    root = os.environ.get("FIFTYONE_CONDENSE_CACHE_DIR") or Path.home() / ".cache" / "fiftyone-condense"
    return Path(root)


def digest(parts: Any) -> str:
    """A short stable hash of JSON-serialisable ``parts``."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached_path(kind: str, parts: Any, suffix: str = ".pt") -> Path:
    """Where the ``kind`` of file computed from ``parts`` is cached."""
    return cache_dir() / kind / f"{digest(parts)}{suffix}"


def make_private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents readable by their owner only (0700); folders that
    already exist keep their permissions."""
    for folder in reversed([path, *path.parents]):
        if not folder.exists():
            folder.mkdir(mode=0o700, exist_ok=True)


def digest_path(path: Path) -> Path:
    """The file holding the SHA-256 recorded when ``path`` was written."""
    return path.with_name(path.name + DIGEST_SUFFIX)


def save_atomically(obj: Any, path: Path) -> None:
    """``torch.save`` ``obj`` (tensors and plain data) to a temporary file then rename, so a crash
    never leaves half a file; the file's SHA-256 is recorded beside it first. A crash between the
    two leaves a digest that matches no file there, so the file is refused and computed again."""
    make_private_dir(path.parent)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getbuffer()
    recorded, partial = digest_path(path), path.with_name(path.name + ".partial")
    recorded_partial = recorded.with_name(recorded.name + ".partial")
    recorded_partial.write_text(f"{hashlib.sha256(data).hexdigest()}  {path.name}\n")
    partial.write_bytes(data)
    recorded_partial.replace(recorded)
    partial.replace(path)


def load_cached(path: Path) -> Optional[Any]:
    """What :func:`save_atomically` wrote at ``path``, or None when nothing usable is there (the
    caller then computes it again). A file that does not match its recorded SHA-256, has none, or
    holds more than tensors and plain data is refused (see :func:`refuse`); nothing in it is run."""
    if not path.is_file():
        return None
    data = path.read_bytes()  # checked and loaded from the same bytes
    problem = mismatch(data, digest_path(path))
    if problem is None:
        try:
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as error:  # any failure to read it back means: not ours, compute it again
            problem = f"it does not load as tensors and plain data ({load_error(error)})"
    refuse(path, problem)
    return None


def load_error(error: Exception) -> str:
    """``torch.load``'s ``error`` in one line, without torch's advice to load the file unsafely."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip() and not line.startswith(TORCH_ADVICE)]
    return f"{type(error).__name__}: {' '.join(lines)}"


def mismatch(data: bytes, recorded: Path) -> Optional[str]:
    """Why ``data`` is not what was written with the SHA-256 in ``recorded``; None when it is."""
    try:
        expected = recorded.read_text().split()[0]
    except (OSError, IndexError, UnicodeDecodeError):
        return (f"no SHA-256 was recorded for it in {recorded.name} (written by something else, or before the plugin "
                "recorded digests)")
    if hashlib.sha256(data).hexdigest() != expected:
        return f"its SHA-256 differs from the one recorded when it was written ({recorded.name}): it changed since"
    return None


def refuse(path: Path, problem: str) -> None:
    """Move ``path`` aside to ``<file>.refused`` (its recorded digest removed) and warn, naming it and why."""
    aside = path.with_name(path.name + REFUSED_SUFFIX)
    try:
        path.replace(aside)
    except FileNotFoundError:  # another process refused it first
        pass
    digest_path(path).unlink(missing_ok=True)
    logger.warning("Refused the cached file %s: %s. Nothing in it was run; it was moved to %s and will be "
                   "computed again.", path, problem, aside)
