"""The SDK end to end on a real FiftyOne database and real Fashion-MNIST PNGs."""

import fiftyone as fo
import numpy as np
import pytest
from PIL import Image

import fiftyone_condense as fc
from fiftyone_condense.algorithms.errors import CondensationError

TRAIN_PER_CLASS = 20


@pytest.mark.parametrize("method", ["random", "herding", "k_center", "graph_cut", "facility_location"])
def test_select_tags_picks_saves_a_view_and_records_the_run(dataset, method):
    train = dataset.match_tags("train")
    params = {"teacher_epochs": 1} if fc.SELECTION_METHODS[method].needs_embeddings else {}
    record = fc.select(train, method=method, ipc=3, run_key="picked", **params)

    tagged = dataset.match_tags("condense:picked")
    assert len(tagged) == 30
    assert sorted(tagged.values("id")) == sorted(record.results["selected_ids"])
    assert all(count == 3 for count in tagged.count_values("ground_truth.label").values())
    assert set(tagged.values("id")) <= set(train.values("id"))
    assert sorted(dataset.load_saved_view("condense-picked").values("id")) == sorted(tagged.values("id"))
    assert fc.list_runs(dataset) == ["picked"]
    loaded = fc.load_run(dataset, "picked")
    assert loaded.config["method"] == method and loaded.config["ipc"] == 3
    assert loaded.results["timings"]["total_s"] > 0
    if fc.SELECTION_METHODS[method].needs_embeddings:
        assert dataset.has_sample_field("condense_embedding")
        assert train.first()["condense_embedding"].shape == (2048,)


def test_gradient_embeddings_drive_graph_cut_and_embeddings_are_reused(dataset):
    train = dataset.match_tags("train")
    fc.compute_embeddings(train, teacher_epochs=1)
    stored = np.stack(train.values("condense_embedding"))
    features = fc.select(train, method="graph_cut", ipc=6, run_key="gc_features")
    gradients = fc.select(train, method="graph_cut", ipc=6, run_key="gc_gradients", embedding="gradients")
    np.testing.assert_array_equal(np.stack(train.values("condense_embedding")), stored)
    assert gradients.config["embedding"] == "gradients"
    assert features.results["selected_ids"] != gradients.results["selected_ids"]


def test_seeded_selection_is_reproducible(dataset):
    train = dataset.match_tags("train")
    first = fc.select(train, method="random", ipc=2, run_key="a", seed=7).results["selected_ids"]
    second = fc.select(train, method="random", ipc=2, run_key="b", seed=7).results["selected_ids"]
    assert first == second


def test_evaluate_stores_accuracy_with_random_reference_on_the_run(dataset):
    fc.select(dataset.match_tags("train"), method="random", ipc=2, run_key="r2", seed=1)
    result = fc.evaluate(run_key="r2", dataset=dataset, epochs=3, num_models=2)

    assert len(result["accuracies"]) == 2 and 0.0 <= result["mean"] <= 1.0
    assert len(result["per_class"]) == 10
    assert result["random"]["num_train"] == 20
    assert result["gain_over_random"] == pytest.approx(result["mean"] - result["random"]["mean"])
    stored = fc.load_run(dataset, "r2").results["evaluation"]["hard"]
    assert stored["mean"] == pytest.approx(result["mean"])
    # the reference is cached on the dataset: a second evaluation reuses it
    again = fc.evaluate(run_key="r2", dataset=dataset, epochs=3, num_models=2)
    assert again["random"]["seconds"] == result["random"]["seconds"]


def test_a_random_run_with_the_reference_seed_is_the_reference_and_is_trained_once(dataset):
    fc.select(dataset.match_tags("train"), method="random", ipc=2, run_key="same", seed=4)
    result = fc.evaluate(run_key="same", dataset=dataset, epochs=2, num_models=1, seed=4)
    assert result["accuracies"] == result["random"]["accuracies"]
    assert result["seconds"] == result["random"]["seconds"] and result["gain_over_random"] == 0


def test_evaluate_any_view_without_recording(dataset):
    view = dataset.match_tags("train").limit(30)
    result = fc.evaluate(view, epochs=1, num_models=1, references=False)
    assert result["num_train"] == 30 and "random" not in result
    assert fc.list_runs(dataset) == []


