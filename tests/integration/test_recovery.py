"""Recovery and forgiving deletes (issue 12): who recovers what, when, what it says, and deleting what
is partly gone already.

A run killed half-way is made by the crash tests' child (:mod:`writers`), stopped after a given
write and killed with SIGKILL. Recovery undoes it only when its writer is really gone: a process of
this machine that no longer runs (a later process that reuses its pid is told apart by its start
time), or one that gave it up; a live writer's run and one written from another machine are left
alone (the latter unless ``force``). It runs where the plugin writes (a writer claiming its key, the
panel loading, ``fc.recover``), not where it reads: a read makes at most one journal query, a form
none. Deleting removes what there is and names what was missing.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
from pathlib import Path

import fiftyone as fo
import fiftyone.operators as foo
import pytest
import writers

import fiftyone_condense as fc
from fiftyone_condense.bridge import journal, transaction

SAMPLES_ADDED = 9  # the distill job's write after which its first 2 samples are in the dataset


def killed(dataset: fo.Dataset, job: str = "distill", point: int = SAMPLES_ADDED) -> dict:
    """Kill the job after its write ``point``; its journal entry, left open."""
    process, _ = writers.start(job, dataset, pause=point)
    assert writers.wait(process) == "stopped"
    writers.kill(process)
    (entry,) = journal.entries(dataset)
    return entry


def with_writer(entry: dict, **changes) -> None:
    """Pretend the entry was written by another writer (the same one with ``changes``)."""
    writer = dataclasses.replace(journal.Writer.of(entry["writer"]), **changes)
    journal.journal_collection().update_one({"_id": entry["_id"]}, {"$set": {"writer": dataclasses.asdict(writer)}})


PANEL = "@condense/fiftyone-condense/condense_panel"


def panel_event(dataset: fo.Dataset, method: str, **state) -> None:
    result = foo.execute_operator(PANEL, ctx={"dataset": dataset, "params": {
        "__method__": method, "panel_id": "p1", "panel_state": state}})
    assert result.error is None, result.error


@pytest.fixture
def journal_queries(monkeypatch) -> list[str]:
    """The operations made on the journal collection from now on (find, insert_one, ...), by name."""
    made, collection = [], journal.journal_collection

    class Counted:
        def __init__(self, wrapped):
            self.wrapped = wrapped

        def __getattr__(self, name):
            attribute = getattr(self.wrapped, name)
            if not callable(attribute):
                return attribute

            def counted(*args, **kwargs):
                made.append(name)
                return attribute(*args, **kwargs)

            return counted

    monkeypatch.setattr(journal, "journal_collection", lambda: Counted(collection()))
    return made


OPERATORS = ("compute_embeddings", "select_coreset", "compensate_colors", "distill_dataset", "evaluate_condensed",
             "delete_condensation_run")


def test_recover_undoes_a_killed_run_and_says_what_it_did(small, snapshot):
    before = snapshot(small)
    entry = killed(small)
    assert len(small.match_tags("condense:dm")) == 2  # half-written: 2 of its 6 samples

    report = fc.recover(small)

    assert str(report) == (f"Dataset {small.name!r}:\n  'dm' rolled back (process {entry['writer']['pid']} on "
                           f"{entry['writer']['host']} is gone): removed 2 new samples; removed 2 new media files; "
                           "removed field 'condense_run'; removed field 'condense_sources'; "
                           "removed field 'condense_floats'")
    assert snapshot(small) == before
    assert str(fc.recover(small)) == f"Dataset {small.name!r}: no half-written runs."


def test_a_key_being_written_is_refused_to_others_and_left_alone_by_recovery(small):
    entry = journal.claim(small, "busy")  # this process is writing "busy"
    try:
        with pytest.raises(fc.CondensationError, match=f"run key 'busy' .* is being written by process {os.getpid()}"):
            fc.select(small.match_tags("train"), method="random", ipc=1, run_key="busy")
        fc.select(small.match_tags("train"), method="random", ipc=1, run_key="other")  # another key: as usual
        with pytest.raises(fc.CondensationError, match="'busy' .* is being written by"):
            fc.rename_run(small, "other", "busy")
        (left,) = fc.recover(small).entries
        assert (left.key, left.action) == ("busy", "left alone") and "is still writing" in left.why
    finally:
        entry.release()
    assert not journal.entries(small)


def test_a_process_that_reuses_the_writers_pid_is_not_taken_for_it(small, snapshot):
    before = snapshot(small)
    with_writer(killed(small), pid=os.getpid())  # alive, but started at another time
    fc.recover(small)
    assert snapshot(small) == before and not journal.entries(small)


def test_a_run_written_from_another_machine_is_left_until_forced(small, snapshot):
    before = snapshot(small)
    with_writer(killed(small), host="elsewhere")
    (left,) = fc.recover(small).entries
    assert left.action == "left alone" and "on elsewhere, which cannot be checked from here" in left.why
    with pytest.raises(fc.CondensationError, match="being written by process .* on elsewhere"):
        writers.distill(small)
    assert [e.action for e in fc.recover(small, force=True).entries] == ["rolled back"]
    assert snapshot(small) == before


def test_an_undo_that_fails_is_left_for_the_next_call(small, snapshot, ctrl_c_while_saving_the_view, monkeypatch):
    before = snapshot(small)
    monkeypatch.setattr(transaction, "_restore_view", lambda *args: 1 / 0)  # the undo breaks half-way
    ctrl_c_while_saving_the_view()
    with pytest.raises(KeyboardInterrupt):
        writers.distill(small)
    (entry,) = journal.entries(small)
    assert entry["abandoned"]
    monkeypatch.undo()

    fc.recover(small)  # the writer (this process) gave it up: it is recovered as any other

    assert snapshot(small) == before and not journal.entries(small)


def test_a_writer_recovers_the_dataset_when_it_claims_its_key(small, snapshot):
    before = snapshot(small)
    killed(small)
    fc.list_runs(small)  # a read leaves it as it is
    assert journal.entries(small)

    fc.select(small.match_tags("train"), method="random", ipc=1, run_key="other")

    assert not journal.entries(small) and fc.list_runs(small) == ["other"]
    fc.delete_run(small, "other")
    assert snapshot(small) == before


def test_the_panel_recovers_when_it_loads_and_the_forms_do_not(small, snapshot, form):
    before = snapshot(small)
    killed(small)
    form("select_coreset", small)  # built again on every change of the form: it only reads
    panel_event(small, "on_refresh")
    assert journal.entries(small)
    panel_event(small, "on_load")
    assert snapshot(small) == before and not journal.entries(small)


def test_reads_make_at_most_one_journal_query_and_forms_none(small, form, journal_queries):
    fc.select(small.match_tags("train"), method="random", ipc=1, run_key="picked")
    reads = {"list_runs": lambda: fc.list_runs(small), "load_run": lambda: fc.load_run(small, "picked"),
             "panel refresh": lambda: panel_event(small, "on_refresh", selected="picked")}
    for read, call in reads.items():
        journal_queries.clear()
        call()
        assert len(journal_queries) <= 1, (read, journal_queries)
    journal_queries.clear()
    panel_event(small, "on_load")
    assert journal_queries == ["find"]  # its recovery: one indexed query when there is nothing to recover
    for operator in OPERATORS:
        journal_queries.clear()
        form(operator, small)
        assert journal_queries == [], (operator, journal_queries)


# --------------------------------------------------------------------------- deleting what is partly gone


def distilled(dataset: fo.Dataset) -> list[Path]:
    writers.distill(dataset)
    return [Path(p) for p in dataset.match_tags("condense:dm").values("filepath")]


def test_deleting_a_run_whose_media_were_removed_by_hand_removes_the_rest(small, snapshot):
    before = snapshot(small)
    media = distilled(small)
    shutil.rmtree(media[0].parent)

    report = fc.delete_run(small, "dm")

    assert snapshot(small) == before
    assert (report.samples, report.media, report.saved_view, report.record) == (6, 0, True, True)
    assert report.missing == [f"6 media files (e.g. {media[0]})"]
    assert str(report) == (f"Deleted run 'dm': 6 synthetic samples, 0 media files, its tag on 0 samples, its saved "
                           f"view, its record. Already gone: 6 media files (e.g. {media[0]}).")


def test_deleting_a_run_whose_samples_were_deleted_by_hand_removes_their_media_too(small, snapshot):
    before = snapshot(small)
    distilled(small)
    small.delete_samples(small.match_tags("condense:dm").limit(2))

    report = fc.delete_run(small, "dm")

    assert snapshot(small) == before  # the 2 files no sample refers to any more are gone too
    assert (report.samples, report.media) == (4, 6)
    assert report.missing == ["2 of its 6 synthetic samples (deleted by hand)"]


def test_deleting_a_run_whose_view_was_renamed_by_hand_leaves_the_renamed_view(small):
    fc.select(small.match_tags("train"), method="random", ipc=2, run_key="picked")
    small.update_saved_view_info("condense-picked", {"name": "my picks"})

    report = fc.delete_run(small, "picked")

    assert report.untagged == 6 and report.record and not report.saved_view
    assert report.missing == ["the saved view 'condense-picked' (renamed or deleted by hand; a renamed view is left "
                              "as it is)"]
    assert small.list_saved_views() == ["my picks"] and fc.list_runs(small) == []


def test_fiftyones_own_delete_run_forgives_too_and_logs_what_was_missing(small, snapshot, caplog):
    before = snapshot(small)
    media = distilled(small)
    for path in media[:3]:
        path.unlink()
    small.delete_saved_view("condense-dm")

    with caplog.at_level(logging.WARNING):
        small.delete_run("dm")

    assert snapshot(small) == before
    assert "Already gone: 3 media files" in caplog.text and "the saved view 'condense-dm'" in caplog.text


def test_the_dataset_documents_lock_waits_for_a_live_holder_and_takes_over_from_a_gone_one(small):
    with journal.dataset_document(small):  # held by this process: another holder waits, then gives up
        with pytest.raises(fc.CondensationError, match="is being written by process"):
            with journal.dataset_document(small, timeout=0.2):
                pass
    gone = subprocess.Popen(["true"])
    gone.wait()
    writer = dataclasses.replace(journal.Writer.current(), pid=gone.pid)
    journal.journal_collection().insert_one({"dataset_id": small._doc.id, "key": journal.DOCUMENT_KEY,
                                             "writer": dataclasses.asdict(writer)})
    with journal.dataset_document(small, timeout=5):  # the lock of a process that is gone is taken over
        small.save_view("mine", small.limit(1))
    assert small.list_saved_views() == ["mine"]
    assert not journal.journal_collection().count_documents({"dataset_id": small._doc.id})


def test_leftovers_of_a_key_without_a_record_are_replaced_when_the_key_is_written_again(small):
    """Samples a run of an earlier version left (tagged condense:<key>, no record, no journal) do not
    pile up beside a new run of the key: it sets them aside with everything the key held."""
    leftover = Path(small.first().filepath).parent / "left_over.png"
    shutil.copy(small.first().filepath, leftover)
    small.add_sample(fo.Sample(filepath=str(leftover), tags=["condense:dm", "synthetic"], condense_run="dm",
                               ground_truth=fo.Classification(label="circle")))

    writers.distill(small)

    assert len(small.match_tags("condense:dm")) == len(small.match_tags("synthetic")) == 6
    assert not leftover.exists()
