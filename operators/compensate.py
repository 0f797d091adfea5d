"""Operator: DC3 colour compensation of a run's (or the current view's) images."""

import fiftyone.operators.types as types

import fiftyone_condense as fc
from fiftyone_condense.api import BACKENDS, COMBINE_MODES

from .common import (
    CondenseOperator, declared_inputs, declared_values, execute_with_progress, image_dataset_input, reading_inputs,
    reading_values, run_key_input,
)
from .paths import output_dir_input, output_dir_value

CURRENT_VIEW = "(current view)"
DIFFUSION_HELP = (
    "The diffusion backend runs InstructPix2Pix (timbrooks/instruct-pix2pix, ~2.5 GB of weights in fp16; "
    "a GPU with 6 GB or more is advised, the CPU works but is slow). Offline, the weights must be in the local "
    "Hugging Face cache or a local directory given as 'Model'; without them the run stops with a clear error "
    "and nothing changes. The classical backend needs no weights."
)


class CompensateColors(CondenseOperator):
    name = "compensate_colors"
    label = "Condense: compensate colours (DC3)"

    def long_work(self, ctx) -> bool:
        return (ctx.params.get("backend") or "diffusion") == "diffusion"

    def resolve_input(self, ctx):
        inputs = types.Object()
        if not image_dataset_input(ctx, inputs):
            return types.Property(inputs)
        runs = fc.list_runs(ctx.dataset, kind="selection")
        choices = runs + [CURRENT_VIEW]
        inputs.enum("parent", choices, default=choices[0], label="Images to compensate",
                    description="A selection run's saved view, or the current view", view=types.DropdownView())
        backend = ctx.params.get("backend") or "diffusion"
        inputs.enum("backend", list(BACKENDS), default="diffusion", label="Backend",
                    description="diffusion: InstructPix2Pix hue edits (DC3); classical: deterministic hue/temperature shift, no weights")
        if backend == "diffusion":
            inputs.view("diffusion_help", types.Notice(label=DIFFUSION_HELP))
        declared_inputs(ctx, inputs, fc.api.compensation_parameters(), {"backend": backend})
        inputs.enum("combine_mode", list(COMBINE_MODES), default="gradient", label="Combine mode",
                    description="How warm and cold edits merge: centre split with a 20 px ramp, per pixel, 8 px cells, or (ours) a 2×2 mosaic")
        parent = ctx.params.get("parent") or choices[0]
        run_key_input(ctx, inputs, f"{parent if parent != CURRENT_VIEW else 'view'}_{backend}_{ctx.params.get('combine_mode') or 'gradient'}")
        output_dir_input(ctx, inputs)
        reading_inputs(ctx, inputs)
        inputs.int("seed", default=0, label="Seed", description="Seed for styles, masks and diffusion noise")
        return types.Property(inputs, view=types.View(label="Compensate colours", description=DIFFUSION_HELP))

    def execute(self, ctx):
        p = ctx.params
        parent = p.get("parent") or CURRENT_VIEW
        view = ctx.view if parent == CURRENT_VIEW else ctx.dataset.load_saved_view(f"condense-{parent}")
        params = declared_values(ctx, fc.api.compensation_parameters(), {"backend": p.get("backend", "diffusion")})
        output_dir = output_dir_value(ctx)

        def work(progress):
            return fc.compensate(
                view, run_key=p.get("run_key"), backend=p.get("backend", "diffusion"),
                combine_mode=p.get("combine_mode", "gradient"), parent=None if parent == CURRENT_VIEW else parent,
                seed=int(p.get("seed", 0)), output_dir=output_dir, **params,
                overwrite=bool(p.get("overwrite", False)), progress=progress, **reading_values(ctx),
            )

        return execute_with_progress(
            ctx, work, lambda record: f"Compensated {record.results['num_samples']} images as run {record.key!r}")
