"""Distillation end to end on real Fashion-MNIST PNGs: runs, synthetic samples, palette PNGs, resume."""

import numpy as np
import pytest
from PIL import Image

import fiftyone_condense as fc
from fiftyone_condense.algorithms.distillation import Distiller
from fiftyone_condense.algorithms.errors import CondensationError
from fiftyone_condense.apps import reports
from fiftyone_condense.bridge.views import Reading

QUICK = dict(iterations=3, batch_real=8, teacher_epochs=1)


def test_dm_from_a_selection_run_adds_synthetic_samples(dataset):
    train = dataset.match_tags("train")
    fc.select(train, method="herding", ipc=2, run_key="herd", teacher_epochs=1)
    record = fc.distill(train, method="dm", ipc=2, init="herd", run_key="dm2", **QUICK)

    synthetic = dataset.match_tags("condense:dm2")
    assert len(synthetic) == 20 and set(synthetic.distinct("tags")) == {"condense:dm2", "synthetic"}
    assert sorted(s[0] for s in synthetic.values("condense_sources")) == sorted(fc.load_run(dataset, "herd").results["selected_ids"])
    with Image.open(synthetic.first().filepath) as image:
        assert image.mode == "L" and image.size == (28, 28)
    assert record.config["init"] == "herd" and record.config["kind"] == "distillation"
    assert len(record.results["loss_history"]) == 3
    floats = synthetic.values("condense_floats")  # the pixels as optimised: the PNG clamps and rounds them
    assert len(floats) == 20 and floats[0].shape == (1, 28, 28) and floats[0].dtype == np.float32
    with Image.open(synthetic.first().filepath) as image:
        first = np.asarray(image, dtype=np.float32) / 255
    assert np.abs(np.clip(synthetic.first().condense_floats[0], 0, 1) - first).max() <= 0.5 / 255 + 1e-6
    on_floats = fc.evaluate(run_key="dm2", dataset=dataset, epochs=1, num_models=1, references=False)
    assert on_floats["num_train"] == 20 and on_floats["trained_on"] == "float pixels (condense_floats)"
    on_files = fc.evaluate(run_key="dm2", dataset=dataset, epochs=1, num_models=1, references=False, float_images=False)
    assert on_files["trained_on"] == "image files"


def test_ddm_from_noise_has_no_sources(dataset):
    record = fc.distill(dataset.match_tags("train"), method="ddm", ipc=1, init="noise", run_key="noise", **QUICK)
    assert record.view.values("condense_sources") == [[]] * 10


def test_autopalette_stores_real_palette_pngs_with_at_most_k_colours(dataset):
    record = fc.distill(dataset.match_tags("train"), method="autopalette", ipc=1, num_colors=16, run_key="ap", **QUICK)
    assert record.config["init"] == "autopalette_init"
    assert record.config["ipc"] == 16 and len(record.view) == 160  # the reference's budget: IPC × 2^(8 − 4) at K = 16
    for path in record.view.values("filepath"):
        with Image.open(path) as image:
            assert image.mode == "P"
            assert len(image.getcolors()) <= 16
    assert record.results["bytes"] < record.results["bytes_8bit_rgb"]
    assert not record.view.exists("condense_floats")  # its palette PNGs are what it made
    # Grey palettes read back as grey images, the shape the evaluation split has.
    assert record.config["image_format"]["channels"] == 1  # grey palettes: a grey working format
    assert set(record.view.values("metadata.num_channels")) == {1} and Reading().load(record.view, "ground_truth", None).shape == (1, 28, 28)

    # Its own evaluation: experts trained on the source split (cached), their logits as soft labels.
    own = fc.evaluate(run_key="ap", dataset=dataset, protocol="autopalette", epochs=1, num_models=1, expert_epochs=1,
                      references=False)
    assert own["protocol"]["name"] == "autopalette" and own["protocol"]["batch_size"] == 128
    assert own["experts"]["num_experts"] == 1 and len(own["experts"]["test_accuracy"]) == 1
    again = fc.evaluate(run_key="ap", dataset=dataset, protocol="autopalette", epochs=1, num_models=1, expert_epochs=1,
                        references=False)
    assert again["experts"]["test_accuracy"] == own["experts"]["test_accuracy"]  # the cached experts
    assert set(fc.load_run(dataset, "ap").results["evaluation"]) == {"autopalette"}
    row = next(row for row in reports.run_rows(dataset) if row["key"] == "ap")
    assert row["autopalette"] == pytest.approx(100 * own["mean"], abs=0.05)


@pytest.mark.parametrize("budget, per_class", [("bits", 4), ("count", 1)])
def test_autopalette_budget_options(dataset, budget, per_class):
    record = fc.distill(dataset.match_tags("train"), method="autopalette", ipc=1, num_colors=4, budget=budget,
                        run_key="ap_budget", **QUICK)
    assert record.config["ipc"] == per_class and len(record.view) == 10 * per_class  # bits: 8 bits / 2 bits = 4×


def test_an_interrupted_distillation_changes_nothing_and_resumes(dataset, monkeypatch, snapshot):
    train = dataset.match_tags("train")
    before = snapshot(dataset)
    original_step = Distiller.step

    def ctrl_c_at_iteration_two(self, iteration):
        if iteration == 2:
            raise KeyboardInterrupt
        return original_step(self, iteration)

    monkeypatch.setattr(Distiller, "step", ctrl_c_at_iteration_two)
    with pytest.raises(KeyboardInterrupt):
        fc.distill(train, method="dm", ipc=1, run_key="long", iterations=4, batch_real=8, checkpoint_every=1)
    monkeypatch.undo()
    assert snapshot(dataset) == before
    record = fc.distill(train, method="dm", ipc=1, run_key="long", iterations=4, batch_real=8, checkpoint_every=1)
    assert record.results["resumed_from"] == 2


def test_bad_distillation_input_changes_nothing(dataset, snapshot):
    train = dataset.match_tags("train")
    before = snapshot(dataset)
    with pytest.raises(CondensationError, match="Unknown distillation method"):
        fc.distill(train, method="magic", ipc=1)
    with pytest.raises(CondensationError, match="init must be"):
        fc.distill(train, method="dm", ipc=1, init="nowhere")
    with pytest.raises(CondensationError, match="larger than some classes"):
        fc.distill(train, method="dm", ipc=50)
    with pytest.raises(CondensationError, match="budget 'paper' distils 40 images per class at ipc=10"):
        fc.distill(train, method="autopalette", ipc=10)  # 4 × IPC at K = 64, but 20 per class
    assert snapshot(dataset) == before


def test_the_distill_form_flags_a_budget_larger_than_the_classes(dataset, form):
    properties = form("distill_dataset", dataset, split="train", method="autopalette", ipc=10)
    assert properties["budget"].invalid and "40 images per class" in properties["budget"].error_message
    assert not form("distill_dataset", dataset, split="train", method="autopalette", ipc=10, budget="count")["budget"].invalid


def test_distill_operator_end_to_end(dataset, run_operator):
    run_operator("distill_dataset", dataset, method="autopalette", ipc=1, num_colors=64, iterations=2, batch_real=8,
                 split="train", run_key="op_ap", teacher_epochs=1)
    record = fc.load_run(dataset, "op_ap")
    assert record.results["num_samples"] == 40 and record.results["bytes"] > 0  # K = 64: 4 × IPC
    assert len(dataset.match_tags("synthetic")) == 40
