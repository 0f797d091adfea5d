"""Operator: distil synthetic images (DM, Decomposed DM, AutoPalette) and record the run."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

import fiftyone_condense as fc
from fiftyone_condense.bridge.runs import run_config

from .common import (execution_mode_input, finish, ipc_input, label_field_input, optional_int, progress_reporter,
                     run_key_input, split_input, split_of, wants_delegation)

METHODS = {
    "dm": "Distribution matching: class-mean embeddings of fresh random ConvNets",
    "ddm": "Decomposed DM: DM + feature-map style matching + intra-class diversity",
    "autopalette": "AutoPalette: DM/DDM through a palette network; images stored with K colours",
}


def flag_budget(ctx, prop, label_field, split, ipc: int) -> None:
    """Flag an AutoPalette budget that needs more real images per class than the split has."""
    per_class = fc.api.images_per_class(ipc, "autopalette", ctx.params.get("budget") or "paper",
                                        int(ctx.params.get("num_colors") or 64))
    counts = split_of(ctx, split).count_values(f"{label_field}.label") if label_field else {}
    if counts and per_class > min(counts.values()) and ctx.params.get("init") != "noise":
        prop.invalid = True
        prop.error_message = f"{per_class} images per class needed; the smallest class has {min(counts.values())}"


class DistillDataset(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="distill_dataset", label="Condense: distil synthetic images", dynamic=True,
            allow_immediate_execution=True, allow_delegated_execution=True, default_choice_to_delegated=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        label_field = label_field_input(ctx, inputs)
        split = split_input(ctx, inputs, "split", "train", "Source split", "Real images the synthetic ones must match")
        method = ctx.params.get("method") or "dm"
        inputs.enum("method", list(METHODS), default="dm", label="Method", description=METHODS[method],
                    view=types.DropdownView())
        ipc = ipc_input(ctx, inputs, label_field, split, "Synthetic images")
        selections = [k for k in fc.list_runs(ctx.dataset) if run_config(ctx.dataset, k).get("kind") == "selection"]
        inits = list(fc.SELECTION_METHODS) + ["noise"] + selections
        default_init = "autopalette_init" if method == "autopalette" else "random"
        inputs.enum("init", inits, default=default_init, label="Initialisation",
                    description="Start from a selection method, an existing selection run, or noise")
        run_key_input(ctx, inputs, f"{method}_ipc{ipc}")
        inputs.int("iterations", default=20000, min=0, label="Iterations", description="Optimisation steps (DM protocol: 20000)")
        inputs.int("batch_real", default=256, min=1, label="Real batch per class", description="Real images per class per step")
        inputs.float("lr_img", default=fc.api.default_lr_img(method, ipc), min=0.0, label="Image learning rate",
                     description="SGD step on pixels (momentum 0.5; AutoPalette's paper: 10 from IPC 50)")
        if method == "ddm" or (method == "autopalette" and ctx.params.get("task") == "ddm"):
            inputs.float("moments_weight", default=1e4, min=0.0, label="Moments weight", description="Channel mean/std matching (reference: 1e4)")
            inputs.float("correlation_weight", default=1e4, min=0.0, label="Correlation weight", description="Gram matching (reference: 1e4)")
            inputs.float("diversity_weight", default=10.0, min=0.0, label="Diversity weight", description="kNN intra-class KL (reference: 10)")
        if method == "autopalette":
            inputs.enum("task", ["dm", "ddm"], default="dm", label="Task loss", description="Distillation loss behind the palette")
            inputs.int("num_colors", default=64, min=2, max=256, label="Colours (K)", description="Colours per image")
            budget = inputs.enum("budget", ["paper", "bits", "count"], default="paper", label="Storage budget",
                                 description="Images per class: paper = IPC × 2^(8 − ceil(log2 K)) (the reference's), "
                                 "bits = IPC × 8 / ceil(log2 K) (the bytes of IPC 8-bit images), count = IPC")
            flag_budget(ctx, budget, label_field, split, ipc)
            inputs.int("teacher_epochs", default=50, min=1, label="Selection network epochs",
                       description="Colour-guided initialisation: epochs of ConvNet-3 on Median-Cut images")
            inputs.int("palette_warmup", default=0, min=0, label="Palette warm-up epochs",
                       description="Fit the palette network to the real images first (the reference's option; off for CIFAR-10)")
        inputs.int("checkpoint_every", default=500, min=1, label="Checkpoint every", description="Iterations between checkpoints (resume)")
        inputs.int("seed", default=0, label="Seed", description="Seed for networks, batches and augmentation")
        execution_mode_input(ctx, inputs, True)
        return types.Property(inputs, view=types.View(label="Distil synthetic images"))

    def resolve_delegation(self, ctx):
        return wants_delegation(ctx, True)

    def execute(self, ctx):
        p = ctx.params
        method = p.get("method", "dm")
        record = fc.distill(
            split_of(ctx, p.get("split")), method=method, ipc=int(p.get("ipc", 10)), init=p.get("init"),
            run_key=p.get("run_key"), label_field=p.get("label_field", "ground_truth"),
            iterations=int(p.get("iterations", 20000)), batch_real=int(p.get("batch_real", 256)),
            lr_img=float(p["lr_img"]) if p.get("lr_img") is not None else None, moments_weight=float(p.get("moments_weight", 1e4)),
            correlation_weight=float(p.get("correlation_weight", 1e4)), diversity_weight=float(p.get("diversity_weight", 10.0)),
            task=p.get("task", "dm"), num_colors=int(p.get("num_colors", 64)), budget=p.get("budget", "paper"),
            teacher_epochs=optional_int(p.get("teacher_epochs")), palette_warmup=int(p.get("palette_warmup", 0)),
            checkpoint_every=int(p.get("checkpoint_every", 500)), seed=int(p.get("seed", 0)),
            overwrite=bool(p.get("overwrite", False)), progress=progress_reporter(ctx),
        )
        finish(ctx)
        return {"run_key": record.key, "num_samples": record.results["num_samples"], "bytes": record.results["bytes"]}
