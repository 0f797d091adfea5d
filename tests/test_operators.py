"""The plugin's operators, executed through FiftyOne's operator machinery."""

import fiftyone.operators as foo
import fiftyone.plugins as fop
from fiftyone.operators.executor import ExecutionContext

from fiftyone import ViewField as F

import fiftyone_condense as fc

PLUGIN = "@condense/fiftyone-condense"


def run(operator, dataset, view=None, **params):
    result = foo.execute_operator(f"{PLUGIN}/{operator}", ctx={"dataset": dataset, "view": view or dataset.view(), "params": params})
    assert result.error is None, result.error
    return result.result


def form(operator, dataset, **params):
    """The operator's resolved input form for these params, as the App would see it."""
    op = foo.get_operator(f"{PLUGIN}/{operator}")
    ctx = ExecutionContext(request_params={"dataset_name": dataset.name, "params": params})
    return op.resolve_input(ctx).type.properties


def test_plugin_is_discovered_with_its_operators():
    names = {op.name for op in foo.list_operators() if op.plugin_name == PLUGIN}
    assert {"compute_embeddings", "select_coreset", "compensate_colors", "distill_dataset", "evaluate_condensed",
            "delete_condensation_run"} <= names
    assert PLUGIN in fop.list_enabled_plugins()


def test_select_evaluate_delete_through_operators(dataset):
    out = run("select_coreset", dataset, method="k_center", ipc=2, run_key="op_kc", split="train",
              teacher_epochs=1, delegate=False)
    assert out == {"run_key": "op_kc", "num_selected": 20}
    assert len(dataset.match_tags("condense:op_kc")) == 20

    out = run("evaluate_condensed", dataset, run_key="op_kc", epochs=2, num_models=1, eval_split="test", delegate=False)
    assert 0 <= out["mean"] <= 1 and "random_mean" in out
    assert fc.load_run(dataset, "op_kc").results["evaluation"]["hard"]["mean"] == out["mean"]

    run("delete_condensation_run", dataset, run_key="op_kc")
    assert fc.list_runs(dataset) == [] and len(dataset.match_tags("condense:op_kc")) == 0


def test_compute_embeddings_operator_writes_the_field(dataset):
    run("compute_embeddings", dataset, split="train", teacher_epochs=1, delegate=False)
    assert len(dataset.match_tags("train").exists("condense_embedding")) == 200


def test_select_form_bounds_ipc_by_the_smallest_class_and_flags_clashes(dataset):
    properties = form("select_coreset", dataset, split="train", method="herding", ipc=50)
    assert properties["ipc"].type.max == 20 and properties["ipc"].invalid
    assert "label_field" in properties and properties["label_field"].type.values == ["ground_truth"]
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


def test_long_operators_default_to_delegation(dataset):
    assert foo.get_operator(f"{PLUGIN}/evaluate_condensed").config.default_choice_to_delegated
    queued = foo.execute_operator(
        f"{PLUGIN}/select_coreset",
        ctx={"dataset": dataset, "view": dataset.view(), "params": {"method": "random", "ipc": 1, "run_key": "later", "delegate": True}},
    )
    assert queued.delegated
    assert fc.list_runs(dataset) == []  # queued, not yet run


def test_dc3_then_compensate_then_soft_evaluation_through_operators(dataset):
    run("select_coreset", dataset, method="dc3", ipc=2, run_key="op_dc3", split="train", bins=2, teacher_epochs=1)
    assert len(dataset.match_tags("condense:op_dc3")) == 20
    out = run("compensate_colors", dataset, parent="op_dc3", backend="classical", combine_mode="grid", run_key="op_comp",
              delegate=False)
    assert out == {"run_key": "op_comp", "num_samples": 20}
    assert len(dataset.match_tags("synthetic")) == 20
    out = run("evaluate_condensed", dataset, run_key="op_comp", protocol="soft", epochs=1, num_models=1,
              teacher_epochs=1, eval_split="test", delegate=False)
    assert out["protocol"] == "soft"
    assert "soft" in fc.load_run(dataset, "op_comp").results["evaluation"]


def test_forms_show_method_and_backend_specific_parameters(dataset):
    dc3 = form("select_coreset", dataset, split="train", method="dc3")
    assert {"bins", "pca_dim", "gradient_model", "lambda_", "vae_model"} <= set(dc3)  # DC3 bins VAE latents by default
    assert dc3["gradient_model"].default == "imagenet_resnet18"
    assert "vae_model" not in form("select_coreset", dataset, split="train", method="dc3", model="convnet3")
    assert form("compensate_colors", dataset)["backend"].default == "diffusion"
    classical = form("compensate_colors", dataset, backend="classical")
    assert "steps" not in classical and "combine_mode" in classical
    diffusion = form("compensate_colors", dataset, backend="diffusion")
    assert {"model", "steps", "batch_size", "image_guidance"} <= set(diffusion)
    fc.select(dataset.match_tags("train"), method="random", ipc=1, run_key="r")
    assert "temperature" in form("evaluate_condensed", dataset, protocol="soft")
    assert "temperature" not in form("evaluate_condensed", dataset, protocol="hard")
