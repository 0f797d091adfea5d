"""Operator: select a coreset and record it as a condensation run."""

import fiftyone.operators.types as types

import fiftyone_condense as fc

from .common import (
    UNLABELED, CondenseOperator, budget_input, budget_values, declared_inputs, declared_values, execute_with_progress,
    image_dataset_input, label_field_input, label_field_value, reading_inputs, reading_values, run_key_input,
    split_input, split_of,
)

LONG_METHODS = ("dc3", "autopalette_init")  # these train networks or run a VAE: better delegated


class SelectCoreset(CondenseOperator):
    name = "select_coreset"
    label = "Condense: select coreset"

    def long_work(self, ctx) -> bool:
        return ctx.params.get("method") in LONG_METHODS

    def resolve_input(self, ctx):
        inputs = types.Object()
        if not image_dataset_input(ctx, inputs):
            return types.Property(inputs)
        label_field = label_field_input(ctx, inputs, unlabeled=True)
        split = split_input(ctx, inputs, "split", "train", "Source split", "Samples to select from")
        methods = [name for name, spec in fc.SELECTION_METHODS.items() if label_field != UNLABELED or not spec.needs_labels]
        method = ctx.params.get("method") if ctx.params.get("method") in methods else "random"
        inputs.enum("method", methods, default="random", label="Method",
                    description=fc.SELECTION_METHODS[method].description, view=types.DropdownView())
        budget = budget_input(ctx, inputs, label_field, split, "Images to keep")
        run_key = run_key_input(ctx, inputs, f"{method}_{budget}")
        declared_inputs(ctx, inputs, fc.method_parameters("selection", method))
        scores_input(ctx, inputs, method, run_key)
        reading_inputs(ctx, inputs)
        inputs.int("seed", default=0, label="Seed", description="Random seed for reproducible picks")
        return types.Property(inputs, view=types.View(label="Select coreset"))

    def execute(self, ctx):
        p = ctx.params
        method = p.get("method", "random")
        params = declared_values(ctx, fc.method_parameters("selection", method))

        def work(progress):
            return fc.select(split_of(ctx, p.get("split")), method=method, run_key=p.get("run_key"),
                             label_field=label_field_value(ctx), seed=int(p.get("seed", 0)),
                             scores_field=(p.get("scores_field") or True) if p.get("write_scores") else None,
                             overwrite=bool(p.get("overwrite", False)), progress=progress, **budget_values(ctx),
                             **reading_values(ctx), **params)

        return execute_with_progress(
            ctx, work, lambda record: f"Selected {len(record.results['selected_ids'])} samples as run {record.key!r}")


def scores_input(ctx, inputs, method: str, run_key: str) -> None:
    """Whether to write the method's per-sample scores to a field (for methods that have them)."""
    what = fc.SCORES.get(method)
    if what is None:
        return
    inputs.bool("write_scores", default=False, label="Write scores to a field",
                description=f"A float field to sort and filter by in the App: {what}")
    if ctx.params.get("write_scores"):
        inputs.str("scores_field", default=f"condense_scores_{run_key}", label="Scores field",
                   description="A new field (the default name follows the run when it is renamed; deleting the run "
                               "removes it)")
