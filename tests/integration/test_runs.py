"""Condensation runs are FiftyOne runs: FiftyOne's own delete, rename and list keep everything consistent."""

from pathlib import Path

import numpy as np
import pytest
import torch

import fiftyone_condense as fc
from fiftyone_condense.bridge.records import CondensationRunConfig


def distilled(dataset, run_key="dm1"):
    return fc.distill(dataset.match_tags("train"), method="dm", ipc=1, iterations=2, batch_real=4, run_key=run_key)


def test_fiftyones_delete_run_removes_everything_a_run_made(dataset, snapshot):
    before = snapshot(dataset)
    media = [Path(p) for p in distilled(dataset).view.values("filepath")]
    fc.select(dataset.match_tags("train"), method="random", ipc=2, run_key="picked")
    assert all(path.is_file() for path in media)

    dataset.delete_run("dm1")
    dataset.delete_run("picked")

    assert snapshot(dataset) == before
    assert not any(path.exists() for path in media)


def test_fiftyones_delete_runs_removes_all_of_them(dataset, snapshot):
    before = snapshot(dataset)
    distilled(dataset)
    fc.select(dataset.match_tags("train"), method="random", ipc=1, run_key="one")
    dataset.delete_runs()
    assert snapshot(dataset) == before


def test_fiftyones_rename_run_moves_tags_view_samples_and_references(dataset):
    fc.select(dataset.match_tags("train"), method="random", ipc=2, run_key="old")
    picked = sorted(dataset.match_tags("condense:old").values("id"))
    fc.compensate(dataset.load_saved_view("condense-old"), backend="classical", run_key="colours")

    dataset.rename_run("old", "new")
    dataset.rename_run("colours", "recoloured")

    record = fc.load_run(dataset, "new")
    assert sorted(record.view.values("id")) == picked
    assert len(dataset.match_tags("condense:old")) == 0 and not dataset.has_saved_view("condense-old")
    compensation = fc.load_run(dataset, "recoloured")
    assert compensation.config["parent"] == "new"
    assert set(compensation.view.values("condense_run")) == {"recoloured"}
    result = fc.evaluate(run_key="new", dataset=dataset, epochs=1, num_models=1, references=False)
    assert fc.load_run(dataset, "new").results["evaluation"]["hard"]["mean"] == result["mean"]


def test_fc_rename_run_checks_the_new_key(dataset):
    fc.select(dataset.match_tags("train"), method="random", ipc=1, run_key="a")
    fc.select(dataset.match_tags("train"), method="random", ipc=1, run_key="b")
    with pytest.raises(fc.CondensationError, match="already exists"):
        fc.rename_run(dataset, "a", "b")
    fc.rename_run(dataset, "a", "c")
    assert fc.list_runs(dataset) == ["b", "c"]


def test_each_kind_has_a_typed_config_that_fiftyone_can_list_by(dataset):
    fc.select(dataset.match_tags("train"), method="random", ipc=1, run_key="picked")
    distilled(dataset)
    assert isinstance(dataset.get_run_info("picked").config, fc.SelectionRunConfig)
    assert isinstance(dataset.get_run_info("dm1").config, fc.DistillationRunConfig)
    assert dataset.list_runs(type=fc.SelectionRun) == ["picked"] == fc.list_runs(dataset, kind="selection")
    assert dataset.list_runs(type=fc.DistillationRun) == ["dm1"] == fc.list_runs(dataset, kind="distillation")
    assert fc.list_runs(dataset, kind="compensation") == []
    run = dataset.get_run_info("dm1").config.build()
    assert {"ground_truth", "condense_run", "condense_sources"} <= set(run.get_fields(dataset, "dm1"))


def test_runs_recorded_by_the_first_version_still_load_list_and_clean_up(dataset, snapshot):
    before = snapshot(dataset)
    train = dataset.match_tags("train")
    ids = train.limit(3).values("id")
    legacy = CondensationRunConfig(method="random", kind="selection", ipc=1, label_field="ground_truth", params={},
                                   seed=0, classes=[])
    train.register_run("legacy", legacy)
    dataset.select(ids).tag_samples("condense:legacy")
    dataset.save_view("condense-legacy", dataset.match_tags("condense:legacy"))

    assert fc.list_runs(dataset, kind="selection") == ["legacy"] == dataset.list_runs(type=fc.SelectionRun)
    assert sorted(fc.load_run(dataset, "legacy").view.values("id")) == sorted(ids)
    dataset.delete_run("legacy")
    assert snapshot(dataset) == before


