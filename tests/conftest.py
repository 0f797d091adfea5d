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
import hashlib
import importlib.util
import json
import os
import shlex
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
    from fiftyone_condense.algorithms.testing import save_tiny_instruct_pix2pix

    return save_tiny_instruct_pix2pix(session_dir / "tiny-instruct-pix2pix")


@pytest.fixture(scope="session")
def tiny_vae_dir(session_dir) -> Path:
    from fiftyone_condense.algorithms.testing import save_tiny_vae

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


class _Exploit:
    """Unpickling this runs a shell command that creates ``marker``: what a hostile cache file would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


class MaliciousPickle:
    """Plants torch files whose unpickling creates ``marker``; ``ran`` says whether one was executed."""

    def __init__(self, marker: Path):
        self.marker = marker

    def plant(self, path: Path, forge_digest: bool = True) -> None:
        """A checkpoint-looking file at ``path``; with ``forge_digest`` its SHA-256 is recorded beside it as
        the plugin records its own, so only ``weights_only=True`` stands between the file and its code."""
        from fiftyone_condense.algorithms.cache import digest_path

        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": _Exploit(self.marker), "meta": {}}, path)
        digest_path(path).unlink(missing_ok=True)
        if forge_digest:
            digest_path(path).write_text(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")

    @property
    def ran(self) -> bool:
        return self.marker.exists()


@pytest.fixture
def malicious_pickle(tmp_path) -> MaliciousPickle:
    return MaliciousPickle(tmp_path / "pickle-code-ran")


def _files(folder: Path, recursive: bool) -> "dict | None":
    """{relative path: sha256 of its bytes} of the files in ``folder`` (None when it is not there)."""
    if not folder.is_dir():
        return None
    paths = folder.rglob("*") if recursive else folder.iterdir()
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(paths) if p.is_file()}


def media_files(dataset: fo.Dataset) -> dict:
    """The files a run may touch: those in each folder holding the dataset's media, everything under the
    ``condense`` folder beside them (where runs write by default) and under every run's ``output_dir``."""
    folders = sorted({os.path.dirname(path) for path in dataset.values("filepath")})
    trees = {Path(os.path.commonpath(folders)).parent / "condense"} if folders else set()
    for key in dataset.list_runs():
        output_dir = getattr(dataset.get_run_info(key).config, "output_dir", None)
        if output_dir:
            trees.add(Path(output_dir))
    return {**{folder: _files(Path(folder), recursive=False) for folder in folders},
            **{str(tree): _files(tree, recursive=True) for tree in sorted(trees)}}


def _run_records(dataset: fo.Dataset) -> dict:
    """Every run's config and stored results, as plain data."""
    records = {}
    for key in dataset.list_runs():
        results = dataset.load_run_results(key, cache=False)
        records[key] = {"config": dataset.get_run_info(key).config.serialize(),
                        "results": results.serialize() if results is not None else None}
    return records


def sample_documents(dataset: fo.Dataset) -> dict:
    """Every sample's field values by id (all but ``last_modified_at``, which an undone write moves)."""
    return {sample.id: {k: v for k, v in sample.to_dict().items() if k != "last_modified_at"}
            for sample in dataset.iter_samples()}


@pytest.fixture
def snapshot():
    """Everything a run may touch on a dataset: every sample's field values and tags, the schema with
    field types, the runs with their configs and results, saved views and their stages, the dataset's
    info, classes and tags, and the media files on disk with their hashes (:func:`media_files`)."""

    def take(dataset: fo.Dataset) -> dict:
        dataset.reload()
        return {"tags": dataset.count_sample_tags(),
                "fields": {name: (str(field), field.description, field.info)
                           for name, field in dataset.get_field_schema(flat=True).items()},
                "runs": dataset.list_runs(), "run_records": _run_records(dataset),
                "other_runs": [dataset.list_brain_runs(), dataset.list_evaluations(), dataset.list_annotation_runs()],
                "views": {doc.name: list(doc.view_stages) for doc in dataset._doc.get_saved_views()},
                "samples": len(dataset), "sample_documents": sample_documents(dataset),
                "info": dict(dataset.info), "classes": [dataset.classes, dataset.default_classes],
                "dataset_tags": list(dataset.tags), "media": media_files(dataset)}

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


@pytest.fixture(scope="session")
def reliability():
    """``record(table, row)``: a row of the reliability report (tools/reliability_report.py writes
    docs/reliability.md from them), kept as a JSON line in ``$CONDENSE_RELIABILITY_OUT`` when set."""
    path = os.environ.get("CONDENSE_RELIABILITY_OUT")

    def record(table: str, row: dict) -> None:
        if path:
            with open(path, "a") as file:
                file.write(json.dumps({"table": table, **row}, default=str) + "\n")

    return record
