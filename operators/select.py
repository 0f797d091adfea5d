"""Operator: select a coreset and record it as a condensation run."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

import fiftyone_condense as fc

from .common import (
    declared_inputs, declared_values, delegation_options, execute_with_progress, image_dataset_input, ipc_input,
    label_field_input, reading_inputs, reading_values, run_key_input, split_input, split_of,
)

LONG_METHODS = ("dc3", "autopalette_init")  # these train networks or run a VAE: better delegated


class SelectCoreset(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="select_coreset", label="Condense: select coreset", dynamic=True, execute_as_generator=True,
            allow_immediate_execution=True, allow_delegated_execution=True, default_choice_to_delegated=False,
            resolve_execution_options_on_change=True,
        )

    def resolve_execution_options(self, ctx):
        return delegation_options(ctx.params.get("method") in LONG_METHODS)

    def resolve_input(self, ctx):
        inputs = types.Object()
        if not image_dataset_input(ctx, inputs):
            return types.Property(inputs)
        label_field = label_field_input(ctx, inputs)
        split = split_input(ctx, inputs, "split", "train", "Source split", "Samples to select from")
        method = ctx.params.get("method") or "random"
        inputs.enum("method", list(fc.SELECTION_METHODS), default="random", label="Method",
                    description=fc.SELECTION_METHODS[method].description, view=types.DropdownView())
        ipc = ipc_input(ctx, inputs, label_field, split, "Images to keep")
        run_key_input(ctx, inputs, f"{method}_ipc{ipc}")
        declared_inputs(ctx, inputs, fc.method_parameters("selection", method))
        reading_inputs(ctx, inputs)
        inputs.int("seed", default=0, label="Seed", description="Random seed for reproducible picks")
        return types.Property(inputs, view=types.View(label="Select coreset"))

    def execute(self, ctx):
        p = ctx.params
        method = p.get("method", "random")
        params = declared_values(ctx, fc.method_parameters("selection", method))

        def work(progress):
            return fc.select(split_of(ctx, p.get("split")), method=method, ipc=int(p.get("ipc", 10)),
                             run_key=p.get("run_key"), label_field=p.get("label_field", "ground_truth"),
                             seed=int(p.get("seed", 0)), overwrite=bool(p.get("overwrite", False)), progress=progress,
                             small_classes=p.get("small_classes") or "error", **reading_values(ctx),
                             **params)

        return execute_with_progress(
            ctx, work, lambda record: f"Selected {len(record.results['selected_ids'])} samples as run {record.key!r}")
