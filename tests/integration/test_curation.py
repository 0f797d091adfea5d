"""What a curator does beyond the papers: sort and filter by a selection's scores, and pick from an
unlabeled pool (which images to label first) by embeddings another model computed."""

import fiftyone as fo
import numpy as np
import pytest
import torch

import fiftyone_condense as fc


def test_a_selection_writes_its_scores_to_a_field_that_lives_and_dies_with_the_run(dataset, snapshot, refused):
    train = dataset.match_tags("train")
    fc.compute_embeddings(train, teacher_epochs=1)  # shared by runs, kept when one is deleted
    before = snapshot(dataset)
    fc.select(train, method="graph_cut", ipc=2, run_key="gc", teacher_epochs=1, scores_field=True)

    field = "condense_scores_gc"
    assert fc.load_run(dataset, "gc").config["scores_field"] == field
    assert dataset.get_field(field).info["run_key"] == "gc" and "greedy gain" in dataset.get_field(field).info["score"]
    assert len(train.exists(field)) == len(train) and len(dataset.exists(field)) == len(train)
    # sortable in the App: in every class, the highest score is the first pick (the greedy's best gain)
    for label in train.distinct("ground_truth.label"):
        best = train.match(fo.ViewField("ground_truth.label") == label).sort_by(field, reverse=True).first()
        assert "condense:gc" in best.tags
    assert len(train.match(fo.ViewField(field) > 0)) > 0  # and filterable

    fc.rename_run(dataset, "gc", "gc2")
    assert not dataset.has_sample_field(field) and dataset.has_sample_field("condense_scores_gc2")
    assert fc.load_run(dataset, "gc2").config["scores_field"] == "condense_scores_gc2"
    fc.delete_run(dataset, "gc2")
    assert snapshot(dataset) == before

    refused(dataset, "no per-sample score", lambda: fc.select(train, method="random", ipc=2, scores_field=True))
    refused(dataset, "already used", lambda: fc.select(train, method="k_center", ipc=2, teacher_epochs=1,
                                                       scores_field="ground_truth"))


def test_a_named_scores_field_keeps_its_name_and_an_overwrite_without_scores_removes_it(dataset):
    train = dataset.match_tags("train")
    fc.select(train, method="k_center", ipc=2, run_key="kc", teacher_epochs=1, scores_field="coverage")
    distances = np.array(train.values("coverage"), dtype=float)
    assert (distances[np.isin(train.values("id"), fc.load_run(dataset, "kc").results["selected_ids"])] > 0).all()
    fc.rename_run(dataset, "kc", "kc_renamed")
    assert dataset.has_sample_field("coverage")  # a name of the user's is kept

    fc.select(train, method="k_center", ipc=3, run_key="kc_renamed", teacher_epochs=1, overwrite=True)
    assert not dataset.has_sample_field("coverage")  # the replaced run's field goes once the new run commits


@pytest.fixture
def pool(dataset):
    """The training images without their labels, embedded by a FiftyOne model that is not ours."""
    import fiftyone.utils.torch as fout

    dataset.delete_sample_field("ground_truth")
    pool = dataset.match_tags("train")
    module = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(3), torch.nn.Flatten())
    model = fout.TorchImageModel(fout.TorchImageModelConfig(
        {"model": module, "as_feature_extractor": True, "image_size": [28, 28], "ragged_batches": False}))
    pool.compute_embeddings(model, embeddings_field="foreign_embedding")
    return pool


def test_an_unlabeled_pool_is_selected_from_a_foreign_embeddings_field(dataset, pool, refused, form, run_operator):
    record = fc.select(pool, method="k_center", count=15, label_field=None, embeddings_field="foreign_embedding",
                       scores_field=True)
    assert record.key == "k_center_n15" and len(record.view) == 15
    assert record.config["label_field"] is None and record.config["budget"]["total"] == 15
    assert record.config["embeddings"]["foreign_embedding"]["source"] == "existing field"
    unpicked = pool.match_tags("condense:k_center_n15", bool=False)
    least_covered = unpicked.sort_by("condense_scores_k_center_n15", reverse=True).first().id  # label it next:
    one_more = fc.select(pool, method="k_center", count=16, label_field=None, embeddings_field="foreign_embedding")
    assert set(one_more.results["selected_ids"]) - set(record.results["selected_ids"]) == {least_covered}  # k-center agrees

    herding = fc.select(pool, method="herding", fraction=0.05, label_field=None, embeddings_field="foreign_embedding")
    assert len(herding.view) == 10  # 5 % of 200, towards the pool's mean

    refused(dataset, "needs labels", lambda: fc.select(pool, method="dc3", count=5, label_field=None))
    refused(dataset, "no classes for ipc", lambda: fc.select(pool, method="random", ipc=5, label_field=None))
    refused(dataset, "compute embeddings first", lambda: fc.select(pool, method="graph_cut", count=5,
                                                                   label_field=None))

    properties = form("select_coreset", dataset, split="train", label_field="(none: an unlabeled pool)")
    assert "dc3" not in properties["method"].type.values and "ipc" not in properties
    assert "ipc" not in properties["budget_mode"].type.values
    run_operator("select_coreset", dataset, split="train", label_field="(none: an unlabeled pool)",
                 method="facility_location", budget_mode="count", count=8, embeddings_field="foreign_embedding",
                 run_key="from_form", write_scores=True)
    assert len(fc.load_run(dataset, "from_form").view) == 8 and dataset.has_sample_field("condense_scores_from_form")
    assert len(pool.exists("condense_scores_from_form")) == len(pool)
