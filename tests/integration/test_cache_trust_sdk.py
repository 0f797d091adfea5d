"""Nothing executable is loaded, through the SDK: a malicious pickle planted where each cached
teacher or expert set is read back (its digest forged, so only ``weights_only=True`` stands in its
way) is refused with a warning, never run, and the model is trained again. (Distillation
checkpoints and the checks themselves: tests/unit/test_cache_trust.py.)"""

import logging

import pytest

import fiftyone_condense as fc
from fiftyone_condense.algorithms.cache import cache_dir, load_cached

CACHE_LOGGER = "fiftyone_condense.algorithms.cache"


def cached_files(kind: str) -> set:
    return set((cache_dir() / kind).glob("*.pt"))


def embeddings(dataset, again: bool):
    return fc.compute_embeddings(dataset.match_tags("train"), teacher_epochs=1, overwrite=again)


def median_cut_selection(dataset, again: bool):
    return fc.select(dataset.match_tags("train"), method="autopalette_init", ipc=1, run_key=f"init{int(again)}",
                     num_colors=4, teacher_epochs=1)


def soft_evaluation(dataset, again: bool):
    if not again:
        fc.select(dataset.match_tags("train"), method="random", ipc=1, run_key="picked")
    return fc.evaluate(run_key="picked", dataset=dataset, protocol="soft", epochs=1, num_models=1, teacher_epochs=1,
                       references=False)


def autopalette_evaluation(dataset, again: bool):
    if not again:
        fc.select(dataset.match_tags("train"), method="random", ipc=1, run_key="picked")
    return fc.evaluate(run_key="picked", dataset=dataset, protocol="autopalette", epochs=1, num_models=1,
                       expert_epochs=1, references=False)


@pytest.mark.parametrize("kind, call", [
    ("teachers", embeddings),
    ("median-cut-teachers", median_cut_selection),
    ("soft-teachers", soft_evaluation),
    ("autopalette-experts", autopalette_evaluation),
])
def test_a_malicious_pickle_in_the_cache_is_refused_and_the_model_trained_again(dataset, malicious_pickle, caplog,
                                                                                 kind, call):
    before = cached_files(kind)
    call(dataset, again=False)
    (path,) = cached_files(kind) - before  # where this call's model is cached, and read back next time
    malicious_pickle.plant(path)

    with caplog.at_level(logging.WARNING, logger=CACHE_LOGGER):
        call(dataset, again=True)

    assert not malicious_pickle.ran
    refusals = [r.getMessage() for r in caplog.records if r.name == CACHE_LOGGER]
    assert len(refusals) == 1 and str(path) in refusals[0] and "does not load as tensors and plain data" in refusals[0]
    assert path.with_name(path.name + ".refused").is_file()
    assert set(load_cached(path)) & {"state_dict", "states"}  # trained again, and cached as the plugin's own
