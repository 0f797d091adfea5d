"""The plugin's operators, executed through FiftyOne's operator machinery (immediate and delegated)."""

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.plugins as fop
import numpy as np
import pytest
from fiftyone import ViewField as F
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionContext, Executor

import fiftyone_condense as fc
from fiftyone_condense.algorithms.architectures import NAMED_ARCHITECTURES
from fiftyone_condense.algorithms.loader import cached_bytes, image_cache

PLUGIN = "@condense/fiftyone-condense"
LONG = {"distill_dataset": {}, "evaluate_condensed": {}, "select_coreset": {"method": "dc3"},
        "compensate_colors": {"backend": "diffusion"}}
SHORT = {"select_coreset": {"method": "random"}, "compensate_colors": {"backend": "classical"}}


def test_plugin_is_discovered_with_its_operators():
    names = {op.name for op in foo.list_operators() if op.plugin_name == PLUGIN}
    assert {"compute_embeddings", "select_coreset", "compensate_colors", "distill_dataset", "evaluate_condensed",
            "delete_condensation_run"} <= names
    assert PLUGIN in fop.list_enabled_plugins()


def test_select_evaluate_delete_through_operators(dataset, run_operator):
    image_cache().put(("warm", None), 0, np.zeros(16, np.uint8))
    run_operator("select_coreset", dataset, method="k_center", ipc=2, run_key="op_kc", split="train", teacher_epochs=1)
    assert len(dataset.match_tags("condense:op_kc")) == 20
    assert cached_bytes() == 0  # a run inside the App server keeps no decoded images
    assert fc.load_run(dataset, "op_kc").config["image_format"] == {"size": [28, 28], "channels": 1, "resize": "crop",
                                                                    "background": [255, 255, 255]}

    run_operator("evaluate_condensed", dataset, run_key="op_kc", epochs=2, num_models=1, eval_split="test")
    evaluation = fc.load_run(dataset, "op_kc").results["evaluation"]["hard"]
    assert 0 <= evaluation["mean"] <= 1 and "random" in evaluation

    run_operator("delete_condensation_run", dataset, run_key="op_kc")
    assert fc.list_runs(dataset) == [] and len(dataset.match_tags("condense:op_kc")) == 0


def test_an_immediate_run_streams_progress_to_the_app_then_reloads(dataset):
    op = foo.get_operator(f"{PLUGIN}/compute_embeddings")
    ctx = ExecutionContext(request_params={"dataset_name": dataset.name, "params": {"split": "train", "teacher_epochs": 1}},
                           executor=Executor())
    messages = [message.body for message in op.execute(ctx)]
    progress = [m.params["progress"] for m in messages if m.operator_uri == "set_progress"]
    assert len(progress) >= 3 and progress == sorted(progress) and progress[-1] == 1.0
    assert [m.operator_uri for m in messages[-2:]] == ["notify", "reload_dataset"]
    assert len(dataset.match_tags("train").exists("condense_embedding")) == 200


def test_a_scheduled_run_queues_then_reports_progress_on_the_delegated_operation(dataset):
    queued = foo.execute_operator(f"{PLUGIN}/select_coreset", ctx={
        "dataset": dataset, "view": dataset.view(), "request_delegation": True,
        "params": {"method": "herding", "ipc": 1, "run_key": "later", "split": "train", "teacher_epochs": 1}})
    assert queued.delegated and fc.list_runs(dataset) == []  # queued, not yet run

    service = DelegatedOperationService()
    [done] = service.execute_queued_operations(dataset_name=dataset.name)
    assert done.error is None, done.error
    assert fc.list_runs(dataset) == ["later"]
    operation = service.list_operations(dataset_name=dataset.name)[0]
    assert operation.status.progress == 1.0


def test_long_work_defaults_to_schedule_short_work_to_execute(dataset, form):
    def default_is_delegated(operator: str, params: dict) -> bool:
        ctx = ExecutionContext(request_params={"dataset_name": dataset.name, "params": params})
        return foo.get_operator(f"{PLUGIN}/{operator}").resolve_execution_options(ctx).default_choice_to_delegated

    assert all(default_is_delegated(operator, params) for operator, params in LONG.items())
    assert not any(default_is_delegated(operator, params) for operator, params in SHORT.items())
    for operator in LONG:
        properties = form(operator, dataset, **LONG[operator])
        assert "delegate" not in properties  # the App's own Execute / Schedule choice, no checkbox


@pytest.mark.parametrize("kind,operator", [("selection", "select_coreset"), ("distillation", "distill_dataset")])
def test_forms_are_built_from_each_methods_declared_parameters(dataset, kind, operator, form):
    methods = fc.SELECTION_METHODS if kind == "selection" else ("dm", "ddm", "autopalette")
    for method in methods:
        properties = form(operator, dataset, split="train", method=method, init="noise")
        for param in fc.method_parameters(kind, method):
            if param.when is None:
                assert properties[param.name].default == param.default, (method, param.name)
    autopalette_init = form("select_coreset", dataset, split="train", method="autopalette_init")
    assert autopalette_init["teacher_epochs"].default == 50 and "num_colors" in autopalette_init
    assert "embedding" not in autopalette_init