def test_overwrite_replaces_a_run_cleanly(dataset):
    train = dataset.match_tags("train")
    fc.select(train, method="random", ipc=3, run_key="run", seed=0)
    with pytest.raises(CondensationError, match="already exists"):
        fc.select(train, method="random", ipc=2, run_key="run")
    fc.select(train, method="random", ipc=2, run_key="run", seed=5, overwrite=True)
    assert len(dataset.match_tags("condense:run")) == 20
    assert fc.load_run(dataset, "run").config["ipc"] == 2
    assert len(dataset.load_saved_view("condense-run")) == 20


def test_delete_run_removes_everything_it_made(dataset, snapshot):
    before = snapshot(dataset)
    fc.select(dataset.match_tags("train"), method="random", ipc=2, run_key="gone")
    fc.delete_run(dataset, "gone")
    assert snapshot(dataset) == before
    with pytest.raises(CondensationError, match="No condensation run"):
        fc.delete_run(dataset, "gone")


def test_an_interrupted_write_leaves_the_dataset_as_it_was(dataset, ctrl_c_while_saving_the_view, snapshot):
    fc.select(dataset.match_tags("train"), method="random", ipc=3, run_key="kept", seed=0)
    kept_ids = sorted(dataset.match_tags("condense:kept").values("id"))
    before = snapshot(dataset)

    ctrl_c_while_saving_the_view()
    with pytest.raises(KeyboardInterrupt):
        fc.select(dataset.match_tags("train"), method="herding", ipc=2, run_key="new", teacher_epochs=1)
    ctrl_c_while_saving_the_view()
    with pytest.raises(KeyboardInterrupt):  # an overwrite interrupted half-way restores the old run
        fc.select(dataset.match_tags("train"), method="random", ipc=2, run_key="kept", overwrite=True)

    assert snapshot(dataset) == before
    assert sorted(dataset.match_tags("condense:kept").values("id")) == kept_ids
    assert fc.load_run(dataset, "kept").config["ipc"] == 3
    assert len(dataset.load_saved_view("condense-kept")) == 30


# ------------------------------------------------------------------ bad input changes nothing


def test_no_label_field(dataset, refused):
    refused(dataset, "no field 'labels'", lambda: fc.select(dataset, method="random", ipc=1, label_field="labels"))


def test_non_classification_labels(dataset, refused):
    sample = dataset.first()
    sample["boxes"] = fo.Detections(detections=[fo.Detection(label="x", bounding_box=[0, 0, 1, 1])])
    sample.save()
    refused(dataset, "not fo.Classification", lambda: fc.select(dataset, method="random", ipc=1, label_field="boxes"))


def test_ipc_larger_than_a_class(dataset, refused):
    train = dataset.match_tags("train")
    refused(dataset, f"ipc=21 is larger than some classes: 'T-shirt/top' has {TRAIN_PER_CLASS}",
                 lambda: fc.select(train, method="random", ipc=21))


def test_missing_image_file(dataset, tmp_path, refused):
    sample = dataset.match_tags("train").first()
    sample.filepath = str(tmp_path / "nowhere.png")
    sample.save()
    refused(dataset, "1 image files are missing", lambda: fc.select(dataset.match_tags("train"), method="herding", ipc=1))


def test_corrupt_image_file(dataset, tmp_path, refused):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    sample = dataset.match_tags("train").first()
    sample.filepath = str(broken)
    sample.save()
    refused(dataset, "cannot be decoded", lambda: fc.select(dataset.match_tags("train"), method="k_center", ipc=1))


def test_mixed_sizes_and_channels_work_at_the_most_common_shape_and_say_so(dataset, tmp_path):
    samples = dataset.match_tags("train").limit(2)
    for sample, (size, mode) in zip(samples, [((32, 32), "L"), ((28, 28), "RGB")]):
        path = tmp_path / f"{mode}{size[0]}.png"
        Image.new(mode, size).save(path)
        sample.filepath = str(path)
        sample.save()
    with pytest.warns(UserWarning, match="2 sizes .* working at 28×28"):
        record = fc.select(dataset.match_tags("train"), method="herding", ipc=1)
    recorded = record.config["image_format"]
    assert recorded["size"] == [28, 28] and recorded["channels"] == 3 and recorded["resize"] == "crop"
    assert "image_size=" in recorded["reason"] and "converted to RGB" in recorded["reason"]


