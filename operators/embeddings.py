"""Operator: compute (or reuse) embeddings for a split."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

import fiftyone_condense as fc

from .common import (
    declared_inputs, declared_values, execute_with_progress, image_dataset_input, label_field_input, reading_inputs,
    reading_values, split_input, split_of,
)

# the embedding parameters the feature-based selection methods declare, minus the selection-only choice
PARAMS = [p for p in fc.method_parameters("selection", "herding") if p.name not in ("embedding", "gradient_loss")]


class ComputeEmbeddings(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="compute_embeddings", label="Condense: compute embeddings", dynamic=True,
            execute_as_generator=True, allow_immediate_execution=True, allow_delegated_execution=True, default_choice_to_delegated=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        if not image_dataset_input(ctx, inputs):
            return types.Property(inputs)
        inputs.md("Embeds images with a network trained on the split (cached), for selection methods.")
        label_field_input(ctx, inputs)
        split_input(ctx, inputs, "split", "train", "Split", "Samples to embed; the network is trained on them")
        declared_inputs(ctx, inputs, PARAMS)
        reading_inputs(ctx, inputs)
        inputs.bool("overwrite", default=False, label="Overwrite",
                    description="Recompute when the field holds this plugin's embeddings of another model "
                    "(a field the plugin did not write is never replaced)")
        return types.Property(inputs, view=types.View(label="Compute embeddings"))

    def execute(self, ctx):
        p = ctx.params

        def work(progress):
            return fc.compute_embeddings(split_of(ctx, p.get("split")), label_field=p.get("label_field", "ground_truth"),
                                         overwrite=bool(p.get("overwrite", False)), progress=progress,
                                         **declared_values(ctx, PARAMS), **reading_values(ctx))

        return execute_with_progress(ctx, work, lambda field: f"Embeddings stored in {field!r}")
