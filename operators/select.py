"""Operator: select a coreset and record it as a condensation run."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

import fiftyone_condense as fc
from fiftyone_condense.api import DEFAULT_VAE
from fiftyone_condense.selection.submodular import GREEDY_VARIANTS

from .common import (embeddings_inputs, execution_mode_input, finish, ipc_input, label_field_input, optional_str,
                     progress_reporter, run_key_input, split_input, split_of, wants_delegation)

METHOD_HELP = {name: spec.description for name, spec in fc.SELECTION_METHODS.items()}


def dc3_inputs(ctx, inputs) -> None:
    """DC3's encoder bins and gradient-embedding model."""
    inputs.enum("model", ["convnet3", "resnet18", "vae"], default="convnet3", label="Bin encoder",
                description="Features that K-means bins: trained ConvNet-3 / ResNet-18, or a diffusers VAE (DC3)")
    if ctx.params.get("model") == "vae":
        inputs.str("vae_model", default=DEFAULT_VAE, label="VAE weights",
                   description="Hub id (needs the local Hugging Face cache offline) or local AutoencoderKL directory")
        inputs.int("vae_size", default=512, min=8, label="VAE input size", description="Images are resized to this (DC3: 512)")
    inputs.int("bins", default=10, min=1, label="Bins (K)", description="K-means clusters per class; each gets IPC/K picks")
    inputs.int("pca_dim", default=50, min=1, label="PCA dimensions", description="Components kept before K-means")
    inputs.enum("gradient_model", ["convnet3", "resnet18"], default="convnet3", label="Gradient model",
                description="Network whose last-layer gradient embeddings GraphCut compares")
    inputs.str("embeddings_field", default="condense_embedding", label="Embeddings field",
               description="Sample field for the gradient model's features (reused when present)")
    inputs.int("teacher_epochs", default=2, min=1, label="Teacher epochs",
               description="Epochs to train the embedding networks on the split")


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
        elif fc.SELECTION_METHODS[method].needs_embeddings:
            embeddings_inputs(ctx, inputs)
            inputs.enum("embedding", ["features", "gradients"], default="features", label="Embedding",
                        description="Penultimate features, or last-layer gradient embeddings [g, e⊗g]")
        if method in ("graph_cut", "facility_location", "dc3"):
            inputs.enum("optimizer", list(GREEDY_VARIANTS), default="NaiveGreedy", label="Greedy variant",
                        description="submodlib optimiser used to maximise the function")
        if method in ("graph_cut", "dc3"):
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
            embeddings_field=p.get("embeddings_field") or "condense_embedding", model=p.get("model", "convnet3"),
            embedding=p.get("embedding"), weights=optional_str(p.get("weights")),
            teacher_epochs=int(p.get("teacher_epochs", 2)), lambda_=float(p.get("lambda_", 1.0)),
            optimizer=p.get("optimizer", "NaiveGreedy"), seed=int(p.get("seed", 0)),
            bins=int(p.get("bins", 10)), pca_dim=int(p.get("pca_dim", 50)),
            gradient_model=p.get("gradient_model", "convnet3"), vae_model=p.get("vae_model") or DEFAULT_VAE,
            vae_size=int(p.get("vae_size", 512)),
            overwrite=bool(p.get("overwrite", False)), progress=progress_reporter(ctx),
        )
        finish(ctx)
        return {"run_key": record.key, "num_selected": len(record.results["selected_ids"])}
