"""Load and soak: scheduled operations at once through FiftyOne's delegated-operation service, then
many create/delete cycles, on a private database (issue 24).

(a) ``--ops`` operations (selections, a distillation, evaluations, deletions; some of them on the
same run key on purpose) are queued with FiftyOne's real :class:`DelegatedOperationService` on one
dataset, then spread over ``--datasets`` datasets, and run together: one worker process per
operation calls the service's ``execute_operation`` on its queued document, all released by one
barrier. Each must end completed, or failed with a ``CondensationError`` (a clear refusal); after
``fc.recover`` no journal entry is left, no results file is unreferenced, and every run key is
either listed with its tag and saved view or absent everywhere.

(b) ``--cycles`` create/delete cycles on one dataset (a random selection then its deletion; every
``--distill-every``-th cycle a DM distillation then its deletion): document counts and bytes of
every collection of FiftyOne's database (GridFS and the journal included), the cache folder and the
media folders are compared before and after. One warm-up cycle of each kind runs first, so what a
first run creates to keep (FiftyOne's lazily created collections and indexes) is already there.

    .venv/bin/python benchmarks/soak.py --ops 8 --datasets 4 --cycles 500

The plugin refuses a held run key rather than waiting for it; the only lock it waits on is the
dataset document's (held for milliseconds while FiftyOne rewrites a dataset's saved views or
fields). Each worker times every take of that lock (the time to hold it, which includes the
dataset reload it does once held) and every claim of a key; the longest are reported.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

if __name__ == "__main__":  # the tests' private database, caches and plugins folder (set before FiftyOne loads)
    sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests"),
                    str(Path(__file__).resolve().parents[1] / "tests" / "integration")]
    import conftest

    conftest._start_private_mongod(conftest._SESSION_DIR / "db", conftest._DATABASE_PORT)

import fiftyone as fo  # noqa: E402
import fiftyone.core.odm as foo  # noqa: E402
import fiftyone.operators as fops  # noqa: E402
import torch  # noqa: E402
from bson import ObjectId  # noqa: E402
from fiftyone.operators.delegated import DelegatedOperationService  # noqa: E402
from fiftyone.operators.executor import ExecutionContext, ExecutionRunState  # noqa: E402

import fiftyone_condense as fc  # noqa: E402
from fiftyone_condense.bridge import journal, records, renaming  # noqa: E402

PLUGIN = "@condense/fiftyone-condense"
SELECT = dict(split="train", budget_mode="ipc", ipc=2, label_field="ground_truth")
# Pairs on purpose: the same key twice, two evaluations of one run, a deletion racing them.
MIX: list[tuple[str, dict]] = [
    ("select_coreset", {**SELECT, "method": "random", "run_key": "picked"}),
    ("select_coreset", {**SELECT, "method": "random", "run_key": "picked", "seed": 1}),
    ("select_coreset", {**SELECT, "method": "herding", "run_key": "herded", "teacher_epochs": 1}),
    ("distill_dataset", {**SELECT, "method": "dm", "ipc": 1, "init": "random", "iterations": 3, "batch_real": 4,
                         "run_key": "distilled", "processes": 1}),
    ("evaluate_condensed", {"run_key": "base", "protocol": "hard", "epochs": 1, "num_models": 1, "references": False}),
    ("evaluate_condensed", {"run_key": "base", "protocol": "hard", "epochs": 1, "num_models": 1, "references": False}),
    ("delete_condensation_run", {"run_key": "spare"}),
    ("delete_condensation_run", {"run_key": "base"}),
]
MADE_KEYS = ("picked", "herded", "distilled", "base", "spare")

LOCK_TIMES: dict[str, list[float]] = {"document": [], "claim": []}


# --------------------------------------------------------------------------- (a) scheduled operations


def prepared_dataset(folder: Path, name: str) -> fo.Dataset:
    """The small test dataset with two selections, ``base`` (evaluated, then deleted) and ``spare``."""
    from small_dataset import build

    dataset = build(folder, name=name, persistent=True)
    for key in ("base", "spare"):
        fc.select(dataset.match_tags("train"), method="random", ipc=2, run_key=key)
    return dataset


def queue(service: DelegatedOperationService, operator: str, dataset: fo.Dataset, params: dict) -> ObjectId:
    """Schedule one operation as the App does (``request_delegation``); the deletion, which the plugin
    runs immediately in the App, is queued on the service directly so it runs beside the others."""
    uri = f"{PLUGIN}/{operator}"
    if operator != "delete_condensation_run":
        result = fops.execute_operator(uri, ctx={"dataset": dataset, "params": params, "request_delegation": True})
        assert result.delegated and result.error is None, result.error
        return result.result["id"]
    context = ExecutionContext(request_params={"dataset_name": dataset.name, "dataset_id": str(dataset._doc.id),
                                               "params": params, "delegated": True})
    return service.queue_operation(operator=uri, context=context.serialize()).id


@contextmanager
def _timed(kind: str, call, *args) -> Iterator:
    """``call(*args)`` entered, the time until held (or refused) kept under ``kind``."""
    start = time.monotonic()
    with ExitStack() as stack:
        try:
            held = stack.enter_context(call(*args))
        finally:
            LOCK_TIMES[kind].append(time.monotonic() - start)
        yield held


def instrument_locks() -> None:
    """Time every take of the dataset-document lock and every claim of a key, in this process."""
    document, claim = journal.dataset_document, journal.claim

    def timed_document(dataset: fo.Dataset, timeout: float = 60.0):
        return _timed("document", document, dataset, timeout)

    def timed_claim(dataset: fo.Dataset, key: str):
        return _timed("claim", claim, dataset, key)

    journal.dataset_document = records.dataset_document = renaming.dataset_document = timed_document
    journal.claim = timed_claim


def worker(operation_id: ObjectId, barrier, results) -> None:
    """Run one queued operation through the service once every worker is ready; report lock times."""
    torch.set_num_threads(1)
    instrument_locks()
    service = DelegatedOperationService()
    operation = service.get(operation_id)
    barrier.wait()
    start = time.monotonic()
    service.execute_operation(operation)
    results.put((operation_id, time.monotonic() - start, max(LOCK_TIMES["document"], default=0.0),
                 max(LOCK_TIMES["claim"], default=0.0)))


@dataclass
class Outcome:
    operator: str
    key: str
    dataset: str
    state: str = ""
    error: str = ""
    seconds: float = 0.0
    document_lock: float = 0.0
    claim: float = 0.0


def error_line(error: Optional[str]) -> str:
    """The last line of the traceback the service stored (the exception and its message)."""
    return (error or "").strip().splitlines()[-1] if error else ""


def run_together(service: DelegatedOperationService, queued: dict[ObjectId, Outcome]) -> float:
    """One worker process per queued operation, released together; wall seconds until all end."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["fiftyone_condense.api", "fiftyone.operators.delegated"])
    barrier, results = context.Barrier(len(queued) + 1), context.Queue()
    processes = [context.Process(target=worker, args=(op_id, barrier, results)) for op_id in queued]
    for process in processes:
        process.start()
    barrier.wait()
    start = time.monotonic()
    reports = [results.get(timeout=1800) for _ in processes]
    wall = time.monotonic() - start
    for process in processes:
        process.join()
    for op_id, seconds, document_lock, claim in reports:
        outcome, document = queued[op_id], service.get(op_id)
        outcome.state = document.run_state
        outcome.error = error_line(document.result.error if document.result else None)
        outcome.seconds, outcome.document_lock, outcome.claim = seconds, document_lock, claim
    return wall