def test_existing_run_key(dataset, refused):
    fc.select(dataset.match_tags("train"), method="random", ipc=1, run_key="taken")
    refused(dataset, "already exists", lambda: fc.select(dataset.match_tags("train"), method="random", ipc=1, run_key="taken"))


def test_invalid_run_key_and_unknown_method(dataset, refused):
    refused(dataset, "Invalid run_key", lambda: fc.select(dataset, method="random", ipc=1, run_key="bad key"))
    refused(dataset, "Unknown selection method", lambda: fc.select(dataset, method="magic", ipc=1))


def test_empty_view(dataset, refused):
    refused(dataset, "empty", lambda: fc.select(dataset.match_tags("nothing"), method="random", ipc=1))
    refused(dataset, "No samples are tagged 'validation'",
                 lambda: fc.evaluate(dataset.match_tags("train"), eval_split="validation", epochs=1, num_models=1))


def test_evaluating_on_training_images_is_refused(dataset, refused):
    refused(dataset, "also tagged 'test'",
                 lambda: fc.evaluate(dataset.match_tags("test").limit(5), epochs=1, num_models=1, references=False))


def test_resnet18_embeddings_from_a_local_torchvision_checkpoint(dataset, tmp_path):
    import torch
    import torchvision

    weights = tmp_path / "resnet18.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), weights)  # a real checkpoint file, random weights
    view = dataset.match_tags("train").limit(40)
    fc.compute_embeddings(view, model="resnet18", weights=str(weights), embeddings_field="rn_embedding")
    sample = view.first()
    assert sample["rn_embedding"].shape == (512,) and sample["rn_embedding_logits"].shape == (10,)
    assert dataset.get_field("rn_embedding").info["weights"] == str(weights)


def test_resnet18_is_an_evaluation_architecture(dataset):
    result = fc.evaluate(dataset.match_tags("train").limit(20), arch="resnet18", epochs=1, num_models=1, references=False)
    assert result["protocol"]["arch"] == "resnet18" and 0.0 <= result["mean"] <= 1.0


def test_fraction_and_count_budgets_keep_an_unbalanced_class_distribution(dataset, form, run_operator):
    """A curator's budgets: 10 % of an unbalanced split (Trouser 5 of its 20 kept), or 12 images in all."""
    train = dataset.match_tags("train")
    view = train.exclude(train.match(fo.ViewField("ground_truth.label") == "Trouser").values("id")[:15])  # 185 images
    record = fc.select(view, method="random", fraction=0.1)
    budget = record.config["budget"]
    # round(18.5) = 18: quotas 1.95 for the nine classes of 20, 0.49 for Trouser; floors, Trouser's one, then
    # the 8 images left to the largest remainders (equal: the earlier classes)
    assert record.key == "random_frac0_1" and budget["mode"] == "fraction" and budget["allocation"] == "proportional"
    assert budget["total"] == 18 == len(record.view) and budget["per_class"]["Trouser"] == 1
    assert sorted(budget["per_class"].values()) == [1, 1] + [2] * 8
    assert record.view.count_values("ground_truth.label") == {k: v for k, v in budget["per_class"].items() if v}

    balanced = fc.select(view, method="random", count=30, allocation="balanced", run_key="balanced")
    assert set(balanced.config["budget"]["per_class"].values()) == {3}

    distilled = fc.distill(view, method="dm", count=12, iterations=2, batch_real=4, teacher_epochs=1)
    assert distilled.key == "dm_n12" and len(distilled.view) == 12 == distilled.config["budget"]["total"]
    assert distilled.view.count_values("ground_truth.label")["Trouser"] == 1

    properties = form("select_coreset", dataset, split="train", budget_mode="fraction", fraction=0.25)
    assert {"fraction", "allocation"} <= set(properties) and "ipc" not in properties
    assert properties["run_key"].default == "random_frac0_25"
    run_operator("select_coreset", dataset, split="train", method="random", budget_mode="count", count=20,
                 allocation="balanced", run_key="from_form")
    assert fc.load_run(dataset, "from_form").config["budget"]["per_class"]["Bag"] == 2
    with pytest.raises(CondensationError, match="exactly one"):
        fc.select(view, method="random", ipc=2, count=10)
