"""The plugin calls the crash tests run in child processes, and how those processes are started.

Children are forked from a server that imported the plugin once (a fresh interpreter spends seconds
importing FiftyOne and torch, many times over). Each child loads the dataset by name, makes one
call and reports through a queue: ``("done", writes made)``, ``("refused", message, writes made)``
or ``("failed", error)``. With ``pause=N`` it sets ``FIFTYONE_CONDENSE_PAUSE_AFTER_WRITES=N``: the
process stops itself (SIGSTOP) right after its N-th durable write, where the test kills it.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from typing import Callable, Optional

import fiftyone as fo
import torch

import fiftyone_condense as fc
from fiftyone_condense.bridge import journal, transaction

WRITE_BATCH = 2  # samples and media files per write step: many kill points in a small run


def distill(dataset: fo.Dataset, run_key: str = "dm") -> None:
    fc.distill(dataset.match_tags("train"), method="dm", ipc=2, iterations=2, batch_real=4, run_key=run_key)


def compensate(dataset: fo.Dataset, combine_mode: str = "grid") -> None:
    """A classical colour compensation of the selection ``picked`` under the key ``colours``, replacing one."""
    fc.compensate(dataset.load_saved_view("condense-picked"), backend="classical", combine_mode=combine_mode,
                  edit_size=32, run_key="colours", overwrite=True)


def embed(dataset: fo.Dataset, seed: int = 1) -> None:
    """Embeddings of another teacher written over the stored ones."""
    fc.compute_embeddings(dataset.match_tags("train"), teacher_epochs=1, seed=seed, overwrite=True)


def select_embedded(dataset: fo.Dataset) -> None:
    """A herding selection that computes and stores the embeddings it needs (the field ``embed`` writes)."""
    fc.select(dataset.match_tags("train"), method="herding", ipc=2, run_key="herded", teacher_epochs=1)


def delete(dataset: fo.Dataset) -> None:
    fc.delete_run(dataset, "colours")


def evaluate(dataset: fo.Dataset) -> None:
    """An evaluation stored on the run ``picked`` beside the one it holds."""
    fc.evaluate(run_key="picked", dataset=dataset, protocol="soft", epochs=1, num_models=1, teacher_epochs=1,
                references=False)


def rename(dataset: fo.Dataset) -> None:
    """The selection ``picked`` (its tag, view, scores field, the compensation's reference) renamed ``chosen``."""
    fc.rename_run(dataset, "picked", "chosen")


def rename_outputs(dataset: fo.Dataset) -> None:
    """The compensation ``colours`` (its synthetic samples' ``condense_run`` too) renamed ``recoloured``."""
    fc.rename_run(dataset, "colours", "recoloured")


def recover(dataset: fo.Dataset) -> None:
    fc.recover(dataset)


JOBS: dict[str, Callable] = {"distill": distill, "compensate": compensate, "embed": embed, "delete": delete,
                             "evaluate": evaluate, "rename": rename, "rename_outputs": rename_outputs,
                             "select_embedded": select_embedded, "recover": recover}


def child(job: str, dataset_name: str, pause: Optional[int], results, barrier=None, **arguments) -> None:
    """Run ``job`` on the dataset (with ``arguments``) and report how it ended."""
    torch.set_num_threads(1)
    transaction.WRITE_BATCH = WRITE_BATCH
    if pause is not None:
        os.environ[journal.PAUSE_AFTER_WRITES] = str(pause)
    dataset = fo.load_dataset(dataset_name)
    if barrier is not None:
        barrier.wait()
    try:
        JOBS[job](dataset, **arguments)
        results.put(("done", journal.writes_done()))
    except fc.CondensationError as error:
        results.put(("refused", str(error), journal.writes_done()))
    except Exception as error:  # reported to the test, which fails with it
        results.put(("failed", repr(error)))


# --------------------------------------------------------------------------- the test's side

CONTEXT = multiprocessing.get_context("forkserver")
CONTEXT.set_forkserver_preload(["writers", "fiftyone_condense.api"])


def start(job: str, dataset: fo.Dataset, pause: Optional[int] = None, barrier=None, **arguments):
    """A child running ``job``; returns it with its result queue."""
    results = CONTEXT.Queue()
    process = CONTEXT.Process(target=child, args=(job, dataset.name, pause, results, barrier), kwargs=arguments,
                              daemon=True)
    process.start()
    return process, results


def stopped(pid: int) -> bool:
    """Whether the process stopped itself (state T in /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] in "tT"
    except OSError:
        return False


def wait(process, timeout: float = 120.0) -> str:
    """``stopped`` once the child paused at its kill point, ``exited`` when it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stopped(process.pid):
            return "stopped"
        if not process.is_alive():
            return "exited"
        time.sleep(0.01)
    raise TimeoutError(f"child {process.pid} neither paused nor ended in {timeout} s")


def kill(process) -> None:
    """kill -9, and wait for the process to be gone."""
    process.kill()
    process.join()
