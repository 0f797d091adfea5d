"""What the operators share: their base class (config and the one rule for when to schedule), form
pieces (fields, splits, run keys, inputs built from the SDK's declared parameters) and progress that
streams to the App (immediate) or the runs list (delegated)."""

from __future__ import annotations

import os
import queue
import threading
from typing import Callable, Iterable, Optional

import fiftyone.operators as foo
import fiftyone.operators.types as types
from fiftyone.operators.executor import ExecutionOptions

import fiftyone_condense as fc
from fiftyone_condense.api import DEFAULT_LABEL_FIELD, Param, check_run_key, classification_fields, reading_parameters

from .paths import checked_path, flag_path

ALL_SAMPLES = "(current view)"
READING_PARAMS = tuple(p for p in reading_parameters() if p.form)  # declared once, on the SDK's Reading
SMALL_CLASSES_HELP = ("A class smaller than IPC: error (the papers' balanced protocol), keep_all (take the whole "
                      "class, recorded on the run) or drop (leave it out, recorded)")


class CondenseOperator(foo.Operator):
    """An operator of this plugin: its config, and the one rule for when it runs scheduled.

    Long work (:meth:`long_work`) defaults the App's Execute/Schedule choice to Schedule; work that
    only an executor can run (:meth:`must_schedule`) is always scheduled; ``delegable = False``
    (deletion, a quick database change) always runs now.
    """

    name: str = ""
    label: str = ""
    delegable: bool = True

    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name=self.name, label=self.label, dynamic=True, execute_as_generator=self.delegable,
            allow_immediate_execution=True, allow_delegated_execution=self.delegable,
            default_choice_to_delegated=self.delegable, resolve_execution_options_on_change=self.delegable)

    def long_work(self, ctx) -> bool:
        """Whether the work is long enough that scheduling it is the better default (trains networks)."""
        return True

    def must_schedule(self, ctx) -> bool:
        """Whether only a delegated executor can run it (it launches processes)."""
        return False

    def resolve_execution_options(self, ctx) -> ExecutionOptions:
        if not self.delegable:
            return ExecutionOptions(allow_immediate_execution=True, allow_delegated_execution=False)
        scheduled = self.must_schedule(ctx)
        return ExecutionOptions(allow_immediate_execution=not scheduled, allow_delegated_execution=True,
                                default_choice_to_delegated=scheduled or self.long_work(ctx))

    def resolve_delegation(self, ctx):
        return True if self.delegable and self.must_schedule(ctx) else None


# --------------------------------------------------------------------------- form pieces


def image_dataset_input(ctx, inputs) -> bool:
    """Refuse video, grouped and 3D datasets in the form itself; returns whether the dataset is usable."""
    media_type = ctx.dataset.media_type if ctx.dataset is not None else None
    if media_type == "image":
        return True
    prop = inputs.str("media_type", default=str(media_type), label="Media type",
                      description="fiftyone-condense works on image datasets only")
    prop.invalid, prop.error_message = True, f"This is a {media_type} dataset; condensation needs an image dataset"
    inputs.view("not_images", types.Error(label="Not an image dataset",
                                          description=f"This dataset's media type is {media_type!r}."))
    return False


UNLABELED = "(none: an unlabeled pool)"


def label_field_input(ctx, inputs, unlabeled: bool = False) -> str | None:
    """A choice of the dataset's Classification fields (and, ``unlabeled``, of none: the whole view
    as one pool); returns the chosen one, :data:`UNLABELED`, or None when there is nothing to choose."""
    fields = classification_fields(ctx.dataset) + [UNLABELED] * unlabeled
    if not fields:
        inputs.view("no_labels", types.Error(label="No Classification field", description="Condensation needs a fo.Classification label field."))
        return None
    default = DEFAULT_LABEL_FIELD if DEFAULT_LABEL_FIELD in fields else fields[0]
    inputs.enum("label_field", fields, default=default, label="Label field",
                description="Classification field holding each image's class" + (
                    "; none: select from the whole view by its embeddings (e.g. which images to label first)"
                    if unlabeled else ""), view=types.DropdownView())
    return ctx.params.get("label_field") or default