def unreferenced_results(dataset: fo.Dataset) -> list:
    """This plugin's results files (GridFS) of the dataset that no run document refers to."""
    db = foo.get_db_conn()
    ours = [d["_id"] for d in db.fs.files.find({"condense_dataset": dataset._doc.id}, {"_id": 1})]
    referenced = {d["results"] for d in db.runs.find({"results": {"$in": ours}}, {"results": 1})}
    return [file_id for file_id in ours if file_id not in referenced]


def half_written(dataset: fo.Dataset) -> list[str]:
    """What is left half-written on the dataset after recovery: open journal entries, unreferenced
    results files, run keys with a record but no tag or view, or a tag, view or samples but no record."""
    fc.recover(dataset)
    dataset.reload()
    problems = [f"open journal entry {e['key']}" for e in journal.entries(dataset)]
    problems += [f"unreferenced results file {i}" for i in unreferenced_results(dataset)]
    listed, views, tags = set(fc.list_runs(dataset)), set(dataset.list_saved_views()), dataset.count_sample_tags()
    for key in MADE_KEYS:
        parts = {"view": f"condense-{key}" in views, "tag": tags.get(f"condense:{key}", 0) > 0}
        if key in listed and not all(parts.values()):
            problems.append(f"run {key} listed without its {[k for k, v in parts.items() if not v]}")
        if key not in listed and (any(parts.values()) or len(dataset.match({"condense_run": key}))):
            problems.append(f"run {key} not listed but its {[k for k, v in parts.items() if v]} or samples remain")
    return problems


