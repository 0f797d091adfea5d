"""A short load and soak (benchmarks/soak.py): scheduled operations at once through FiftyOne's
delegated-operation service, then create/delete cycles that leave the database and folders as they were."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import soak  # noqa: E402

# the same key twice (one is refused), an evaluation and a deletion of another run; an evaluation racing
# the deletion of its own run can still fail with FiftyOne's ValueError (docs/reliability.md, Load and soak)
RACING = [soak.MIX[0], soak.MIX[1], soak.MIX[4], soak.MIX[6]]


def test_four_scheduled_operations_at_once_end_done_or_refused_with_nothing_half_written(tmp_path):
    result = soak.scheduled_load(tmp_path, ops=4, datasets=1, mix=RACING)
    assert not result.unclear, [(o.operator, o.key, o.state, o.error) for o in result.unclear]
    assert not result.problems
    picked = [o for o in result.outcomes if o.key == "picked"]
    assert sorted(o.state for o in picked) == ["completed", "failed"]
    assert "is being written by" in next(o.error for o in picked if o.state == "failed")


def test_create_delete_cycles_leave_the_database_cache_and_media_as_they_were(tmp_path):
    result = soak.soak(tmp_path, cycles=20, distill_every=10)
    assert result.distillations == 2
    assert result.after == result.before
