"""Test session set-up: caches, media and plugins under a temp dir, and a private FiftyOne database
that starts only when a test needs it.

Layout: ``unit/`` (algorithms on tensors: no database), ``integration/`` (the SDK, runs and
operators on a real database and real PNGs) and ``app/`` (the real App in a real browser). The
last two use the ``database`` fixture (autouse there), which starts FiftyOne's bundled MongoDB on
127.0.0.1 with a temporary directory. FiftyOne attaches to any database service already running on
the machine, so its URI is fixed here, before FiftyOne is imported, on a port chosen now; a unit
test that touched the database by mistake would fail to connect rather than start one.
"""

import atexit
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="condense-tests-"))
atexit.register(shutil.rmtree, _SESSION_DIR, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


_DATABASE_PORT = _free_port()
os.environ["FIFTYONE_DATABASE_URI"] = f"mongodb://127.0.0.1:{_DATABASE_PORT}/?serverSelectionTimeoutMS=10000"
os.environ["FIFTYONE_DEFAULT_DATASET_DIR"] = str(_SESSION_DIR / "datasets")
os.environ["FIFTYONE_CONDENSE_CACHE_DIR"] = str(_SESSION_DIR / "cache")
os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"
os.environ["HF_HUB_OFFLINE"] = "1"  # tests never reach the network: hub ids resolve from the local cache or fail at once
# The checkout is the plugin: expose it to FiftyOne through a private plugins directory.
(_SESSION_DIR / "plugins").mkdir()
(_SESSION_DIR / "plugins" / "fiftyone-condense").symlink_to(Path(__file__).resolve().parents[1])
os.environ["FIFTYONE_PLUGINS_DIR"] = str(_SESSION_DIR / "plugins")

import fiftyone as fo  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import fiftyone_condense as fc  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


def _start_private_mongod(directory: Path, port: int) -> subprocess.Popen:
    """Start the mongod that ships with FiftyOne on 127.0.0.1:``port``, stopped at exit."""
    package = Path(importlib.util.find_spec("fiftyone").submodule_search_locations[0])
    directory.mkdir(parents=True)
    process = subprocess.Popen(
        [str(package / "db" / "bin" / "mongod"), "--dbpath", str(directory), "--port", str(port),
         "--bind_ip", "127.0.0.1", "--nounixsocket", "--logpath", str(directory / "mongod.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()

    atexit.register(stop)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as client:
            if client.connect_ex(("127.0.0.1", port)) == 0:
                return process
        if process.poll() is not None:
            raise RuntimeError(f"mongod exited with {process.returncode}; see {directory / 'mongod.log'}")
        time.sleep(0.2)
    raise RuntimeError("mongod did not start within 60 s")


@pytest.fixture(scope="session")
def database() -> str:
    """The session's private MongoDB, started on first use; its URI."""
    _start_private_mongod(_SESSION_DIR / "db", _DATABASE_PORT)
    return os.environ["FIFTYONE_DATABASE_URI"]


@pytest.fixture(scope="session")
def fashion_mnist(database) -> fo.Dataset:
    """A small real Fashion-MNIST: 20 train and 10 test images per class, PNGs on disk."""
    return fc.datasets.load_fashion_mnist(name="fmnist-small", train_per_class=20, test_per_class=10, persistent=False)


@pytest.fixture
def dataset(fashion_mnist) -> fo.Dataset:
    """A fresh copy of the small dataset for a test that writes (media files are shared)."""
    copy = fashion_mnist.clone()
    yield copy
    for run_key in fc.list_runs(copy):  # removes synthetic media too
        fc.delete_run(copy, run_key)
    copy.delete()


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture(scope="session")
def tiny_pix2pix(session_dir) -> Path:
    """A tiny InstructPix2Pix pipeline saved with save_pretrained, loaded back by path like real weights."""
    from fiftyone_condense.testing import save_tiny_instruct_pix2pix

    return save_tiny_instruct_pix2pix(session_dir / "tiny-instruct-pix2pix")


@pytest.fixture(scope="session")
def tiny_vae_dir(session_dir) -> Path:
    from fiftyone_condense.testing import save_tiny_vae

    return save_tiny_vae(session_dir / "tiny-vae")


@pytest.fixture
def ctrl_c_while_saving_the_view(monkeypatch):
    """Arms a Ctrl-C that arrives while a run writes its saved view (its last write)."""
    original = fo.Dataset.save_view

    def interrupt_once(self, *args, **kwargs):
        monkeypatch.setattr(fo.Dataset, "save_view", original)
        raise KeyboardInterrupt

    def arm() -> None:
        monkeypatch.setattr(fo.Dataset, "save_view", interrupt_once)

    return arm


# --------------------------------------------------------------------------- shared helpers


@pytest.fixture
def snapshot():
    """Everything a run may touch on a dataset: tags, fields, runs, saved views, sample count, info."""

    def take(dataset: fo.Dataset) -> dict:
        dataset.reload()
        return {"tags": dataset.count_sample_tags(), "fields": sorted(dataset.get_field_schema()),
                "runs": dataset.list_runs(), "views": dataset.list_saved_views(), "samples": len(dataset),
                "info": dict(dataset.info)}

    return take


@pytest.fixture
def refused(snapshot):
    """Assert that ``call()`` raises a CondensationError matching ``match`` and changes nothing."""

    def check(dataset: fo.Dataset, match: str, call) -> None:
        before = snapshot(dataset)
        with pytest.raises(fc.CondensationError, match=match):
            call()
        assert snapshot(dataset) == before

    return check


@pytest.fixture
def run_operator():
    """Execute one of the plugin's operators immediately, as FiftyOne does (generators exhausted)."""

    def execute(operator: str, dataset: fo.Dataset, view=None, **params):
        import fiftyone.operators as foo

        result = foo.execute_operator(f"@condense/fiftyone-condense/{operator}",
                                      ctx={"dataset": dataset, "view": view or dataset.view(), "params": params})
        assert result.error is None, result.error
        return result.result

    return execute


@pytest.fixture
def form():
    """An operator's resolved input form for these params, as the App sees it: {name: property}."""

    def resolve(operator: str, dataset: fo.Dataset, **params) -> dict:
        import fiftyone.operators as foo
        from fiftyone.operators.executor import ExecutionContext

        op = foo.get_operator(f"@condense/fiftyone-condense/{operator}")
        ctx = ExecutionContext(request_params={"dataset_name": dataset.name, "params": params})
        return op.resolve_input(ctx).type.properties

    return resolve
