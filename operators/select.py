"""Operator: select a coreset and record it as a condensation run."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

import fiftyone_condense as fc
from fiftyone_condense.selection.dc3 import DEFAULT_VAE
from fiftyone_condense.selection.submodular import GREEDY_VARIANTS

from .common import (embeddings_inputs, execution_mode_input, finish, ipc_input, label_field_input, optional_int,
                     optional_str, progress_reporter, run_key_input, split_input, split_of, wants_delegation)

METHOD_HELP = {name: spec.description for name, spec in fc.SELECTION_METHODS.items()}


def dc3_inputs(ctx, inputs) -> None:
    """DC3's encoder bins and gradient-embedding model (defaults: the reference's)."""
    inputs.enum("model", ["vae", "convnet3", "resnet18"], default="vae", label="Bin encoder",
                description="Features that K-means bins: the Stable Diffusion VAE (DC3), or a trained ConvNet-3 / ResNet-18")
    if (ctx.params.get("model") or "vae") == "vae":
        inputs.str("vae_model", default=DEFAULT_VAE, label="VAE weights",
                   description="Hub id (needs the local Hugging Face cache offline) or local directory; without it, ConvNet-3 features")
        inputs.int("vae_size", default=512, min=8, label="VAE input size", description="Images are resized to this (DC3: 512)")
    inputs.int("bins", default=10, min=1, label="Bins (K)", description="K-means clusters per class; each gets max(1, IPC/K) picks")
    inputs.int("pca_dim", default=50, min=1, label="PCA dimensions", description="Components kept before K-means")
    inputs.enum("gradient_model", ["imagenet_resnet18", "convnet3", "resnet18"], default="imagenet_resnet18",
                label="Gradient model", description="Network whose last-layer gradient embeddings GraphCut compares "
                "(DC3: ImageNet ResNet-18 with an untrained head; a trained ConvNet-3 when its weights are missing)")
    inputs.str("weights", required=False, label="ImageNet ResNet-18 weights (optional)",
               description="Local torchvision checkpoint; empty looks in torch's hub cache")
    inputs.str("embeddings_field", default="condense_embedding", label="Embeddings field",
               description="Sample field for the gradient model's features (reused when present)")
    inputs.int("teacher_epochs", default=2, min=1, label="Teacher epochs",
               description="Epochs to train a ConvNet-3 / ResNet-18 on the split when one is used")


def autopalette_init_inputs(ctx, inputs) -> None:
    inputs.int("num_colors", default=64, min=2, max=256, label="Colours (K)", description="Median-Cut colours per image")
    inputs.int("teacher_epochs", default=50, min=1, label="Selection network epochs",
               description="Epochs to train ConvNet-3 on the Median-Cut images (AutoPalette: 50)")


class SelectCoreset(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="select_coreset", label="Condense: select coreset", dynamic=True,
            allow_immediate_execution=True, allow_delegated_execution=True, default_choice_to_delegated=False,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        label_field = label_field_input(ctx, inputs)
        split = split_input(ctx, inputs, "split", "train", "Source split", "Samples to select from")
        method = ctx.params.get("method") or "random"
        inputs.enum("method", list(METHOD_HELP), default="random", label="Method",
                    description=METHOD_HELP.get(method, ""), view=types.DropdownView())
        ipc = ipc_input(ctx, inputs, label_field, split, "Images to keep")
        run_key_input(ctx, inputs, f"{method}_ipc{ipc}")
        if method == "dc3":
            dc3_inputs(ctx, inputs)
        elif method == "autopalette_init":
            autopalette_init_inputs(ctx, inputs)
        elif fc.SELECTION_METHODS[method].needs_embeddings:
            embeddings_inputs(ctx, inputs)
            inputs.enum("embedding", ["features", "gradients"], default="features", label="Embedding",
                        description="Penultimate features, or last-layer gradient embeddings [g, e⊗g]")
        if method in ("graph_cut", "facility_location", "dc3", "autopalette_init"):
            inputs.enum("optimizer", list(GREEDY_VARIANTS), default="NaiveGreedy", label="Greedy variant",
                        description="submodlib optimiser used to maximise the function")
        if method in ("graph_cut", "dc3", "autopalette_init"):
            inputs.float("lambda_", default=1.0, min=0.0, label="λ (diversity)",
                         description="GraphCut trade-off: larger values favour diverse picks")
        inputs.int("seed", default=0, label="Seed", description="Random seed for reproducible picks")
        execution_mode_input(ctx, inputs, False)
        return types.Property(inputs, view=types.View(label="Select coreset"))

    def resolve_delegation(self, ctx):
        return wants_delegation(ctx, False)

    def execute(self, ctx):
        p = ctx.params
        method = p.get("method", "random")
        record = fc.select(
            split_of(ctx, p.get("split")), method=method, ipc=int(p.get("ipc", 10)), run_key=p.get("run_key"),
            label_field=p.get("label_field", "ground_truth"),
            embeddings_field=p.get("embeddings_field") or "condense_embedding", model=optional_str(p.get("model")),
            embedding=p.get("embedding"), weights=optional_str(p.get("weights")),
            teacher_epochs=optional_int(p.get("teacher_epochs")), lambda_=float(p.get("lambda_", 1.0)),
            optimizer=p.get("optimizer", "NaiveGreedy"), seed=int(p.get("seed", 0)),
            bins=int(p.get("bins", 10)), pca_dim=int(p.get("pca_dim", 50)),
            gradient_model=p.get("gradient_model", "imagenet_resnet18"), vae_model=p.get("vae_model") or DEFAULT_VAE,
            vae_size=int(p.get("vae_size", 512)), num_colors=int(p.get("num_colors", 64)),
            overwrite=bool(p.get("overwrite", False)), progress=progress_reporter(ctx),
        )
        finish(ctx)
        return {"run_key": record.key, "num_selected": len(record.results["selected_ids"])}
