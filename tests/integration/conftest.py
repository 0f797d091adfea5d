"""Every test here runs against the session's private FiftyOne database (see ../conftest.py)."""

import pytest
from small_dataset import build

import fiftyone_condense as fc


@pytest.fixture(autouse=True, scope="session")
def _private_database(database):
    return database


@pytest.fixture
def small(tmp_path):
    """The small dataset, persistent so child processes can load it by name."""
    dataset = build(tmp_path / "media", persistent=True)
    yield dataset
    for run_key in fc.list_runs(dataset):
        fc.delete_run(dataset, run_key)
    dataset.delete()
