"""Crash-safe and concurrency-safe runs (issue 12): kill -9 at every write, two writers at once.

A child process (:mod:`writers`) makes one plugin call on a small dataset and stops itself right
after its N-th durable write; the test kills it there with SIGKILL and recovers the dataset in this
process (``fc.recover``, as the next writer of the dataset would). Then the dataset must be
identical to before the call — every sample's values and tags, the schema, saved views, runs with
their configs and results, media files and their bytes (the ``snapshot`` of ../conftest.py) — or
identical to the finished call, and no journal entry may be left. N takes every value from the
first write to the last: a distillation (new samples and media), a compensation replacing an
earlier one (its samples, tags, media, view and record set aside first), embeddings written over
stored ones (previous values backed up), a deletion (completed, never undone) and renames (a rename
is only ever completed too); and no results file in GridFS may be left that no run refers to. Two writers of
one key race too: exactly one wins, and the other is refused before writing anything.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Callable

import fiftyone as fo
import fiftyone.core.odm as foo
import pytest
import writers

import fiftyone_condense as fc
from fiftyone_condense.bridge import journal


def select_picked(dataset: fo.Dataset) -> None:
    fc.select(dataset.match_tags("train"), method="random", ipc=2, run_key="picked")


def earlier_colours(dataset: fo.Dataset) -> None:
    """The compensation the ``compensate`` job replaces."""
    select_picked(dataset)
    fc.compensate(dataset.load_saved_view("condense-picked"), backend="classical", combine_mode="gradient",
                  edit_size=32, run_key="colours")


def stored_embeddings(dataset: fo.Dataset) -> None:
    writers.embed(dataset, seed=0)


def evaluated(dataset: fo.Dataset) -> None:
    """The selection ``picked`` with a hard evaluation stored on it."""
    select_picked(dataset)
    fc.evaluate(run_key="picked", dataset=dataset, epochs=1, num_models=1, references=False)


def scored_colours(dataset: fo.Dataset) -> None:
    """The selection ``picked`` with its scores in ``condense_scores_picked``, and a compensation of it
    (its embeddings computed afresh each time, so that the run records them alike)."""
    dataset.delete_sample_fields([f for f in ("condense_embedding", "condense_embedding_logits")
                                  if dataset.has_sample_field(f)])
    fc.select(dataset.match_tags("train"), method="graph_cut", ipc=2, run_key="picked", teacher_epochs=1,
              scores_field=True)
    fc.compensate(dataset.load_saved_view("condense-picked"), backend="classical", combine_mode="gradient",
                  edit_size=32, run_key="colours")


def unreferenced_results(dataset: fo.Dataset) -> list:
    """This plugin's results files (GridFS) of the dataset that no run document refers to."""
    db = foo.get_db_conn()
    ours = [d["_id"] for d in db.fs.files.find({"condense_dataset": dataset._doc.id}, {"_id": 1})]
    referenced = {d["results"] for d in db.runs.find({"results": {"$in": ours}}, {"results": 1})}
    return [file_id for file_id in ours if file_id not in referenced]


VOLATILE = {"created_at", "_id", "timings", "seconds", "resumed_from"}


def comparable(state: dict) -> dict:
    """A snapshot without what differs between two runs of one call: the new samples' ids (their
    labels' too) and creation times, how long things took and where a run resumed its checkpoint."""
    documents = {d["filepath"]: without(VOLATILE, d) for d in state["sample_documents"].values()}
    records = {key: {"config": record["config"], "results": without(VOLATILE, record["results"])}
               for key, record in state["run_records"].items()}
    return {**state, "sample_documents": documents, "run_records": records}


def without(keys: set, value):
    """``value`` with the dict entries named ``keys`` left out, at any depth."""
    if isinstance(value, dict):
        return {k: without(keys, v) for k, v in value.items() if k not in keys}
    return [without(keys, v) for v in value] if isinstance(value, list) else value


