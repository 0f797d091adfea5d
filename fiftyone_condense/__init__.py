"""fiftyone-condense: condense labeled image datasets inside FiftyOne.

    import fiftyone_condense as fc

    dataset = fc.datasets.load_fashion_mnist()
    train = dataset.match_tags("train")
    run = fc.select(train, method="graph_cut", ipc=10, run_key="gc10")
    fc.evaluate(run_key="gc10", dataset=dataset, epochs=300, num_models=3)

The public names are imported on first use, so the tensor modules (``models``, ``augment``,
``distill``, ``training``, ``evaluation``) import and run on a machine with PyTorch alone,
without FiftyOne, diffusers or submodlib.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute); attribute None: the module itself
_EXPORTS: dict[str, tuple[str, str | None]] = {
    "api": (".api", None),
    "datasets": (".datasets", None),
    **{name: (".api", name) for name in (
        "color_stats", "compensate", "compute_embeddings", "delete_run", "distill", "evaluate", "list_runs",
        "load_run", "method_parameters", "recover", "rename_run", "select",
    )},
    **{name: (".bridge.runs", name) for name in (
        "CompensationRun", "CompensationRunConfig", "DistillationRun", "DistillationRunConfig", "SelectionRun",
        "SelectionRunConfig",
    )},
    "CondensationError": (".errors", "CondensationError"),
    "SELECTION_METHODS": (".selection", "METHODS"),
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


class _Package(types.ModuleType):
    """Keeps ``fc.distill`` the SDK function once the ``distill`` subpackage is imported (Python
    binds a subpackage to its parent's attribute of the same name; the subpackage stays
    importable as ``fiftyone_condense.distill``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name, ("", None))[1] is not None:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
