"""Write the measurements of docs/reliability.md from a run of the tests that measure them: kill points,
races, bad input (the page's design sections, above "## Measured", are kept).

    .venv/bin/python tools/reliability_report.py            # runs the tests, prints the Markdown
    .venv/bin/python tools/reliability_report.py --write    # ... and writes docs/reliability.md

It runs pytest on tests/integration/test_crash.py and tests/integration/test_bad_input.py with
``$CONDENSE_RELIABILITY_OUT`` naming a file: each test that passes adds its rows there (the
``reliability`` fixture of tests/conftest.py), and this script renders them as tables. A test that
fails adds no row, and the summary line says how many failed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/integration/test_crash.py", "tests/integration/test_bad_input.py"]
COMMAND = ".venv/bin/python tools/reliability_report.py --write"

PAGE = ROOT / "docs" / "reliability.md"
MEASURED = "## Measured\n"  # the page's design sections above this heading are kept as written


def run_tests(record: Path) -> str:
    """pytest on the measuring tests, their rows written to ``record``; its summary line."""
    env = {**os.environ, "CONDENSE_RELIABILITY_OUT": str(record), "FIFTYONE_DO_NOT_TRACK": "true",
           "FIFTYONE_DATABASE_VALIDATION": "false", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:warnings", "-p", "no:cacheprovider",
                           *TESTS], cwd=ROOT, env=env, capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr.strip()[-500:]


def cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def without_temp_paths(message: str) -> str:
    """A message with pytest's temporary folders shortened to ``<tmp>`` (they differ on every machine)."""
    return re.sub(r"/\S*?/pytest-\d+/[^/]+/", "<tmp>/", message)


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])


def kill_points(rows: list[dict]) -> str:
    body = [[r["call"], r["writes"], f"1–{r['writes']}", r["as before"], r["as finished"], r["passed"]] for r in rows]
    totals = [sum(r[key] for r in rows) for key in ("writes", "as before", "as finished", "passed")]
    body.append(["**all**", totals[0], totals[0], totals[1], totals[2], f"**{totals[3]} of {totals[0]}**"])
    return table(["call", "durable writes", "killed after write", "as before", "as finished", "passed"], body)


def design() -> str:
    """The page up to its measurements (the design, written by hand), ending with their heading."""
    text = PAGE.read_text() if PAGE.exists() else "# Reliability: killed runs, two writers, bad input\n\n"
    return text[:text.index(MEASURED)] + MEASURED if MEASURED in text else text + "\n" + MEASURED


def render(rows: dict[str, list[dict]], summary: str) -> str:
    kills, races, bad = rows["kill points"], rows["races"], rows["bad input"]
    tried = sum(r["writes"] for r in kills)
    passed = sum(r["passed"] for r in kills)
    return "\n".join([
        design(),
        f"Produced by `{COMMAND}` on {datetime.date.today():%Y-%m-%d} ({platform.machine()}, "
        f"{os.cpu_count()} CPUs); pytest: {summary}.",
        "",
        "### kill -9 at every write",
        "",
        "A child process makes the call on a small dataset (3 classes × 8 train + 4 test PNGs; 2 samples and "
        "media files per write step) and stops itself right after its N-th durable write "
        "(`FIFTYONE_CONDENSE_PAUSE_AFTER_WRITES=N`); the test kills it with SIGKILL there, recovers the "
        "dataset (`fc.recover`, as the next writer would) and compares the snapshot with the one before the call and with the "
        "finished call's (new samples' ids, creation times and durations aside), and checks that no "
        "journal entry, and no results file in GridFS that no run document refers to, is left. N takes every "
        "value from the claim of the key (1) to the closing of the "
        "entry. `distill`: DM, 2 images per class, new samples and media. `compensate`: a classical "
        "colour compensation replacing an earlier one (its samples, media, view and record set aside "
        "first). `embed`: embeddings of another teacher over stored ones. `delete`: `fc.delete_run` of "
        "that compensation (a deletion is only ever completed). `evaluate`: a soft evaluation stored on a "
        "selection run beside its hard one. `rename`: `fc.rename_run` of a selection with a scores field "
        "named after it and a compensation that names it as its parent (a rename is only ever completed). "
        "`rename_outputs`: `fc.rename_run` of a compensation (its samples' `condense_run` too). "
        "`recover`: a second process recovering that compensation, "
        "killed half-way, is killed in turn after each of its own writes (a recovery is itself recovered).",
        "",
        kill_points(kills),
        "",
        f"**{tried} kill points tried, {passed} passed.**",
        "",
        "### Two writers at once",
        "",
        "Two child processes start the same call together. With one key (a barrier), the first to claim it "
        "stops right after its claim, so the other reaches its own claim while the key is held, whatever "
        "the timing; then the first goes on. With two keys, both stop once they hold their keys and go on "
        "together, so their writes interleave (FiftyOne saves a dataset's list of saved views and of fields "
        "whole: without the short lock the plugin takes on the dataset document for those, 1 race in 5 "
        "lost a saved view). An embeddings field has one writer too: `compute_embeddings` and a selection that "
        "would store embeddings in the same field, under different run keys, each stopped once it holds the "
        "field while the other tries.",
        "",
        table(["race", "result", "dataset after"], [[r["race"], r["result"], r["dataset"]] for r in races]),
        "",
        "### Bad input",
        "",
        "Each case through each public SDK function it applies to (tests/integration/test_bad_input.py): the "
        "call raises the message below, and the dataset is unchanged (its snapshot) with nothing written "
        "and undone (the `last_modified_at` of the dataset, every sample and saved view stand still).",
        "",
        table(["case", "message", "unchanged"], [[r["case"], without_temp_paths(r["message"]), r["unchanged"]]
                                                  for r in bad]),
        "",
        f"**{len(bad)} cases, {sum(r['unchanged'] == 'yes' for r in bad)} unchanged.**",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="write docs/reliability.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        record = Path(folder) / "rows.jsonl"
        summary = run_tests(record)
        rows = defaultdict(list)
        for line in record.read_text().splitlines() if record.exists() else []:
            row = json.loads(line)
            rows[row.pop("table")].append(row)
    text = render(rows, summary)
    if args.write:
        PAGE.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
