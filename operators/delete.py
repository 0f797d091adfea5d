"""Operator: delete a condensation run and everything it made."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

import fiftyone_condense as fc

from .common import run_choice_input


class DeleteCondensationRun(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="delete_condensation_run", label="Condense: delete run", dynamic=True,
            allow_immediate_execution=True, allow_delegated_execution=False,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        run_key = run_choice_input(ctx, inputs, "Run to delete")
        if run_key is not None:
            inputs.view("confirm_text", types.Warning(
                label=f"Delete run {run_key!r}?",
                description=f"Removes its tag condense:{run_key}, saved view condense-{run_key}, the samples and media files it "
                "made, and its record (as FiftyOne's own delete_run does).",
            ))
        return types.Property(inputs, view=types.View(label="Delete condensation run"))

    def execute(self, ctx):
        report = fc.delete_run(ctx.dataset, ctx.params["run_key"])
        ctx.ops.reload_dataset()
        return {"deleted": ctx.params["run_key"], "already_gone": report.missing}