@dataclass
class LoadResult:
    datasets: int
    outcomes: list[Outcome]
    wall: float
    problems: list[str] = field(default_factory=list)

    @property
    def refused(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.state == ExecutionRunState.FAILED and "CondensationError" in o.error]

    @property
    def unclear(self) -> list[Outcome]:
        """Operations that neither completed nor were refused with a CondensationError."""
        return [o for o in self.outcomes if o.state != ExecutionRunState.COMPLETED and o not in self.refused]


def scheduled_load(folder: Path, ops: int, datasets: int, mix: list[tuple[str, dict]] = MIX) -> LoadResult:
    """Queue ``ops`` operations of ``mix`` (repeated) over ``datasets`` datasets, run them at once, check them."""
    service = DelegatedOperationService()
    made = [prepared_dataset(folder / f"media{i}", f"soak-{datasets}-{i}") for i in range(datasets)]
    queued = {}
    for i in range(ops):
        operator, params = mix[i % len(mix)]
        dataset = made[i * datasets // ops]
        queued[queue(service, operator, dataset, params)] = Outcome(operator, params["run_key"], dataset.name)
    wall = run_together(service, queued)
    result = LoadResult(datasets, list(queued.values()), wall)
    for dataset in made:
        result.problems += [f"{dataset.name}: {p}" for p in half_written(dataset)]
        for key in fc.list_runs(dataset):
            fc.delete_run(dataset, key)
        dataset.delete()
    return result


# --------------------------------------------------------------------------- (b) create/delete cycles


def tree(folder: Path) -> tuple[int, int]:
    """(files, bytes) under ``folder``."""
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    return len(files), sum(p.stat().st_size for p in files)


def footprint(folders: dict[str, Path]) -> dict[str, tuple[int, int]]:
    """(documents, bytes) of every collection of FiftyOne's database and (files, bytes) of ``folders``."""
    db = foo.get_db_conn()
    rows = {}
    for name in sorted(db.list_collection_names()):
        stats = db.command("collstats", name)
        rows[f"collection {name}"] = (stats["count"], stats["size"])
    rows["GridFS stored bytes (fs.files length)"] = (
        db.fs.files.count_documents({}), sum(d.get("length", 0) for d in db.fs.files.find({}, {"length": 1})))
    rows.update({f"folder {label}": tree(path) for label, path in folders.items()})
    return rows


def cycle(dataset: fo.Dataset, distil: bool) -> None:
    """One create/delete cycle: a selection (or a DM distillation) and its deletion."""
    train = dataset.match_tags("train")
    if distil:
        fc.distill(train, method="dm", ipc=1, iterations=2, batch_real=4, run_key="cycle")
    else:
        fc.select(train, method="random", ipc=2, run_key="cycle")
    fc.delete_run(dataset, "cycle")


@dataclass
class SoakResult:
    cycles: int
    distillations: int
    seconds: float
    before: dict
    after: dict


def soak(folder: Path, cycles: int, distill_every: int) -> SoakResult:
    """``cycles`` create/delete cycles on one dataset, with the footprint before and after."""
    from small_dataset import build

    dataset = build(folder / "media", name="soak-cycles", persistent=True)
    folders = {"cache": Path(os.environ["FIFTYONE_CONDENSE_CACHE_DIR"]), "media": folder / "media",
               "condense outputs": folder / "condense"}
    cycle(dataset, distil=False)
    cycle(dataset, distil=True)  # warm-up: what a first run creates to keep
    before, start = footprint(folders), time.monotonic()
    distilled = 0
    for i in range(1, cycles + 1):
        distil = distill_every > 0 and i % distill_every == 0
        cycle(dataset, distil)
        distilled += distil
    seconds = time.monotonic() - start
    after = footprint(folders)
    dataset.delete()
    return SoakResult(cycles, distilled, seconds, before, after)


# --------------------------------------------------------------------------- report


def load_table(results: list[LoadResult]) -> str:
    lines = ["| datasets | operations | completed | refused (CondensationError) | other failures | wall s | ops/s "
             "| longest document-lock take s | longest claim s | longest time to a refusal s | half-written |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        done = len(r.outcomes) - len(r.refused) - len(r.unclear)
        lines.append(
            f"| {r.datasets} | {len(r.outcomes)} | {done} | {len(r.refused)} | {len(r.unclear)} | {r.wall:.1f} "
            f"| {len(r.outcomes) / r.wall:.2f} | {max(o.document_lock for o in r.outcomes):.3f} "
            f"| {max(o.claim for o in r.outcomes):.3f} | {max((o.seconds for o in r.refused), default=0):.1f} "
            f"| {len(r.problems)} |")
    return "\n".join(lines)


def outcomes_table(results: list[LoadResult]) -> str:
    lines = ["| datasets | dataset | operator | run key | state | s | error |", "|---|---|---|---|---|---|---|"]
    for r in results:
        for o in r.outcomes:
            lines.append(f"| {r.datasets} | {o.dataset} | {o.operator} | {o.key} | {o.state} | {o.seconds:.1f} "
                         f"| {o.error.replace('|', '/')} |")
    return "\n".join(lines)


def soak_table(result: SoakResult) -> str:
    lines = [f"{result.cycles} cycles ({result.distillations} distillations) in {result.seconds:.1f} s: "
             f"{result.cycles / result.seconds:.2f} cycles/s", "",
             "| what | before (count, bytes) | after (count, bytes) | equal |", "|---|---|---|---|"]
    for name in sorted(set(result.before) | set(result.after)):
        before, after = result.before.get(name), result.after.get(name)
        lines.append(f"| {name} | {before} | {after} | {'yes' if before == after else '**no**'} |")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=8, help="operations scheduled at once")
    parser.add_argument("--datasets", type=int, default=4, help="datasets of the second load run (the first: 1)")
    parser.add_argument("--cycles", type=int, default=500, help="create/delete cycles")
    parser.add_argument("--distill-every", type=int, default=10, help="every k-th cycle distils (0: never)")
    parser.add_argument("--folder", type=Path, default=None, help="where the datasets' media go (default: a temp dir)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    folder = args.folder or conftest._SESSION_DIR / "soak"
    loads = [scheduled_load(folder / f"load{n}", args.ops, n) for n in dict.fromkeys((1, args.datasets))]
    print(load_table(loads), "", outcomes_table(loads), "", sep="\n")
    for r in loads:
        for problem in r.problems + [f"{o.operator} {o.key}: {o.state} {o.error}" for o in r.unclear]:
            print("PROBLEM:", problem)
    print(soak_table(soak(folder / "cycles", args.cycles, args.distill_every)))


if __name__ == "__main__":
    main()
