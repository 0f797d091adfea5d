"""Data parallelism on torch.distributed: two Gloo processes give what one process gives.

Each case runs a small problem in one process and in two (``torch.multiprocessing``, Gloo, as
``torchrun --nproc_per_node 2`` would on a CPU) and compares: distillation (DM, Decomposed DM,
AutoPalette: classes split across ranks, synthetic gradients summed), a resumed two-process
distillation against an uninterrupted one, evaluation (models split across ranks, each rank
training its share together) and embeddings (images split across ranks, rows gathered). A rank
that dies makes the other fail, not hang.
"""

import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fiftyone_condense.algorithms.distillation import distill, settings_for
from fiftyone_condense.algorithms.distributed import Parallel
from fiftyone_condense.algorithms.models import build_model
from fiftyone_condense.algorithms.protocols import HardProtocol, evaluate_images
from fiftyone_condense.algorithms.teachers import Normalizer, embed_images

CLASSES, SIDE = 4, 16


def problem(classes: int = CLASSES):
    generator = torch.Generator().manual_seed(0)
    real = torch.rand(classes * 24, 1, SIDE, SIDE, generator=generator)
    labels = torch.arange(classes).repeat_interleave(24)
    init_rows = torch.cat([torch.arange(c * 24, c * 24 + 3) for c in range(classes)])
    return real, labels, real[init_rows].clone(), labels[init_rows].clone()


SETTINGS = {
    "dm": settings_for("dm", iterations=3, batch_real=8),
    "ddm": settings_for("ddm", iterations=3, batch_real=8),
    "autopalette": settings_for("autopalette", iterations=3, batch_real=8, num_colors=4, colour_batch=6),
}


def distilled(method: str, parallel: Parallel, iterations: int = 3, checkpoint=None, classes: int = CLASSES):
    real, labels, init, init_labels = problem(classes)
    settings = replace(SETTINGS[method], iterations=iterations, checkpoint_every=2)
    result = distill(real, labels, init, init_labels, classes, settings, torch.device("cpu"), seed=5,
                     checkpoint=checkpoint, parallel=parallel)
    return {"images": result.images, "history": result.history, "resumed_from": result.resumed_from}


def evaluated(parallel: Parallel):
    real, labels, init, init_labels = problem()
    result = evaluate_images(init, init_labels, real, labels, CLASSES, HardProtocol(epochs=2, num_models=3),
                             torch.device("cpu"), seed=2, parallel=parallel, together=True)  # each rank its share
    return result.as_dict()


def embedded(parallel: Parallel):
    real, *_ = problem()
    torch.manual_seed(3)
    model = build_model("convnet3", 1, CLASSES, (SIDE, SIDE)).eval()
    return embed_images(model, Normalizer.identity(1), real[:25], torch.device("cpu"), batch_size=4, parallel=parallel)


def _worker(rank: int, world: int, store: str, case: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    parallel = Parallel.current()
    try:
        if case == "die":
            if rank == 1:
                os._exit(3)  # as a killed rank: no goodbye to the group
            distilled("dm", parallel, iterations=50)
        elif case.startswith("resume-"):
            checkpoint = Path(out).with_suffix(".ckpt")
            distilled(case.split("-", 1)[1], parallel, iterations=2, checkpoint=checkpoint)  # "interrupted" after 2
            result = distilled(case.split("-", 1)[1], parallel, iterations=3, checkpoint=checkpoint)
        elif case.startswith("split-"):  # one class, two processes: they share its real batch
            result = distilled(case.split("-", 1)[1], parallel, classes=1)
        else:
            kind, _, method = case.partition("-")
            result = {"distill": lambda: distilled(method, parallel), "evaluate": lambda: evaluated(parallel),
                      "embed": lambda: embedded(parallel)}[kind]()
        torch.save(result, f"{out}.rank{rank}")
    finally:
        if case != "die":
            dist.destroy_process_group()


def two_processes(case: str, tmp_path: Path):
    out = tmp_path / case
    mp.spawn(_worker, args=(2, str(tmp_path / f"{case}.store"), case, str(out)), nprocs=2, join=True)
    return [torch.load(f"{out}.rank{rank}", weights_only=False) for rank in range(2)]


@pytest.mark.parametrize("method", ["dm", "ddm", "autopalette"])
def test_two_processes_distil_the_same_images_as_one(method, tmp_path):
    single = distilled(method, Parallel())
    ranks = two_processes(f"distill-{method}", tmp_path)
    for result in ranks:  # every rank holds the same synthetic set, equal to one process's
        torch.testing.assert_close(result["images"], single["images"], rtol=1e-4, atol=1e-5)
        assert result["history"] == pytest.approx(single["history"], rel=1e-4)
    assert torch.equal(ranks[0]["images"], ranks[1]["images"])


@pytest.mark.parametrize("method", ["dm", "ddm", "autopalette"])
def test_more_processes_than_classes_share_each_class_real_batch(method, tmp_path):
    """One class on two processes: each embeds half of the class's real batch (with the draws those
    rows get in the whole batch), the statistics are summed, and the result is one process's."""
    single = distilled(method, Parallel(), classes=1)
    for result in two_processes(f"split-{method}", tmp_path):
        torch.testing.assert_close(result["images"], single["images"], rtol=1e-4, atol=1e-5)
        assert result["history"] == pytest.approx(single["history"], rel=1e-4)


def test_a_resumed_two_process_run_equals_an_uninterrupted_one(tmp_path):
    straight = distilled("dm", Parallel())
    resumed = two_processes("resume-dm", tmp_path)[0]
    assert resumed["resumed_from"] == 2
    torch.testing.assert_close(resumed["images"], straight["images"], rtol=1e-4, atol=1e-5)
    assert resumed["history"] == pytest.approx(straight["history"], rel=1e-4)


def test_two_processes_evaluate_and_embed_as_one(tmp_path):
    single = evaluated(Parallel())
    for result in two_processes("evaluate", tmp_path):
        assert result["accuracies"] == pytest.approx(single["accuracies"], abs=1e-6)
        assert result["mean"] == pytest.approx(single["mean"]) and result["std"] == pytest.approx(single["std"])
        assert result["per_class"] == pytest.approx(single["per_class"], abs=1e-6)
    features, logits = embedded(Parallel())
    for ranked_features, ranked_logits in two_processes("embed", tmp_path):
        torch.testing.assert_close(ranked_features, features, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ranked_logits, logits, rtol=1e-5, atol=1e-6)


def test_a_rank_that_dies_fails_the_run_instead_of_hanging(tmp_path):
    with pytest.raises(Exception):
        two_processes("die", tmp_path)
