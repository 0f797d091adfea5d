"""Form pieces shared by the operators: fields, splits, run keys, execution mode, progress."""

from __future__ import annotations

import fiftyone.operators.types as types

import fiftyone_condense as fc
from fiftyone_condense.bridge.views import DEFAULT_EMBEDDINGS_FIELD, DEFAULT_LABEL_FIELD, classification_fields

ALL_SAMPLES = "(current view)"


def label_field_input(ctx, inputs) -> str | None:
    """A choice of the dataset's Classification fields; returns the chosen one."""
    fields = classification_fields(ctx.dataset)
    if not fields:
        inputs.view("no_labels", types.Error(label="No Classification field", description="Condensation needs a fo.Classification label field."))
        return None
    default = DEFAULT_LABEL_FIELD if DEFAULT_LABEL_FIELD in fields else fields[0]
    inputs.enum("label_field", fields, default=default, label="Label field",
                description="Classification field holding each image's class",
                view=types.DropdownView())
    return ctx.params.get("label_field") or default


def split_input(ctx, inputs, name: str, default: str, label: str, description: str) -> str:
    """A choice of sample tag that defines a split (or the whole current view)."""
    tags = sorted(ctx.dataset.distinct("tags"))
    tags = [t for t in tags if not t.startswith("condense:")]
    choices = tags + [ALL_SAMPLES]
    chosen_default = default if default in tags else ALL_SAMPLES
    inputs.enum(name, choices, default=chosen_default, label=label, description=description, view=types.DropdownView())
    return ctx.params.get(name) or chosen_default


def split_of(ctx, tag: str | None):
    """The current view restricted to a split tag."""
    return ctx.view if not tag or tag == ALL_SAMPLES else ctx.view.match_tags(tag)


def ipc_input(ctx, inputs, label_field, split, what: str) -> int:
    """IPC bounded by the split's smallest class, flagged as the user types; returns the IPC in
    effect (typed or default), for defaults that depend on it such as the run key."""
    smallest = None
    if label_field:
        counts = split_of(ctx, split).count_values(f"{label_field}.label")
        smallest = min(counts.values()) if counts else 0
    default = min(10, smallest or 10)
    prop = inputs.int("ipc", default=default, min=1, max=smallest, label="Images per class (IPC)",
                      description=f"{what} per class (smallest class: {smallest})")
    ipc = ctx.params.get("ipc") or default
    if smallest is not None and ipc > smallest:
        prop.invalid, prop.error_message = True, f"The smallest class has {smallest} samples"
    return ipc


def embeddings_inputs(ctx, inputs) -> None:
    inputs.str("embeddings_field", default=DEFAULT_EMBEDDINGS_FIELD, label="Embeddings field",
               description="Sample field for penultimate features (reused when present)")
    inputs.enum("model", ["convnet3", "resnet18"], default="convnet3", label="Embedding model",
                description="Network trained on the split (cached) whose features embed the images")
    inputs.str("weights", required=False, label="ResNet-18 weights (optional)",
               description="Local torchvision ImageNet checkpoint; empty trains ResNet-18 on the split instead")
    inputs.int("teacher_epochs", default=2, min=1, label="Teacher epochs",
               description="Epochs to train the embedding network on the split")


def run_key_input(ctx, inputs, default: str) -> str:
    """A run key, flagged as the user types when it is not an identifier or already used."""
    run_key = ctx.params.get("run_key") or default
    prop = inputs.str("run_key", default=default, label="Run key",
                      description="Name of this run: tag condense:<key>, saved view condense-<key>")
    if not run_key.isidentifier():
        prop.invalid, prop.error_message = True, "Use letters, digits and underscores only"
    elif run_key in ctx.dataset.list_runs() and not ctx.params.get("overwrite", False):
        prop.invalid, prop.error_message = True, f"Run {run_key!r} exists; tick 'Overwrite' to replace it"
    inputs.bool("overwrite", default=False, label="Overwrite", description="Replace an existing run with this key")
    return run_key


def run_choice_input(ctx, inputs, description: str) -> str | None:
    runs = fc.list_runs(ctx.dataset)
    if not runs:
        inputs.view("no_runs", types.Warning(label="No condensation runs", description="Run 'Select coreset' first."))
        return None
    inputs.enum("run_key", runs, default=runs[-1], required=True, label="Run", description=description,
                view=types.DropdownView())
    return ctx.params.get("run_key") or runs[-1]


def execution_mode_input(ctx, inputs, delegate_by_default: bool) -> None:
    """Let the user choose to run now or queue as a delegated operation."""
    inputs.bool("delegate", default=delegate_by_default, label="Delegate",
                description="Queue this as a background (delegated) operation instead of running it now",
                view=types.CheckboxView())


def wants_delegation(ctx, delegate_by_default: bool) -> bool:
    return bool(ctx.params.get("delegate", delegate_by_default))


def progress_reporter(ctx):
    """Forward SDK progress to the App (delegated runs show it in the runs list)."""

    def report(fraction: float, message: str) -> None:
        ctx.set_progress(progress=fraction, label=message)

    return report


def finish(ctx) -> None:
    """Reload the App's dataset after an immediate run so new tags and views appear."""
    if not ctx.delegated:
        ctx.trigger("reload_dataset")


def optional_str(value):
    return value or None


def optional_int(value):
    """A form's int, or None (the SDK's per-method default) when absent."""
    return None if value in (None, "") else int(value)
