"""Runs started by ``torchrun`` with two Gloo processes: the main process reads the dataset and
writes the run, the other reads media only, and the run equals a single-process SDK run. A rank
killed mid-run leaves the dataset as it was."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fiftyone.operators as foo
import numpy as np
import pytest
from fiftyone.operators.delegated import DelegatedOperationService
from PIL import Image

import fiftyone_condense as fc
from fiftyone_condense.algorithms.cache import cache_dir

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "fiftyone_condense.apps.launch"]


@pytest.fixture
def shared(dataset):
    """The test's dataset, visible to the launched processes by name."""
    dataset.persistent = True
    yield dataset
    dataset.persistent = False


def launch(dataset, *args: str, timeout: float = 600) -> dict:
    """Run the launcher under torchrun on ``dataset``; reload it (another process wrote to it)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*TORCHRUN, args[0], "--dataset", dataset.name, *args[1:]], env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    dataset.reload()
    return json.loads(done.stdout.strip().splitlines()[-1])


def pixels(dataset, run_key: str) -> list[np.ndarray]:
    view = dataset.match_tags(f"condense:{run_key}").sort_by("filepath")
    return [np.asarray(Image.open(path), dtype=np.int16) for path in view.values("filepath")]


def test_a_two_process_distillation_writes_what_one_process_writes(shared):
    params = ["--param", "iterations=2", "--param", "batch_real=4"]
    summary = launch(shared, "distill", "--tags", "train", "--method", "dm", "--ipc", "2",
                     "--run-key", "dm_two", *params)
    assert summary == {"command": "distill", "processes": 2, "run_key": "dm_two", "num_samples": 20}
    fc.distill(shared.match_tags("train"), method="dm", ipc=2, run_key="dm_one", iterations=2, batch_real=4)
    two, one = pixels(shared, "dm_two"), pixels(shared, "dm_one")
    assert len(two) == len(one) == 20
    assert max(int(np.abs(a - b).max()) for a, b in zip(two, one)) <= 1  # float rounding, then 8 bits
    assert fc.load_run(shared, "dm_two").results["loss_history"] == pytest.approx(
        fc.load_run(shared, "dm_one").results["loss_history"], rel=1e-4)


def test_two_processes_embed_select_and_evaluate_as_one(shared):
    launch(shared, "embed", "--tags", "train", "--param", "embeddings_field=emb_two", "--param", "teacher_epochs=1")
    train = shared.match_tags("train")
    fc.compute_embeddings(train, embeddings_field="emb_one", teacher_epochs=1)
    np.testing.assert_allclose(np.stack(train.values("emb_two")), np.stack(train.values("emb_one")), rtol=1e-4, atol=1e-5)
    launch(shared, "select", "--tags", "train", "--method", "herding", "--ipc", "2",
           "--run-key", "herd_two", "--param", "teacher_epochs=1")
    fc.select(shared.match_tags("train"), method="herding", ipc=2, run_key="herd_one", teacher_epochs=1, overwrite=True)
    assert sorted(shared.load_saved_view("condense-herd_two").values("id")) == sorted(
        shared.load_saved_view("condense-herd_one").values("id"))
    summary = launch(shared, "evaluate", "--run-key", "herd_two", "--param", "epochs=2",
                     "--param", "num_models=2", "--param", "references=false")
    single = fc.evaluate(run_key="herd_two", dataset=shared, epochs=2, num_models=2, references=False)
    assert summary["mean"] == pytest.approx(single["mean"], abs=1e-6)


def test_a_killed_rank_leaves_the_dataset_as_it_was(shared, snapshot):
    before = snapshot(shared)
    checkpoint = cache_dir() / "runs" / str(shared._doc.id) / "dm_killed" / "checkpoint.pt"
    process = subprocess.Popen(
        [*TORCHRUN, "distill", "--dataset", shared.name, "--tags", "train", "--method", "dm", "--ipc", "2",
         "--run-key", "dm_killed", "--param", "iterations=100000", "--param", "batch_real=4",
         "--param", "checkpoint_every=1"], env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 300
        while not checkpoint.exists():  # distilling on both ranks
            assert process.poll() is None and time.time() < deadline, process.stdout.read().decode()[-3000:]
            time.sleep(0.5)
        os.kill(rank_process(process.pid, rank=1), signal.SIGKILL)
        assert process.wait(timeout=300) != 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    shared.reload()
    assert snapshot(shared) == before


def rank_process(launcher_pid: int, rank: int) -> int:
    """The pid of the worker process torchrun started for ``rank``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == launcher_pid and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    raise AssertionError(f"no rank {rank} process under {launcher_pid}")


def test_the_distil_form_schedules_a_run_on_the_processes_it_asks_for(shared):
    """``processes`` (default ``$FIFTYONE_CONDENSE_NPROC``) above 1 makes the run a scheduled one whose
    executor starts torchrun on the operator's view."""
    queued = foo.execute_operator("@condense/fiftyone-condense/distill_dataset", ctx={
        "dataset": shared, "view": shared.view(), "params": {
            "method": "dm", "ipc": 1, "run_key": "dm_scheduled", "split": "train", "iterations": 2, "batch_real": 4,
            "processes": 2}})
    assert queued.delegated and fc.list_runs(shared) == []  # scheduled although not asked to be
    [done] = DelegatedOperationService().execute_queued_operations(dataset_name=shared.name)
    assert done.error is None, done.error
    shared.reload()
    assert fc.load_run(shared, "dm_scheduled").results["num_samples"] == 10
