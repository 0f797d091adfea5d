"""Every test here runs against the session's private FiftyOne database (see ../conftest.py)."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_database(database):
    return database