def differences(a, b, path: str = "") -> list[str]:
    """Where two snapshots differ (paths to the differing values), for a failure's message."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(set(a) | set(b), key=str)
                for d in differences(a.get(key, "<absent>"), b.get(key, "<absent>"), f"{path}/{key}")]
    return [] if a == b else [f"{path}: {str(a)[:120]} != {str(b)[:120]}"]


@dataclass
class Job:
    """A call run in a child, how to make the dataset it starts from, and how to get back there."""

    setup: Callable[[fo.Dataset], None]
    reset: Callable[[fo.Dataset], None]


JOBS = {
    "distill": Job(setup=lambda ds: None, reset=lambda ds: fc.delete_run(ds, "dm")),
    "compensate": Job(setup=earlier_colours, reset=lambda ds: (fc.delete_run(ds, "colours"), fc.delete_run(ds, "picked"),
                                                               earlier_colours(ds))),
    "embed": Job(setup=stored_embeddings, reset=stored_embeddings),
    "delete": Job(setup=earlier_colours, reset=lambda ds: (fc.delete_run(ds, "picked"), earlier_colours(ds))),
    "evaluate": Job(setup=evaluated, reset=lambda ds: (fc.delete_run(ds, "picked"), evaluated(ds))),
    "rename": Job(setup=scored_colours, reset=lambda ds: (fc.delete_run(ds, "colours"), fc.delete_run(ds, "chosen"),
                                                          scored_colours(ds))),
    "rename_outputs": Job(setup=earlier_colours, reset=lambda ds: (fc.delete_run(ds, "recoloured"),
                                                                   fc.delete_run(ds, "picked"), earlier_colours(ds))),
}


def finished_run(job: str, dataset: fo.Dataset, snapshot) -> tuple[int, dict]:
    """Run the call to its end in a child: its number of writes and the dataset it leaves."""
    process, results = writers.start(job, dataset)
    assert writers.wait(process) == "exited"
    outcome = results.get(timeout=10)
    process.join()
    assert outcome[0] == "done", outcome
    return outcome[1], comparable(snapshot(dataset))


def kill_at(job: str, dataset: fo.Dataset, point: int) -> None:
    process, _ = writers.start(job, dataset, pause=point)
    assert writers.wait(process) == "stopped", f"the child ended before its write {point}"
    writers.kill(process)


@pytest.mark.parametrize("job", JOBS)
def test_a_call_killed_at_any_write_leaves_the_dataset_as_before_or_as_finished(job, small, snapshot, reliability):
    dataset = small
    JOBS[job].setup(dataset)
    writes, finished = finished_run(job, dataset, snapshot)
    JOBS[job].reset(dataset)
    outcomes = []
    for point in range(1, writes + 1):
        before = snapshot(dataset)
        kill_at(job, dataset, point)

        fc.recover(dataset)  # as the next writer of the dataset does first

        after = snapshot(dataset)
        assert not journal.entries(dataset), f"killed after write {point}: a journal entry is left"
        assert not unreferenced_results(dataset), f"killed after write {point}: a results file is left unreferenced"
        assert after == before or comparable(after) == finished, (
            f"killed after write {point}, half-written: against before {differences(after, before)[:5]}, "
            f"against finished {differences(comparable(after), finished)[:5]}")
        outcomes.append("as before" if after == before else "as finished")
        if outcomes[-1] == "as finished":
            JOBS[job].reset(dataset)
    assert journal.backups_collection().count_documents({}) == 0
    undone = outcomes.count("as before")
    reliability("kill points", {"call": job, "writes": writes, "as before": undone,
                                "as finished": writes - undone, "passed": writes})
    assert 1 <= undone < writes and outcomes == sorted(outcomes), outcomes  # undone up to the commit, finished after


def test_a_recovery_killed_at_any_write_is_completed_by_the_next_call(small, snapshot, reliability):
    """A compensation replacing another is killed half-way; a second process recovering it is killed
    in turn after each of its writes; the next call still puts the dataset back as it was."""
    dataset = small
    earlier_colours(dataset)
    writes, _ = finished_run("compensate", dataset, snapshot)
    JOBS["compensate"].reset(dataset)
    before, point = snapshot(dataset), 1
    while True:
        kill_at("compensate", dataset, writes // 2)
        process, results = writers.start("recover", dataset, pause=point)
        if writers.wait(process) == "exited":  # the recovery has fewer writes than `point`
            assert results.get(timeout=10)[0] == "done"
            break
        writers.kill(process)

        fc.recover(dataset)

        assert snapshot(dataset) == before and not journal.entries(dataset), f"recovery killed after write {point}"
        point += 1
    assert snapshot(dataset) == before and not journal.entries(dataset)
    reliability("kill points", {"call": "recover (a compensation killed half-way)", "writes": point - 1,
                                "as before": point - 1, "as finished": 0, "passed": point - 1})
    assert point > 10


def test_of_two_writers_of_one_key_one_wins_and_the_other_is_refused_before_writing(small, snapshot, reliability):
    """Both start at once; the first to claim the key stops right after its claim, so the other
    reaches its own claim while the key is held, whatever the timing; then the first goes on."""
    dataset = small
    _, alone = finished_run("distill", dataset, snapshot)
    fc.delete_run(dataset, "dm")
    barrier = writers.CONTEXT.Barrier(2)
    started = [writers.start("distill", dataset, pause=1, barrier=barrier) for _ in range(2)]
    states = [writers.wait(process) for process, _ in started]
    assert sorted(states) == ["exited", "stopped"]
    winner, results = started[states.index("stopped")]
    loser_outcome = started[states.index("exited")][1].get(timeout=10)
    os.kill(winner.pid, signal.SIGCONT)
    winner.join(timeout=120)
    winner_outcome = results.get(timeout=10)

    assert winner_outcome[0] == "done", winner_outcome
    assert loser_outcome[0] == "refused" and loser_outcome[2] == 0, loser_outcome  # no write at all
    assert "run key 'dm'" in loser_outcome[1] and "is being written by process" in loser_outcome[1]
    assert comparable(snapshot(dataset)) == alone  # one run, its 6 samples and media, nothing else
    assert len(dataset.match_tags("condense:dm")) == 6
    reliability("races", {"race": "two writers, one key", "result": "one done, one refused before writing",
                          "dataset": "as after the winner alone"})


def test_two_writers_of_different_keys_both_write(small, reliability):
    """Both stop once they hold their keys, before writing the dataset, and go on together: their
    writes interleave (new fields, samples, saved views, records), and none is lost."""
    dataset = small
    started = [writers.start("distill", dataset, pause=3, run_key=key) for key in ("a", "b")]
    assert [writers.wait(process) for process, _ in started] == ["stopped", "stopped"]
    for process, _ in started:
        os.kill(process.pid, signal.SIGCONT)
    outcomes = [results.get(timeout=120) for _, results in started]
    for process, _ in started:
        process.join()

    assert [outcome[0] for outcome in outcomes] == ["done", "done"], outcomes
    dataset.reload()  # written by other processes
    assert fc.list_runs(dataset) == ["a", "b"]
    for key in ("a", "b"):
        assert len(dataset.load_saved_view(f"condense-{key}")) == len(dataset.match_tags(f"condense:{key}")) == 6
    assert len(dataset.match_tags("synthetic")) == 12
    reliability("races", {"race": "two writers, two keys", "result": "both done",
                          "dataset": "both runs, each with its 6 samples and view"})


def held_by(job: str, dataset: fo.Dataset, claims: int):
    """A child running ``job``, stopped once it holds its first ``claims`` journal keys."""
    process, results = writers.start(job, dataset, pause=claims)
    assert writers.wait(process) == "stopped"
    return process, results


def let_finish(process, results) -> tuple:
    os.kill(process.pid, signal.SIGCONT)
    process.join(timeout=120)
    return results.get(timeout=10)


REFUSED_FIELD = "embeddings field 'condense_embedding' .* is being written by process .* choose another embeddings_field"


def test_a_selection_that_would_write_an_embeddings_field_being_computed_is_refused(small, refused, reliability):
    """``compute_embeddings`` holds the field (stopped right after its claim); a selection under
    another run key that would store embeddings in it is refused before writing, the first goes on."""
    process, results = held_by("embed", small, claims=1)
    refused(small, REFUSED_FIELD, lambda: writers.select_embedded(small))
    assert let_finish(process, results)[0] == "done"
    small.reload()
    assert not fc.list_runs(small) and len(small.exists("condense_embedding")) == len(small.match_tags("train"))
    reliability("races", {"race": "compute_embeddings, then a selection writing its field",
                          "result": "the selection refused before writing", "dataset": "the embeddings alone"})


def test_compute_embeddings_into_a_field_a_selection_is_writing_is_refused(small, refused, reliability):
    """A selection holds its run key and the embeddings field it will store (stopped right after the
    second claim); ``compute_embeddings`` of that field is refused, the selection goes on."""
    process, results = held_by("select_embedded", small, claims=2)
    refused(small, REFUSED_FIELD, lambda: writers.embed(small))
    assert let_finish(process, results)[0] == "done"
    small.reload()
    assert fc.list_runs(small) == ["herded"] and fc.load_run(small, "herded").config["embeddings_field"] == \
        "condense_embedding"
    reliability("races", {"race": "a selection writing embeddings, then compute_embeddings of its field",
                          "result": "compute_embeddings refused before writing", "dataset": "the selection alone"})
