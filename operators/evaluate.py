"""Operator: train fresh models on a run's condensed set and report test accuracy."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

import fiftyone_condense as fc

from .common import (
    execute_with_progress, image_dataset_input, reading_inputs, reading_values, run_choice_input, split_input,
)


class EvaluateCondensed(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="evaluate_condensed", label="Condense: evaluate condensed set", dynamic=True,
            execute_as_generator=True, allow_immediate_execution=True, allow_delegated_execution=True, default_choice_to_delegated=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        if not image_dataset_input(ctx, inputs) or run_choice_input(ctx, inputs, "Condensation run whose output to train on") is None:
            return types.Property(inputs)
        inputs.enum("protocol", ["hard", "soft"], default="hard", label="Protocol",
                    description="hard: DC/DSA/DM's evaluate_synset (SGD, DSA, lr ×0.1 at half); soft: RDED's (DC3's) teacher soft labels (KD, CutMix, AdamW)")
        if ctx.params.get("protocol") == "soft":
            inputs.float("temperature", default=20.0, min=0.1, label="KD temperature",
                         description="Softens teacher and student outputs (RDED with CutMix: 20)")
            inputs.enum("teacher_arch", ["convnet3", "resnet18"], default="convnet3", label="Teacher",
                        description="Network trained to convergence on the source split (cached) that gives the soft labels")
            inputs.int("teacher_epochs", default=50, min=1, label="Teacher epochs (at most)",
                       description="Training stops earlier when held-out accuracy converges")
        inputs.enum("arch", ["convnet3", "resnet18"], default="convnet3", label="Architecture",
                    description="Network trained from scratch on the condensed set")
        inputs.int("epochs", default=1000 if ctx.params.get("protocol", "hard") == "hard" else 300, min=1, label="Epochs",
                   description="Training epochs per model (hard protocol: 1000)")
        inputs.int("num_models", default=5, min=1, label="Models", description="Models trained; accuracy is mean ± std")
        split_input(ctx, inputs, "eval_split", "test", "Test split", "Samples (by tag) to measure accuracy on")
        inputs.bool("references", default=True, label="Random reference",
                    description="Also evaluate a random subset of the same size (cached)")
        inputs.bool("include_full", default=False, label="Full-split reference",
                    description="Also train on the whole source split (slow without a GPU; cached)")
        reading_inputs(ctx, inputs)
        return types.Property(inputs, view=types.View(label="Evaluate condensed set"))

    def execute(self, ctx):
        p = ctx.params

        def work(progress):
            return fc.evaluate(
                run_key=p["run_key"], dataset=ctx.dataset, protocol=p.get("protocol", "hard"),
                arch=p.get("arch", "convnet3"), epochs=int(p.get("epochs", 1000)), num_models=int(p.get("num_models", 5)),
                eval_split=p.get("eval_split", "test"), references=bool(p.get("references", True)),
                include_full=bool(p.get("include_full", False)), temperature=float(p.get("temperature", 20.0)),
                teacher_arch=p.get("teacher_arch", "convnet3"), teacher_epochs=int(p.get("teacher_epochs", 50)),
                progress=progress, **reading_values(ctx),
            )

        return execute_with_progress(ctx, work, lambda result: summary(p["run_key"], result))


def summary(run_key: str, result: dict) -> str:
    """One line for the App's notification: accuracy beside the random reference."""
    line = f"{run_key}: {100 * result['mean']:.1f} ± {100 * result['std']:.1f} % ({result['protocol']['name']})"
    if "random" in result:
        line += f", random subset of the same size {100 * result['random']['mean']:.1f} %"
    return line
