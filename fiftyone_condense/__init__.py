"""fiftyone-condense: condense labeled image datasets inside FiftyOne.

    import fiftyone_condense as fc

    dataset = fc.datasets.load_fashion_mnist()
    train = dataset.match_tags("train")
    run = fc.select(train, method="graph_cut", ipc=10, run_key="gc10")
    fc.evaluate(run_key="gc10", dataset=dataset, epochs=300, num_models=3)
    fc.report(dataset, "condensation.html")   # every run in one self-contained HTML file

The layers are the folders: :mod:`.algorithms` (tensors only, no FiftyOne), :mod:`.bridge` (between
FiftyOne and tensors: views, run records, the journal, one module per capability), :mod:`.api` (the
SDK most of these names come from) and :mod:`.apps` (what sits above the SDK: panel reports, the HTML
report behind ``report``, demo, launcher).
The public names are imported on first use, so :mod:`.algorithms` imports and runs on a machine
with PyTorch alone, without FiftyOne, diffusers or submodlib.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute); attribute None: the module itself
_EXPORTS: dict[str, tuple[str, str | None]] = {
    "api": (".api", None),
    "datasets": (".bridge.datasets", None),
    **{name: (".api", name) for name in (
        "color_stats", "compensate", "compute_embeddings", "delete_run", "distill", "evaluate", "list_runs",
        "load_run", "method_parameters", "recover", "rename_run", "select", "SCORES",
    )},
    **{name: (".bridge.records", name) for name in (
        "CompensationRun", "CompensationRunConfig", "DistillationRun", "DistillationRunConfig", "SelectionRun",
        "SelectionRunConfig",
    )},
    "report": (".apps.html_report", "report"),
    "CondensationError": (".algorithms.errors", "CondensationError"),
    "SELECTION_METHODS": (".algorithms.selection", "METHODS"),
    "DISTILLATION_METHODS": (".algorithms.distillation", "METHODS"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import a public name's module when the name is first used (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, attribute = _EXPORTS[name]
    module = importlib.import_module(module_name, __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