def test_select_form_bounds_ipc_by_the_smallest_class_and_flags_clashes(dataset, form):
    properties = form("select_coreset", dataset, split="train", method="herding", ipc=50)
    assert properties["ipc"].type.max == 20 and properties["ipc"].invalid
    assert not form("select_coreset", dataset, split="train", ipc=50, small_classes="keep_all")["ipc"].invalid
    assert properties["resize"].type.values == ["crop", "letterbox"] and "image_size" in properties
    assert properties["label_field"].type.values == ["ground_truth", "(none: an unlabeled pool)"]
    assert "embedding" in properties and "lambda_" not in properties
    assert "lambda_" in form("select_coreset", dataset, split="train", method="graph_cut")
    assert "model" not in form("select_coreset", dataset, split="train", method="random")

    for label in dataset.distinct("ground_truth.label"):  # a split whose classes hold 4 images each
        dataset.match_tags("test").match(F("ground_truth.label") == label).limit(4).tag_samples("few")
    few = form("select_coreset", dataset, split="few")
    assert few["ipc"].default == 4 and few["run_key"].default == "random_ipc4"

    fc.select(dataset.match_tags("train"), method="random", ipc=1, run_key="taken")
    assert form("select_coreset", dataset, split="train", run_key="taken")["run_key"].invalid
    assert not form("select_coreset", dataset, split="train", run_key="taken", overwrite=True)["run_key"].invalid


def test_forms_show_method_and_backend_specific_parameters(dataset, form):
    dc3 = form("select_coreset", dataset, split="train", method="dc3")
    assert {"bins", "pca_dim", "gradient_model", "lambda_", "vae_model"} <= set(dc3)  # DC3 bins VAE latents by default
    assert "vae_model" not in form("select_coreset", dataset, split="train", method="dc3", model="convnet3")
    assert "moments_weight" in form("distill_dataset", dataset, split="train", method="autopalette", task="ddm")
    assert "moments_weight" not in form("distill_dataset", dataset, split="train", method="autopalette")
    assert form("compensate_colors", dataset)["backend"].default == "diffusion"
    classical = form("compensate_colors", dataset, backend="classical")
    assert "steps" not in classical and "combine_mode" in classical
    assert {"model", "steps", "batch_size", "image_guidance"} <= set(form("compensate_colors", dataset, backend="diffusion"))
    fc.select(dataset.match_tags("train"), method="random", ipc=1, run_key="r")
    assert "temperature" in form("evaluate_condensed", dataset, protocol="soft")
    assert "temperature" not in form("evaluate_condensed", dataset, protocol="hard")
    architectures = form("evaluate_condensed", dataset, protocol="autopalette")["arch"]
    assert architectures.type.values == list(NAMED_ARCHITECTURES) and architectures.default == "convnet3"


def test_dc3_then_compensate_then_soft_evaluation_through_operators(dataset, run_operator):
    run_operator("select_coreset", dataset, method="dc3", ipc=2, run_key="op_dc3", split="train", bins=2, teacher_epochs=1)
    assert len(dataset.match_tags("condense:op_dc3")) == 20
    run_operator("compensate_colors", dataset, parent="op_dc3", backend="classical", combine_mode="grid", run_key="op_comp")
    assert len(dataset.match_tags("synthetic")) == 20
    run_operator("evaluate_condensed", dataset, run_key="op_comp", protocol="soft", epochs=1, num_models=1,
                 teacher_epochs=1, eval_split="test")
    assert "soft" in fc.load_run(dataset, "op_comp").results["evaluation"]


def test_video_and_grouped_datasets_are_refused_in_the_form_and_the_sdk(tmp_path, form):
    video = fo.Dataset()
    video.add_sample(fo.Sample(filepath=str(tmp_path / "clip.mp4"), ground_truth=fo.Classification(label="a")))
    grouped = fo.Dataset()
    grouped.add_group_field("group", default="left")
    group = fo.Group()
    grouped.add_sample(fo.Sample(filepath=str(tmp_path / "a.png"), group=group.element("left")))
    try:
        for dataset in (video, grouped):
            for operator in ("select_coreset", "distill_dataset", "compute_embeddings", "evaluate_condensed"):
                assert form(operator, dataset)["media_type"].invalid
            with pytest.raises(fc.CondensationError, match="image datasets only"):
                fc.select(dataset, method="random", ipc=1)
            assert fc.list_runs(dataset) == []
    finally:
        video.delete()
        grouped.delete()
