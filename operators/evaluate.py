"""Operator: train fresh models on a run's condensed set and report test accuracy."""

import fiftyone.operators.types as types

import fiftyone_condense as fc

from .common import (
    CondenseOperator, declared_inputs, declared_values, execute_with_progress, image_dataset_input, reading_inputs,
    reading_values, run_choice_input, split_input,
)


class EvaluateCondensed(CondenseOperator):
    name = "evaluate_condensed"
    label = "Condense: evaluate condensed set"

    def resolve_input(self, ctx):
        inputs = types.Object()
        if not image_dataset_input(ctx, inputs) or run_choice_input(ctx, inputs, "Condensation run whose output to train on") is None:
            return types.Property(inputs)
        inputs.enum("protocol", list(fc.api.PROTOCOLS), default="hard", label="Protocol",
                    description="hard: DC/DSA/DM's evaluate_synset (SGD, DSA, lr ×0.1 at half); soft: RDED's (DC3's) "
                    "teacher soft labels (KD, CutMix, AdamW); autopalette: AutoPalette's dm_quant.py (the hard "
                    "schedule on expert networks' soft labels)")
        declared_inputs(ctx, inputs, fc.api.protocol_parameters(ctx.params.get("protocol") or "hard"))
        split_input(ctx, inputs, "eval_split", "test", "Test split", "Samples (by tag) to measure accuracy on")
        inputs.bool("references", default=True, label="Random reference",
                    description="Also evaluate a random subset of the same size (cached)")
        inputs.bool("include_full", default=False, label="Full-split reference",
                    description="Also train on the whole source split (slow without a GPU; cached)")
        inputs.bool("float_images", default=True, label="Train on stored float pixels",
                    description="DM / Decomposed DM runs keep each image's float pixels beside its 8-bit PNG; "
                                "off: train on the PNGs")
        reading_inputs(ctx, inputs)
        return types.Property(inputs, view=types.View(label="Evaluate condensed set"))

    def execute(self, ctx):
        p = ctx.params
        protocol = p.get("protocol", "hard")

        def work(progress):
            return fc.evaluate(
                run_key=p["run_key"], dataset=ctx.dataset, protocol=protocol, eval_split=p.get("eval_split", "test"),
                references=bool(p.get("references", True)), include_full=bool(p.get("include_full", False)),
                float_images=bool(p.get("float_images", True)),
                progress=progress, **declared_values(ctx, fc.api.protocol_parameters(protocol)), **reading_values(ctx),
            )

        return execute_with_progress(ctx, work, lambda result: summary(p["run_key"], result))


def summary(run_key: str, result: dict) -> str:
    """One line for the App's notification: accuracy beside the random reference."""
    line = f"{run_key}: {100 * result['mean']:.1f} ± {100 * result['std']:.1f} % ({result['protocol']['name']})"
    if "random" in result:
        line += f", random subset of the same size {100 * result['random']['mean']:.1f} %"
    return line
