"""Operator: DC3 colour compensation of a run's (or the current view's) images."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

import fiftyone_condense as fc
from fiftyone_condense.algorithms.color import BACKENDS, COMBINE_MODES
from fiftyone_condense.algorithms.color.diffusion import DEFAULT_MODEL

from .common import (
    delegation_options, execute_with_progress, image_dataset_input, reading_inputs, reading_values, run_key_input,
)

CURRENT_VIEW = "(current view)"
DIFFUSION_HELP = (
    "The diffusion backend runs InstructPix2Pix (timbrooks/instruct-pix2pix, ~2.5 GB of weights in fp16; "
    "a GPU with 6 GB or more is advised, the CPU works but is slow). Offline, the weights must be in the local "
    "Hugging Face cache or a local directory given as 'Model'; without them the run stops with a clear error "
    "and nothing changes. The classical backend needs no weights."
)


class CompensateColors(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="compensate_colors", label="Condense: compensate colours (DC3)", dynamic=True,
            execute_as_generator=True, allow_immediate_execution=True, allow_delegated_execution=True,
            default_choice_to_delegated=True, resolve_execution_options_on_change=True,
        )

    def resolve_execution_options(self, ctx):
        return delegation_options((ctx.params.get("backend") or "diffusion") == "diffusion")

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
            inputs.str("model", default=DEFAULT_MODEL, label="Model", description="Hub id or local pipeline directory")
            inputs.int("steps", default=100, min=1, label="Steps", description="Denoising steps per edit (DC3: 100)")
            inputs.float("image_guidance", default=1.5, min=0.0, label="Image guidance",
                         description="How closely edits follow the input image")
            inputs.int("batch_size", default=8, min=1, label="Batch size", description="Images per pipeline call")
        inputs.int("edit_size", default=256, min=8, label="Edit size",
                   description="Images are edited and combined at this size (a multiple of 8; DC3: 256), then resized back")
        inputs.enum("combine_mode", list(COMBINE_MODES), default="gradient", label="Combine mode",
                    description="How warm and cold edits merge: centre split with a 20 px ramp, per pixel, 8 px cells, or (ours) a 2×2 mosaic")
        parent = ctx.params.get("parent") or choices[0]
        run_key_input(ctx, inputs, f"{parent if parent != CURRENT_VIEW else 'view'}_{backend}_{ctx.params.get('combine_mode') or 'gradient'}")
        reading_inputs(ctx, inputs)
        inputs.int("seed", default=0, label="Seed", description="Seed for styles, masks and diffusion noise")
        return types.Property(inputs, view=types.View(label="Compensate colours", description=DIFFUSION_HELP))

    def execute(self, ctx):
        p = ctx.params
        parent = p.get("parent") or CURRENT_VIEW
        view = ctx.view if parent == CURRENT_VIEW else ctx.dataset.load_saved_view(f"condense-{parent}")

        def work(progress):
            return fc.compensate(
                view, run_key=p.get("run_key"), backend=p.get("backend", "diffusion"),
                combine_mode=p.get("combine_mode", "gradient"), parent=None if parent == CURRENT_VIEW else parent,
                model=p.get("model") or DEFAULT_MODEL, steps=int(p.get("steps", 100)),
                image_guidance=float(p.get("image_guidance", 1.5)), edit_size=int(p.get("edit_size", 256)),
                batch_size=int(p.get("batch_size", 8)), seed=int(p.get("seed", 0)),
                overwrite=bool(p.get("overwrite", False)), progress=progress, **reading_values(ctx),
            )

        return execute_with_progress(
            ctx, work, lambda record: f"Compensated {record.results['num_samples']} images as run {record.key!r}")
