"""Nothing executable is loaded: every file the plugin reads back is checked against the SHA-256
recorded when it was written and loaded with ``weights_only=True``; a planted pickle never runs, and
what it replaced is computed again. (The teachers and experts cached by the bridge:
tests/integration/test_cache_trust_sdk.py.)"""

import hashlib
import logging
import math
import stat

import pytest
import torch

from fiftyone_condense.algorithms.cache import (
    REFUSED_SUFFIX, digest_path, load_cached, make_private_dir, save_atomically,
)
from fiftyone_condense.algorithms.distillation import distill, settings_for

CACHE_LOGGER = "fiftyone_condense.algorithms.cache"


def small_problem():
    generator = torch.Generator().manual_seed(0)
    real = torch.rand(60, 1, 8, 8, generator=generator)
    labels = torch.arange(60) % 3
    return real, labels, torch.rand(3, 1, 8, 8, generator=generator), torch.tensor([0, 1, 2])


def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def refusals(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == CACHE_LOGGER and r.levelno == logging.WARNING]


def test_the_planted_pickle_does_run_code_when_loaded_without_weights_only(tmp_path, malicious_pickle):
    malicious_pickle.plant(tmp_path / "teacher.pt")
    torch.load(tmp_path / "teacher.pt", weights_only=False)  # what the plugin must never do
    assert malicious_pickle.ran


def test_a_saved_file_records_its_digest_and_loads_back(tmp_path):
    path = tmp_path / "cache" / "teachers" / "abc.pt"
    saved = {"state_dict": {"w": torch.arange(6.0).view(2, 3)}, "mean": [0.5], "meta": {"classes": ["a"], "seed": 0}}
    save_atomically(saved, path)
    recorded = [hashlib.sha256(path.read_bytes()).hexdigest(), "abc.pt"]
    assert digest_path(path).read_text().split() == recorded  # sha256sum's format: `sha256sum -c` checks it
    loaded = load_cached(path)
    torch.testing.assert_close(loaded["state_dict"]["w"], saved["state_dict"]["w"])
    assert loaded["mean"] == [0.5] and loaded["meta"] == saved["meta"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["abc.pt", "abc.pt.sha256"]  # no partial file left
    assert load_cached(tmp_path / "absent.pt") is None


def test_folders_made_for_the_cache_are_private(tmp_path):
    make_private_dir(tmp_path / "cache" / "teachers")
    for folder in (tmp_path / "cache", tmp_path / "cache" / "teachers"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


@pytest.mark.parametrize("forge_digest", [True, False], ids=["forged-digest", "no-digest"])
def test_a_malicious_pickle_is_refused_and_never_run(tmp_path, malicious_pickle, caplog, forge_digest):
    path = tmp_path / "teacher.pt"
    malicious_pickle.plant(path, forge_digest=forge_digest)
    with caplog.at_level(logging.WARNING, logger=CACHE_LOGGER):
        assert load_cached(path) is None
    assert not malicious_pickle.ran
    (message,) = refusals(caplog)
    assert str(path) in message and "Nothing in it was run" in message
    assert ("does not load as tensors and plain data" if forge_digest else "no SHA-256 was recorded") in message
    assert not path.exists() and not digest_path(path).exists()
    assert path.with_name(path.name + REFUSED_SUFFIX).is_file()  # moved aside, for inspection


def test_a_file_changed_after_it_was_written_is_refused(tmp_path, caplog):
    path = tmp_path / "teacher.pt"
    save_atomically({"state_dict": {"w": torch.zeros(100)}}, path)
    flip_a_byte(path)
    with caplog.at_level(logging.WARNING, logger=CACHE_LOGGER):
        assert load_cached(path) is None
    (message,) = refusals(caplog)
    assert str(path) in message and "differs from the one recorded when it was written" in message


def test_a_foreign_file_without_a_digest_is_refused(tmp_path, caplog):
    path = tmp_path / "teacher.pt"
    torch.save({"state_dict": {"w": torch.zeros(3)}}, path)  # harmless, but not written by the plugin
    with caplog.at_level(logging.WARNING, logger=CACHE_LOGGER):
        assert load_cached(path) is None
    assert "no SHA-256 was recorded" in refusals(caplog)[0]


def test_a_malicious_distillation_checkpoint_is_refused_and_distillation_starts_over(tmp_path, malicious_pickle,
                                                                                    caplog):
    real, labels, init, init_labels = small_problem()
    settings = settings_for("dm", iterations=2, batch_real=8, checkpoint_every=1)
    checkpoint = tmp_path / "runs" / "checkpoint.pt"
    malicious_pickle.plant(checkpoint)
    with caplog.at_level(logging.WARNING, logger=CACHE_LOGGER):
        result = distill(real, labels, init, init_labels, 3, settings, torch.device("cpu"), checkpoint=checkpoint)
    assert not malicious_pickle.ran
    assert str(checkpoint) in refusals(caplog)[0]
    assert result.resumed_from == 0 and len(result.history) == 2 and math.isfinite(result.history[-1])
    assert load_cached(checkpoint)["iteration"] == 2  # the new checkpoint is the plugin's own


def test_a_tampered_distillation_checkpoint_is_not_resumed(tmp_path, caplog):
    real, labels, init, init_labels = small_problem()
    checkpoint = tmp_path / "checkpoint.pt"
    two, four = (settings_for("dm", iterations=n, batch_real=8, checkpoint_every=2) for n in (2, 4))
    distill(real, labels, init, init_labels, 3, two, torch.device("cpu"), checkpoint=checkpoint)
    resumed = distill(real, labels, init, init_labels, 3, four, torch.device("cpu"), checkpoint=checkpoint)
    assert resumed.resumed_from == 2  # untouched, the checkpoint is resumed

    flip_a_byte(checkpoint)  # it now holds iteration 4: resumed, the run would have nothing left to do
    with caplog.at_level(logging.WARNING, logger=CACHE_LOGGER):
        again = distill(real, labels, init, init_labels, 3, four, torch.device("cpu"), checkpoint=checkpoint)
    assert again.resumed_from == 0 and len(again.history) == 4
    assert str(checkpoint) in refusals(caplog)[0] and "differs from the one recorded" in refusals(caplog)[0]
