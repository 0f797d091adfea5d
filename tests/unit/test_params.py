"""Method parameters are data: one declaration checks the SDK's **params and builds the forms."""

import pytest

import fiftyone_condense as fc
from fiftyone_condense.algorithms.params import Param, resolve

LAMBDA = Param("lambda_", float, 1.0, "trade-off", min=0.0)
VARIANT = Param("optimizer", str, "NaiveGreedy", "greedy variant", choices=("NaiveGreedy", "LazyGreedy"))
WEIGHTS = Param("weights", str, None, "checkpoint", optional=True, when={"model": "resnet18"})


def test_defaults_fill_what_is_not_given_and_values_are_converted():
    assert resolve("m", (LAMBDA, VARIANT, WEIGHTS), {}) == {"lambda_": 1.0, "optimizer": "NaiveGreedy", "weights": None}
    assert resolve("m", (LAMBDA,), {"lambda_": "2"}) == {"lambda_": 2.0}  # a form's text becomes the declared type
    assert resolve("m", (Param("steps", int, 1, ""),), {"steps": 3.0}) == {"steps": 3}


@pytest.mark.parametrize("given,message", [
    ({"lamda": 2}, "m has no parameter 'lamda'; its parameters are: lambda_, optimizer"),
    ({"lambda_": -1}, "lambda_=-1 is out of range: it must be at least 0.0"),
    ({"optimizer": "Greedy"}, "optimizer must be one of"),
    ({"lambda_": "much"}, "lambda_ must be float"),
])
def test_an_unknown_or_out_of_range_value_names_what_is_valid(given, message):
    with pytest.raises(fc.CondensationError, match=message):
        resolve("m", (LAMBDA, VARIANT), given)


def test_integers_are_not_silently_truncated_and_objects_pass_where_declared():
    with pytest.raises(fc.CondensationError, match="must be int"):
        resolve("m", (Param("steps", int, 1, ""),), {"steps": 2.5})
    model = object()
    assert resolve("m", (Param("model", str, "convnet3", "", choices=("convnet3",), objects=True),),
                   {"model": model}) == {"model": model}


def test_a_parameter_applies_only_when_its_condition_holds():
    assert WEIGHTS.applies({"model": "resnet18"}) and not WEIGHTS.applies({"model": "convnet3"})
    assert LAMBDA.applies({})


def test_every_method_declares_valid_defaults_once():
    for kind, methods in (("selection", fc.SELECTION_METHODS), ("distillation", ("dm", "ddm", "autopalette"))):
        for method in methods:
            declared = fc.method_parameters(kind, method)
            names = [p.name for p in declared]
            assert len(names) == len(set(names)), (method, names)
            defaults = {p.name: p.default for p in declared}
            assert resolve(method, declared, {k: v for k, v in defaults.items() if v is not None}) == defaults


def test_every_default_weight_is_the_authors():
    """The defaults a user gets are the published methods' as their authors' code runs them."""
    from fiftyone_condense.algorithms.color.diffusion import DiffusionSettings
    from fiftyone_condense.algorithms.distillation import settings_for
    from fiftyone_condense.algorithms.protocols import HardProtocol, SoftProtocol

    def values(settings, names):
        return {name: getattr(settings, name) for name in names}

    # DM (DatasetCondensation main_DM.py): 20k iterations, real batch 256, image SGD lr 1 momentum 0.5, Siamese DSA.
    assert values(settings_for("dm"), ("iterations", "batch_real", "momentum", "dsa", "siamese")) == dict(
        iterations=20000, batch_real=256, momentum=0.5, dsa=True, siamese=True)
    assert settings_for("dm").with_lr_img(10).lr_img == 1.0
    # Decomposed DM (DM_Style_matching README commands): style and diversity weights, k = 2, style loss never reset.
    assert values(settings_for("ddm"), ("moments_weight", "correlation_weight", "diversity_weight", "neighbours",
                                        "style_carry_over")) == dict(
        moments_weight=1e4, correlation_weight=1e4, diversity_weight=10.0, neighbours=2, style_carry_over=True)
    # AutoPalette (dm_quant.py argparse + its commands: lr_quant 0.05, conf_ratio 0, K = 64, colour losses 1/1/3).
    autopalette = settings_for("autopalette")
    assert values(autopalette, ("task", "num_colors", "budget", "palette_lr", "palette_momentum", "palette_weight_decay",
                                "confidence_weight", "max_color_weight", "balance_weight", "alignment_weight",
                                "colour_batch", "pixel_sample", "palette_warmup", "siamese")) == dict(
        task="dm", num_colors=64, budget="paper", palette_lr=0.05, palette_momentum=0.5, palette_weight_decay=5e-4,
        confidence_weight=0.0, max_color_weight=1.0, balance_weight=1.0, alignment_weight=3.0, colour_batch=64,
        pixel_sample=0.3, palette_warmup=0, siamese=False)
    assert autopalette.images_per_class(10) == 40 and autopalette.with_lr_img(200).lr_img == 10.0
    # DC3 (its selection: 10 bins, PCA 50, graph cut λ = 1; InstructPix2Pix at 100 steps, guidance 4 / 1.5).
    dc3 = {p.name: p.default for p in fc.method_parameters("selection", "dc3")}
    assert (dc3["bins"], dc3["pca_dim"], dc3["lambda_"], dc3["vae_size"]) == (10, 50, 1.0, 512)
    assert DiffusionSettings() == DiffusionSettings(model="timbrooks/instruct-pix2pix", steps=100, guidance=4.0,
                                                    image_guidance=1.5, edit_size=256, batch_size=8)
    # Protocols: DC/DSA/DM's evaluate_synset and RDED's validation.
    assert values(HardProtocol(), ("epochs", "num_models", "lr", "momentum", "weight_decay", "batch_size", "dsa")) == dict(
        epochs=1000, num_models=5, lr=0.01, momentum=0.9, weight_decay=5e-4, batch_size=256, dsa=True)
    assert values(SoftProtocol(), ("epochs", "lr", "weight_decay", "temperature", "cutmix_beta", "patch_factor")) == dict(
        epochs=300, lr=1e-3, weight_decay=0.01, temperature=20.0, cutmix_beta=1.0, patch_factor=2)