# --------------------------------------------------------------------------- parameters are data


def test_unknown_or_out_of_range_parameters_are_refused_naming_the_valid_ones(dataset, refused):
    train = dataset.match_tags("train")
    refused(dataset, "graph_cut has no parameter 'lamda'.*lambda_", lambda: fc.select(train, method="graph_cut", lamda=2))
    refused(dataset, r"lambda_=-1 is out of range", lambda: fc.select(train, method="graph_cut", lambda_=-1))
    refused(dataset, "optimizer must be one of", lambda: fc.select(train, method="graph_cut", optimizer="Greedy"))
    refused(dataset, "random has no parameter 'teacher_epochs'", lambda: fc.select(train, method="random", teacher_epochs=3))
    refused(dataset, "iterations must be int", lambda: fc.distill(train, method="dm", iterations="many"))
    refused(dataset, "dm has no parameter 'num_colors'", lambda: fc.distill(train, method="dm", num_colors=16))


# --------------------------------------------------------------------------- embeddings are never clobbered


def test_any_existing_embeddings_field_is_used_as_it_is_and_never_overwritten(dataset, refused):
    train = dataset.match_tags("train")
    mine = list(np.random.default_rng(0).normal(size=(len(train), 16)).astype(np.float32))
    train.set_values("brain_embeddings", mine)  # e.g. made by fiftyone.brain or a zoo model: no logits companion

    record = fc.select(train, method="herding", ipc=2, run_key="h", embeddings_field="brain_embeddings")
    assert record.config["embeddings"]["brain_embeddings"]["source"] == "existing field"
    np.testing.assert_array_equal(np.stack(train.values("brain_embeddings")), np.stack(mine))
    refused(dataset, "never overwritten", lambda: fc.compute_embeddings(train, embeddings_field="brain_embeddings",
                                                                        overwrite=True, teacher_epochs=1))
    refused(dataset, "need logits", lambda: fc.select(train, method="herding", ipc=2, run_key="g",
                                                      embeddings_field="brain_embeddings", embedding="gradients"))


def test_stored_embeddings_are_reused_only_from_the_same_model_and_settings(dataset):
    train = dataset.match_tags("train")
    fc.compute_embeddings(train, teacher_epochs=1)
    stored = np.stack(train.values("condense_embedding"))

    same = fc.select(train, method="k_center", ipc=2, run_key="same", teacher_epochs=1)
    other = fc.select(train, method="k_center", ipc=2, run_key="other", teacher_epochs=2)

    assert same.config["embeddings"]["condense_embedding"]["source"] == "reused"
    assert other.config["embeddings"]["condense_embedding"]["source"] == "computed"
    assert other.config["embeddings_field"] is None  # computed for this run only: the field keeps epoch-1 features
    np.testing.assert_array_equal(np.stack(train.values("condense_embedding")), stored)


def test_a_torch_model_you_already_have_embeds_the_images(dataset):
    train = dataset.match_tags("train")
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten())  # 3×4×4 = 48 features
    record = fc.select(train, method="k_center", ipc=2, run_key="mine", model=model, embeddings_field="pooled")
    assert train.first()["pooled"].shape == (48,)
    assert record.config["model"] == "torch.nn.modules.container.Sequential"
    assert dataset.get_field("pooled").info["plugin"] == "fiftyone-condense"


def test_a_fiftyone_model_you_already_have_embeds_the_images(dataset):
    import fiftyone.utils.torch as fout

    train = dataset.match_tags("train")
    module = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())
    model = fout.TorchImageModel(fout.TorchImageModelConfig(
        {"model": module, "as_feature_extractor": True, "image_size": [28, 28], "ragged_batches": False}))
    record = fc.select(train, method="herding", ipc=2, run_key="zoo", model=model, embeddings_field="zoo_features")
    assert train.first()["zoo_features"].shape == (12,)
    assert record.config["model"].endswith("TorchImageModel")
