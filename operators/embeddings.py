"""Operator: compute (or reuse) embeddings for a split."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

import fiftyone_condense as fc

from .common import (embeddings_inputs, execution_mode_input, finish, label_field_input, optional_str,
                     progress_reporter, split_input, split_of, wants_delegation)


class ComputeEmbeddings(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="compute_embeddings", label="Condense: compute embeddings", dynamic=True,
            allow_immediate_execution=True, allow_delegated_execution=True, default_choice_to_delegated=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.md("Embeds images with a network trained on the split (cached), for selection methods.")
        label_field_input(ctx, inputs)
        split_input(ctx, inputs, "split", "train", "Split", "Samples to embed; the network is trained on them")
        embeddings_inputs(ctx, inputs)
        inputs.bool("overwrite", default=False, label="Overwrite", description="Recompute even if the field exists")
        execution_mode_input(ctx, inputs, True)
        return types.Property(inputs, view=types.View(label="Compute embeddings"))

    def resolve_delegation(self, ctx):
        return wants_delegation(ctx, True)

    def execute(self, ctx):
        p = ctx.params
        field = fc.compute_embeddings(
            split_of(ctx, p.get("split")), model=p.get("model", "convnet3"),
            embeddings_field=p.get("embeddings_field") or "condense_embedding",
            label_field=p.get("label_field", "ground_truth"), weights=optional_str(p.get("weights")),
            teacher_epochs=int(p.get("teacher_epochs", 2)), overwrite=bool(p.get("overwrite", False)),
            progress=progress_reporter(ctx),
        )
        finish(ctx)
        return {"embeddings_field": field}