def label_field_value(ctx) -> str | None:
    """The SDK's ``label_field`` from the form (None: an unlabeled pool)."""
    chosen = ctx.params.get("label_field") or DEFAULT_LABEL_FIELD
    return None if chosen == UNLABELED else chosen


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
    """IPC, with what to do about classes smaller than it; an IPC above the smallest class is
    flagged as the user types unless small classes are kept whole or dropped. Returns the IPC in
    effect (typed or default), for defaults that depend on it such as the run key."""
    smallest = None
    if label_field:
        counts = split_of(ctx, split).count_values(f"{label_field}.label")
        smallest = min(counts.values()) if counts else 0
    default = min(10, smallest or 10)
    strict = (ctx.params.get("small_classes") or "error") == "error"
    prop = inputs.int("ipc", default=default, min=1, max=smallest if strict else None, label="Images per class (IPC)",
                      description=f"{what} per class (smallest class: {smallest})")
    inputs.enum("small_classes", ["error", "keep_all", "drop"], default="error", label="Classes smaller than IPC",
                description=SMALL_CLASSES_HELP, view=types.DropdownView())
    ipc = ctx.params.get("ipc") or default
    if strict and smallest is not None and ipc > smallest:
        prop.invalid, prop.error_message = True, f"The smallest class has {smallest} samples; or keep small classes whole"
    return ipc


BUDGET_MODES = {"ipc": "Images per class (the papers' IPC)", "fraction": "A fraction of the split",
                "count": "A number of images in all"}


def budget_input(ctx, inputs, label_field, split, what: str) -> str:
    """The budget: IPC (as :func:`ipc_input`), or a fraction or count of the split with its
    allocation across classes. Returns the budget's part of the default run key (``ipc10``, ...)."""
    modes = [m for m in BUDGET_MODES if m != "ipc" or label_field != UNLABELED]  # a pool has no classes
    mode = ctx.params.get("budget_mode") if ctx.params.get("budget_mode") in modes else modes[0]
    inputs.enum("budget_mode", modes, default=modes[0], label="Budget",
                description=" · ".join(f"{k}: {BUDGET_MODES[k]}" for k in modes), view=types.DropdownView())
    if mode == "ipc":
        return f"ipc{ipc_input(ctx, inputs, label_field, split, what)}"
    size = len(split_of(ctx, split))
    if mode == "fraction":
        inputs.float("fraction", default=0.1, min=0.0, max=1.0, label="Fraction of the split",
                     description=f"{what}: this share of the split's {size} images (at least one per class)")
    else:
        prop = inputs.int("count", default=min(100, size), min=1, max=size, label="Number of images",
                          description=f"{what} in all, out of {size} (at least one per class)")
        if (ctx.params.get("count") or 0) > size:
            prop.invalid, prop.error_message = True, f"The split has {size} images"
    if label_field != UNLABELED:
        inputs.enum("allocation", list(fc.api.ALLOCATIONS), default="proportional", label="Across classes",
                    description="proportional: keep the split's class distribution · balanced: the same number per "
                                "class (a small class gives what it cannot take to the others)",
                    view=types.DropdownView())
    budget = fc.api.budget_of(None, ctx.params.get("fraction", 0.1) if mode == "fraction" else None,
                              ctx.params.get("count") or min(100, size) if mode == "count" else None, None)
    return budget.key()


def budget_values(ctx) -> dict:
    """The SDK's budget keywords from the form."""
    p = ctx.params
    mode = p.get("budget_mode") or ("count" if p.get("label_field") == UNLABELED else "ipc")
    if mode == "ipc":
        return {"ipc": int(p.get("ipc", 10)), "small_classes": p.get("small_classes") or "error"}
    value = float(p.get("fraction", 0.1)) if mode == "fraction" else int(p.get("count", 100))
    return {mode: value, "allocation": p.get("allocation") or "proportional"}


def run_key_input(ctx, inputs, default: str) -> str:
    """A run key, flagged as the user types when it is not an identifier or already used."""
    run_key = ctx.params.get("run_key") or default
    prop = inputs.str("run_key", default=default, label="Run key",
                      description="Name of this run: tag condense:<key>, saved view condense-<key>")
    try:
        check_run_key(ctx.dataset, run_key, bool(ctx.params.get("overwrite", False)))
    except fc.CondensationError as error:  # the SDK's own check, so the form and the SDK agree
        prop.invalid, prop.error_message = True, str(error).replace("pass overwrite=True", "tick 'Overwrite'")
    inputs.bool("overwrite", default=False, label="Overwrite", description="Replace an existing run with this key")
    return run_key


