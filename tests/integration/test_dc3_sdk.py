"""DC3 end to end: dc3 selection, colour compensation runs, soft-label evaluation."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fiftyone_condense as fc
from fiftyone_condense.algorithms.errors import CondensationError

CLASSICAL = dict(backend="classical", edit_size=64)


@pytest.fixture
def selected(dataset):
    """A dc3 selection (ConvNet-3 encoder and gradients) of 4 images per class."""
    fc.select(dataset.match_tags("train"), method="dc3", ipc=4, run_key="dc3", bins=2, teacher_epochs=1,
              model="convnet3", gradient_model="convnet3")
    return dataset


def test_dc3_selection_records_bins_and_gradient_embeddings(selected):
    record = fc.load_run(selected, "dc3")
    assert record.config["embedding"] == "gradients" and record.config["params"]["gradient_loss"] == "softmax_cross_entropy"
    assert record.config["params"]["bins"] == 2 and record.config["params"]["lambda_"] == 1.0
    assert all(n == 4 for n in selected.match_tags("condense:dc3").count_values("ground_truth.label").values())


def test_dc3_bins_on_vae_latents_from_a_locally_saved_vae(dataset, tiny_vae_dir):
    record = fc.select(dataset.match_tags("train"), method="dc3", ipc=3, run_key="dc3_vae", model="vae",
                       vae_model=str(tiny_vae_dir), vae_size=32, bins=3, teacher_epochs=1, gradient_model="convnet3")
    assert record.config["model"] == "vae" and record.config["params"]["vae_size"] == 32
    assert record.config["fallbacks"] == {}
    assert len(record.view) == 30


def test_without_the_vae_and_imagenet_weights_dc3_falls_back_to_a_trained_convnet_and_says_so(dataset, tmp_path):
    record = fc.select(dataset.match_tags("train"), method="dc3", ipc=2, run_key="dc3_fallback", vae_model=str(tmp_path / "none"),
                       weights=str(tmp_path / "no-resnet.pth"), teacher_epochs=1)
    assert record.config["model"] == "convnet3" and record.config["params"]["gradient_model"] == "convnet3"
    assert "VAE" in record.config["fallbacks"]["encoder"] and "imagenet_resnet18" in record.config["fallbacks"]["gradient_model"]
    assert len(record.view) == 20


def test_dc3_gradients_from_imagenet_resnet18_weights_given_as_a_file(dataset, tmp_path):
    import torch
    import torchvision

    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "resnet18.pth")
    record = fc.select(dataset.match_tags("train"), method="dc3", ipc=2, run_key="dc3_imagenet", model="convnet3",
                       weights=str(tmp_path / "resnet18.pth"), teacher_epochs=1)
    assert record.config["params"]["gradient_model"] == "imagenet_resnet18" and record.config["fallbacks"] == {}
    assert len(record.view) == 20


@pytest.mark.parametrize("mode", ["gradient", "random", "grid", "fourfold"])
def test_classical_compensation_adds_synthetic_rgb_samples(selected, mode):
    view = selected.load_saved_view("condense-dc3")
    record = fc.compensate(view, backend="classical", combine_mode=mode, run_key="comp", edit_size=64)

    synthetic = selected.match_tags("synthetic")
    assert len(synthetic) == 40 and len(selected.load_saved_view("condense-comp")) == 40
    sample = synthetic.first()
    assert sample.tags == ["condense:comp", "synthetic"] and sample.condense_run == "comp"
    source = selected[sample.condense_sources[0]]
    assert sample.ground_truth.label == source.ground_truth.label
    assert "condense:dc3" in source.tags and "condense:comp" not in source.tags
    with Image.open(sample.filepath) as image:
        assert image.mode == "RGB" and image.size == (28, 28)
    assert Path(sample.filepath).parent == Path(source.filepath).parent.parent / "condense" / selected.name / "comp"
    assert record.config["parent"] == "dc3" and record.config["combine_mode"] == mode
    stats = record.results["color_stats"]
    assert stats["before"]["colorfulness"]["mean"] == 0.0 < stats["after"]["colorfulness"]["mean"]
    assert record.results["bytes"] == sum(os.path.getsize(p) for p in synthetic.values("filepath"))


def test_compensation_is_seeded_and_output_size_is_configurable(selected, tmp_path):
    view = selected.load_saved_view("condense-dc3")
    first = fc.compensate(view, run_key="a", seed=3, output_dir=str(tmp_path), **CLASSICAL)
    second = fc.compensate(view, run_key="b", seed=3, output_dir=str(tmp_path), **CLASSICAL)
    pixels = lambda key: [np.asarray(Image.open(p)) for p in sorted(fc.load_run(selected, key).view.values("filepath"))]  # noqa: E731
    assert all(np.array_equal(a, b) for a, b in zip(pixels("a"), pixels("b")))
    resized = fc.compensate(view, run_key="big", image_size=(32, 40), output_dir=str(tmp_path), **CLASSICAL)
    with Image.open(resized.view.first().filepath) as image:
        assert image.size == (40, 32) and image.mode == "RGB"
    assert resized.config["image_format"]["size"] == [32, 40] and resized.config["image_format"]["channels"] == 3
    assert first.config["image_format"]["size"] == [28, 28]  # the parent selection's working format
    assert first.results["num_samples"] == second.results["num_samples"] == 40


def test_diffusion_backend_loads_a_saved_pipeline_and_batches_edits(selected, tiny_pix2pix):
    view = selected.load_saved_view("condense-dc3").limit(6)
    settings = dict(backend="diffusion", model=str(tiny_pix2pix), steps=2, edit_size=32, combine_mode="gradient", seed=1)
    one = fc.compensate(view, run_key="diff_one", batch_size=1, **settings)
    many = fc.compensate(view, run_key="diff_many", batch_size=4, **settings)
    images = lambda record: [np.asarray(Image.open(p), dtype=float) for p in sorted(record.view.values("filepath"))]  # noqa: E731
    for a, b in zip(images(one), images(many)):
        assert np.abs(a - b).max() <= 2  # the batch size does not change the edits (rounding aside)
    assert one.config["params"]["model"] == str(tiny_pix2pix)


def test_diffusion_is_the_default_and_without_weights_is_a_clear_error_that_changes_nothing(selected, tmp_path, snapshot):
    before = snapshot(selected)
    with pytest.raises(CondensationError, match="backend='classical'"):
        fc.compensate(selected.load_saved_view("condense-dc3"), model=str(tmp_path / "missing"))
    assert snapshot(selected) == before


def test_deleting_or_overwriting_a_compensation_run_removes_its_samples_and_media(selected):
    view = selected.load_saved_view("condense-dc3")
    record = fc.compensate(view, run_key="comp", **CLASSICAL)
    old_media = record.view.values("filepath")
    fc.compensate(view, run_key="comp", combine_mode="grid", overwrite=True, **CLASSICAL)
    assert len(selected.match_tags("synthetic")) == 40
    assert fc.load_run(selected, "comp").config["combine_mode"] == "grid"
    assert all(os.path.isfile(p) for p in old_media)  # same names, rewritten
    before_delete = selected.match_tags("synthetic").values("filepath")
    fc.delete_run(selected, "comp")
    assert len(selected.match_tags("synthetic")) == 0
    assert not any(os.path.exists(p) for p in before_delete)
    assert not Path(before_delete[0]).parent.exists()


def test_an_interrupted_compensation_leaves_no_samples_or_files(selected, ctrl_c_while_saving_the_view, snapshot):
    before = snapshot(selected)
    ctrl_c_while_saving_the_view()
    with pytest.raises(KeyboardInterrupt):
        fc.compensate(selected.load_saved_view("condense-dc3"), run_key="cut", **CLASSICAL)
    assert snapshot(selected) == before
    folder = Path(selected.match_tags("train").first().filepath).parent.parent / "condense" / selected.name / "cut"
    assert not folder.exists()


def test_soft_protocol_result_is_stored_beside_the_hard_one(selected):
    fc.compensate(selected.load_saved_view("condense-dc3"), run_key="comp", **CLASSICAL)
    hard = fc.evaluate(run_key="comp", dataset=selected, epochs=2, num_models=1)
    soft = fc.evaluate(run_key="comp", dataset=selected, protocol="soft", epochs=2, num_models=2, teacher_epochs=2)
    assert soft["protocol"]["name"] == "soft" and soft["protocol"]["temperature"] == 20.0
    assert len(soft["accuracies"]) == 2 and soft["random"]["protocol"]["name"] == "soft"
    assert len(soft["best_accuracies"]) == 2 and soft["best_mean"] >= soft["mean"] - 1e-9  # RDED reports the best epoch
    assert soft["teacher"]["epochs"] <= 2 and 0 <= soft["teacher"]["test_accuracy"] <= 1
    # the compensated set is RGB: its random reference is trained in RGB too, by the same network
    assert hard["channels"] == 3 and hard["random"]["num_train"] == 40
    stored = fc.load_run(selected, "comp").results["evaluation"]
    assert stored["hard"]["mean"] == pytest.approx(hard["mean"]) and stored["soft"]["mean"] == pytest.approx(soft["mean"])


def test_color_stats_of_a_view_for_plotting(fashion_mnist):
    stats = fc.color_stats(fashion_mnist.match_tags("test"))
    assert stats["channels"] == 1 and stats["num_images"] == 100
    assert len(stats["kde"]["density"]["gray"]) == len(stats["kde"]["grid"]) == 64
