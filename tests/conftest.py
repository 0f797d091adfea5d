"""Test session set-up: a private FiftyOne database, caches and media under a temp dir.

The environment must be set before FiftyOne is imported, so it is done at import time here.
"""

import os
import tempfile
from pathlib import Path

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="condense-tests-"))
os.environ["FIFTYONE_DATABASE_DIR"] = str(_SESSION_DIR / "db")
os.environ["FIFTYONE_DEFAULT_DATASET_DIR"] = str(_SESSION_DIR / "datasets")
os.environ["FIFTYONE_CONDENSE_CACHE_DIR"] = str(_SESSION_DIR / "cache")
os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"
# The checkout is the plugin: expose it to FiftyOne through a private plugins directory.
(_SESSION_DIR / "plugins").mkdir()
(_SESSION_DIR / "plugins" / "fiftyone-condense").symlink_to(Path(__file__).resolve().parents[1])
os.environ["FIFTYONE_PLUGINS_DIR"] = str(_SESSION_DIR / "plugins")

import fiftyone as fo  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import fiftyone_condense as fc  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def fashion_mnist() -> fo.Dataset:
    """A small real Fashion-MNIST: 20 train and 10 test images per class, PNGs on disk."""
    return fc.datasets.load_fashion_mnist(name="fmnist-small", train_per_class=20, test_per_class=10, persistent=False)


@pytest.fixture
def dataset(fashion_mnist) -> fo.Dataset:
    """A fresh copy of the small dataset for a test that writes (media files are shared)."""
    copy = fashion_mnist.clone()
    yield copy
    copy.delete()


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR
