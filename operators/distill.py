"""Operator: distil synthetic images (DM, Decomposed DM, AutoPalette) and record the run."""

import fiftyone.operators.types as types

import fiftyone_condense as fc
from fiftyone_condense.apps.launch import default_processes, launch_command, run_launched

from .common import (
    CondenseOperator, budget_input, budget_values, declared_inputs, declared_values, execute_with_progress,
    image_dataset_input,
    label_field_input, reading_inputs, reading_values, run_key_input, split_input, split_of,
)
from .paths import output_dir_input, output_dir_value


def flag_budget(ctx, prop, label_field, split, ipc: int) -> None:
    """Flag an AutoPalette budget that needs more real images per class than the split has."""
    per_class = fc.api.images_per_class(ipc, "autopalette", ctx.params.get("budget") or "paper",
                                        int(ctx.params.get("num_colors") or 64))
    counts = split_of(ctx, split).count_values(f"{label_field}.label") if label_field else {}
    strict = (ctx.params.get("small_classes") or "error") == "error"
    if strict and counts and per_class > min(counts.values()) and ctx.params.get("init") != "noise":
        prop.invalid = True
        prop.error_message = f"{per_class} images per class needed; the smallest class has {min(counts.values())}"


class DistillDataset(CondenseOperator):
    name = "distill_dataset"
    label = "Condense: distil synthetic images"

    def must_schedule(self, ctx) -> bool:
        """A run on several processes is always scheduled (an executor launches it)."""
        return processes(ctx) > 1

    def resolve_input(self, ctx):
        inputs = types.Object()
        if not image_dataset_input(ctx, inputs):
            return types.Property(inputs)
        label_field = label_field_input(ctx, inputs)
        split = split_input(ctx, inputs, "split", "train", "Source split", "Real images the synthetic ones must match")
        method = ctx.params.get("method") or "dm"
        inputs.enum("method", list(fc.DISTILLATION_METHODS), default="dm", label="Method",
                    description=fc.DISTILLATION_METHODS[method].description, view=types.DropdownView())
        budget = budget_input(ctx, inputs, label_field, split, "Synthetic images")
        inits = list(fc.SELECTION_METHODS) + ["noise"] + fc.list_runs(ctx.dataset, kind="selection")
        default_init = "autopalette_init" if method == "autopalette" else "random"
        inputs.enum("init", inits, default=default_init, label="Initialisation",
                    description="Start from a selection method, an existing selection run, or noise")
        run_key_input(ctx, inputs, f"{method}_{budget}")
        output_dir_input(ctx, inputs)
        declared_inputs(ctx, inputs, fc.method_parameters("distillation", method))
        if method == "autopalette" and budget.startswith("ipc"):
            flag_budget(ctx, inputs.get_property("budget"), label_field, split, int(budget[3:]))
        reading_inputs(ctx, inputs)
        inputs.int("seed", default=0, label="Seed", description="Seed for networks, batches and augmentation")
        inputs.int("processes", default=default_processes(), min=1, label="Processes",
                   description="More than 1: the scheduled run starts torchrun with this many processes (one per "
                               "GPU), each distilling its share of the classes (default: $FIFTYONE_CONDENSE_NPROC)")
        return types.Property(inputs, view=types.View(label="Distil synthetic images"))

    def execute(self, ctx):
        p = ctx.params
        method = p.get("method", "dm")
        params = declared_values(ctx, fc.method_parameters("distillation", method))

        keywords = dict(method=method, init=p.get("init"), run_key=p.get("run_key"),
                        label_field=p.get("label_field", "ground_truth"), seed=int(p.get("seed", 0)),
                        overwrite=bool(p.get("overwrite", False)), output_dir=output_dir_value(ctx),
                        **budget_values(ctx), **reading_values(ctx), **params)

        def work(progress):
            if processes(ctx) == 1:
                return fc.distill(split_of(ctx, p.get("split")), progress=progress, **keywords)
            progress(0.0, f"distilling on {processes(ctx)} processes")
            summary = run_launched(launch_command(split_of(ctx, p.get("split")), "distill", processes(ctx), **keywords))
            ctx.dataset.reload()
            return fc.load_run(ctx.dataset, summary["run_key"])

        return execute_with_progress(
            ctx, work, lambda record: f"Distilled {record.results['num_samples']} images as run {record.key!r} "
                                      f"({record.results['bytes']} bytes)")


def processes(ctx) -> int:
    return max(1, int(ctx.params.get("processes") or default_processes()))