def run_choice_input(ctx, inputs, description: str, kind: str | None = None) -> str | None:
    runs = fc.list_runs(ctx.dataset, kind=kind)
    if not runs:
        inputs.view("no_runs", types.Warning(label="No condensation runs", description="Run 'Select coreset' first."))
        return None
    inputs.enum("run_key", runs, default=runs[-1], required=True, label="Run", description=description,
                view=types.DropdownView())
    return ctx.params.get("run_key") or runs[-1]


def declared_inputs(ctx, inputs, declared: Iterable[Param], chosen: Optional[dict] = None) -> None:
    """One input per declared parameter that applies to the values chosen so far; a path outside the
    folders this server allows is flagged (:mod:`.paths`)."""
    for p in applicable(ctx, declared, chosen):
        common = {"label": p.label or p.name, "description": p.help}
        if p.choices is not None:
            inputs.enum(p.name, list(p.choices), default=p.default, view=types.DropdownView(), **common)
        elif p.type is bool:
            inputs.bool(p.name, default=p.default, **common)
        elif p.type in (int, float):
            adder = inputs.int if p.type is int else inputs.float
            adder(p.name, default=p.default, min=p.min, max=p.max, **common)
        else:
            prop = inputs.str(p.name, default=p.default, **common)
            if p.path:
                flag_path(ctx, prop, p.name, common["label"], hub=p.path == "hub")


def declared_values(ctx, declared: Iterable[Param], chosen: Optional[dict] = None) -> dict:
    """The form's values of the parameters that apply (absent ones take the SDK's same defaults); a
    path outside the folders this server allows is a :class:`CondensationError` (:mod:`.paths`)."""
    values = {}
    for p in applicable(ctx, declared, chosen):
        if ctx.params.get(p.name) in (None, ""):
            continue
        values[p.name] = checked_path(ctx, p.name, p.label or p.name, p.path == "hub") if p.path else ctx.params[p.name]
    return values


def reading_inputs(ctx, inputs) -> None:
    """The working format: size, channels and how images are resized (defaults from the images)."""
    declared_inputs(ctx, inputs, READING_PARAMS)


def reading_values(ctx) -> dict:
    """The form's working format, and the decoded-image cache: off when the run executes inside
    the App server (unless ``FIFTYONE_CONDENSE_CACHE_BYTES`` asks for one), the default in a
    delegated executor."""
    values = declared_values(ctx, READING_PARAMS)
    if not ctx.delegated and "FIFTYONE_CONDENSE_CACHE_BYTES" not in os.environ:
        values["cache_bytes"] = 0
    return values


def applicable(ctx, declared: Iterable[Param], chosen: Optional[dict] = None) -> list[Param]:
    """The declared parameters that apply to the values chosen so far (defaults where none is chosen;
    ``chosen``: the form's other choices that ``when`` conditions may name)."""
    declared = list(declared)
    values = {**(chosen or {}), **{p.name: ctx.params.get(p.name, p.default) for p in declared}}
    return [p for p in declared if p.applies(values)]


# --------------------------------------------------------------------------- execution


def execute_with_progress(ctx, work: Callable, summary: Callable[[object], str]):
    """Run ``work(progress)`` the way FiftyOne runs long operators.

    Delegated: report through ``ctx.set_progress`` (the runs list shows it) and return. Immediate:
    a generator that runs the work in a thread and yields the App's ``set_progress`` as it
    advances, then a notification and a dataset reload.
    """
    if ctx.delegated:
        result = work(lambda fraction, label: ctx.set_progress(progress=fraction, label=label))
        return {"message": summary(result)}
    return _streamed(ctx, work, summary)


def _streamed(ctx, work: Callable, summary: Callable[[object], str]):
    events: queue.Queue = queue.Queue()
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["result"] = work(lambda fraction, label: events.put((fraction, label)))
        except BaseException as error:  # re-raised in the operator's own thread below
            outcome["error"] = error
        finally:
            events.put(None)

    threading.Thread(target=target, daemon=True).start()
    while (event := events.get()) is not None:  # the SDK reports at most every half second per stage
        yield ctx.ops.set_progress(label=event[1], progress=event[0])
    if "error" in outcome:
        raise outcome["error"]
    yield ctx.ops.set_progress(label="done", progress=1.0)
    yield ctx.ops.notify(summary(outcome["result"]), variant="success")
    yield ctx.ops.reload_dataset()
