"""Paths from the App are confined: every file or folder an operator form takes must lie, resolved,
under the folders the deployment allows; the form flags any other and execution refuses it."""

import os
import shutil
import uuid
from pathlib import Path

import fiftyone as fo
import fiftyone.operators as foo
import pytest
from fiftyone import ViewField as F
from fiftyone.operators.executor import ExecutionError

import fiftyone_condense as fc
from fiftyone_condense.algorithms.cache import cache_dir
from fiftyone_condense.algorithms.testing import save_tiny_vae

PLUGIN = "@condense/fiftyone-condense"
OUTSIDE = "outside the folders this server allows"
VAE_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"
PIX2PIX_ID = "timbrooks/instruct-pix2pix"
CHEAP_DC3 = {"split": "train", "method": "dc3", "ipc": 1, "bins": 1, "teacher_epochs": 1, "gradient_model": "convnet3"}

# every path an operator form takes: (operator, the form's other values, input, whether a hub id is accepted)
PATH_INPUTS = {
    "distill output_dir": ("distill_dataset", {"split": "train", "method": "dm", "ipc": 1, "init": "noise",
                                               "iterations": 1, "batch_real": 8}, "output_dir", False),
    "compensate output_dir": ("compensate_colors", {"backend": "classical"}, "output_dir", False),
    "compensate model": ("compensate_colors", {"backend": "diffusion", "steps": 1, "edit_size": 32}, "model", True),
    "select weights": ("select_coreset", {"split": "train", "method": "herding", "ipc": 1, "model": "resnet18",
                                          "teacher_epochs": 1}, "weights", False),
    "embeddings weights": ("compute_embeddings", {"split": "train", "model": "resnet18", "teacher_epochs": 1},
                           "weights", False),
    "dc3 weights": ("select_coreset", CHEAP_DC3, "weights", False),
    "dc3 vae_model": ("select_coreset", {**CHEAP_DC3, "vae_size": 32}, "vae_model", True),
}


def media_root(dataset) -> Path:
    return Path(fc.api.media_root(dataset))


def two_per_class(dataset):
    """Two training images of each class: enough for the cheapest real runs."""
    train = dataset.match_tags("train")
    ids = [i for label in train.distinct("ground_truth.label")
           for i in train.match(F("ground_truth.label") == label).limit(2).values("id")]
    return dataset.select(ids)


@pytest.fixture
def outside(dataset, tmp_path):
    """(target, ways to name it): a folder outside every allowed root, named directly, by a ``..`` escape
    from the media root and through a symlink planted inside the media root; and /etc."""
    target = tmp_path / "outside"
    root = media_root(dataset)
    link = root / f"link-{uuid.uuid4().hex[:8]}"
    link.symlink_to(tmp_path, target_is_directory=True)
    yield target, ["/etc", str(target), os.path.join(root, os.path.relpath(target, root)), str(link / "outside")]
    link.unlink()


def execute(dataset, operator: str, view=None, **params):
    return foo.execute_operator(f"{PLUGIN}/{operator}",
                                ctx={"dataset": dataset, "view": view or dataset.view(), "params": params})


@pytest.mark.parametrize("case", list(PATH_INPUTS))
def test_a_path_outside_the_allowed_folders_is_flagged_in_the_form_and_refused_at_execute(case, dataset, outside,
                                                                                           form, snapshot):
    operator, params, name, _ = PATH_INPUTS[case]
    target, ways = outside
    before = snapshot(dataset)
    for way in ways:
        prop = form(operator, dataset, **params, **{name: way})[name]
        assert prop.invalid and OUTSIDE in prop.error_message and "FIFTYONE_CONDENSE_ALLOWED_ROOTS" in prop.error_message
        with pytest.raises(ExecutionError, match=OUTSIDE):  # a client that skips the form is refused too
            execute(dataset, operator, **params, **{name: way}, run_key="escaped")
        assert not target.exists(), way
    assert snapshot(dataset) == before


@pytest.mark.parametrize("case", list(PATH_INPUTS))
def test_paths_under_the_media_root_and_the_cache_folder_are_accepted_in_the_form(case, dataset, form):
    operator, params, name, hub = PATH_INPUTS[case]
    for path in (media_root(dataset) / "models" / "x", cache_dir() / "models" / "x"):
        assert not form(operator, dataset, **params, **{name: str(path)})[name].invalid
    hub_id = PIX2PIX_ID if name == "model" else VAE_ID
    assert form(operator, dataset, **params, **{name: hub_id})[name].invalid is not hub  # weights, folders: paths


def test_an_output_folder_under_the_media_root_or_the_cache_folder_is_written_to(dataset, run_operator):
    under_media = media_root(dataset) / f"app-output-{uuid.uuid4().hex[:8]}"
    try:
        run_operator("compensate_colors", dataset, view=dataset.match_tags("train").limit(4), backend="classical",
                     run_key="in_media", output_dir=str(under_media))
        assert len(list((under_media / "in_media").glob("*.png"))) == 4
    finally:
        fc.delete_run(dataset, "in_media")
        shutil.rmtree(under_media, ignore_errors=True)
    under_cache = cache_dir() / "app-output"
    run_operator("distill_dataset", dataset, view=two_per_class(dataset), **PATH_INPUTS["distill output_dir"][1],
                 run_key="in_cache",
                 output_dir=str(under_cache))
    assert len(list((under_cache / "in_cache").glob("*.png"))) == 10


def test_accepted_model_paths_and_hub_ids_reach_the_sdk(dataset, run_operator):
    vae = save_tiny_vae(cache_dir() / "models" / "tiny-vae")
    run_operator("select_coreset", dataset, view=two_per_class(dataset), **PATH_INPUTS["dc3 vae_model"][1],
                 vae_model=str(vae), run_key="vae")
    assert fc.load_run(dataset, "vae").config["fallbacks"] == {}  # the VAE under the cache folder was loaded
    run_operator("select_coreset", dataset, view=two_per_class(dataset), **PATH_INPUTS["dc3 vae_model"][1],
                 vae_model=VAE_ID, run_key="vae_hub")  # offline: the hub id is tried, then ConvNet-3 features
    assert fc.load_run(dataset, "vae_hub").config["params"]["vae_model"] == VAE_ID
    missing = str(cache_dir() / "models" / "no-resnet.pth")
    with pytest.raises(ExecutionError, match="Weights file .* does not exist") as refused:  # the SDK's own error
        execute(dataset, "select_coreset", **PATH_INPUTS["select weights"][1], weights=missing, run_key="w")
    assert OUTSIDE not in str(refused.value)
    with pytest.raises(ExecutionError, match="Cannot load the InstructPix2Pix pipeline") as refused:  # offline
        execute(dataset, "compensate_colors", view=dataset.limit(2), backend="diffusion", model=PIX2PIX_ID,
                run_key="hub")
    assert OUTSIDE not in str(refused.value)


def test_the_setting_sets_the_allowed_folders(dataset, tmp_path, monkeypatch, form, run_operator):
    allowed, also = tmp_path / "allowed", tmp_path / "also"
    monkeypatch.setenv("FIFTYONE_CONDENSE_ALLOWED_ROOTS", os.pathsep.join([str(allowed), str(also)]))
    for path in (allowed / "out", also):
        assert not form("compensate_colors", dataset, backend="classical", output_dir=str(path))["output_dir"].invalid
    replaced = form("compensate_colors", dataset, backend="classical", output_dir=str(media_root(dataset) / "out"))
    assert replaced["output_dir"].invalid and str(allowed) in replaced["output_dir"].error_message
    run_operator("compensate_colors", dataset, view=dataset.match_tags("train").limit(2), backend="classical",
                 run_key="widened", output_dir=str(allowed))
    assert len(list((allowed / "widened").glob("*.png"))) == 2


def test_the_sdk_is_not_confined(dataset, tmp_path):
    record = fc.compensate(dataset.match_tags("train").limit(2), backend="classical", run_key="sdk",
                           output_dir=str(tmp_path))
    assert len(list((tmp_path / "sdk").glob("*.png"))) == 2 and len(record.view) == 2


def test_a_hub_id_that_names_a_local_folder_is_a_path(dataset, tmp_path, monkeypatch, form):
    (tmp_path / "owner" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # "owner/name" now resolves to a folder outside the allowed ones
    assert form("select_coreset", dataset, **CHEAP_DC3, vae_model="owner/name")["vae_model"].invalid
    assert not form("select_coreset", dataset, **CHEAP_DC3, vae_model="owner/other")["vae_model"].invalid


def test_media_in_unrelated_folders_allow_only_the_cache_folder(tmp_path, form):
    spread = fo.Dataset()
    spread.add_samples([fo.Sample(filepath=str(tmp_path / "a.png"), ground_truth=fo.Classification(label="a")),
                        fo.Sample(filepath="/opt/b.png", ground_truth=fo.Classification(label="b"))])
    try:  # their common folder is the filesystem's root, which must not allow every path
        assert form("distill_dataset", spread, output_dir=str(tmp_path / "out"))["output_dir"].invalid
        assert not form("distill_dataset", spread, output_dir=str(cache_dir() / "out"))["output_dir"].invalid
    finally:
        spread.delete()
