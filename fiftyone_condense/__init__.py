"""fiftyone-condense: condense labeled image datasets inside FiftyOne.

    import fiftyone_condense as fc

    dataset = fc.datasets.load_fashion_mnist()
    train = dataset.match_tags("train")
    run = fc.select(train, method="graph_cut", ipc=10, run_key="gc10")
    fc.evaluate(run_key="gc10", dataset=dataset, epochs=300, num_models=3)
"""

__version__ = "0.1.0"

from . import datasets  # noqa: E402
from .api import (  # noqa: E402
    color_stats, compensate, compute_embeddings, delete_run, distill, evaluate, list_runs, load_run,
    method_parameters, rename_run, select,
)
from .bridge.runs import (  # noqa: E402
    CompensationRun, CompensationRunConfig, DistillationRun, DistillationRunConfig, SelectionRun, SelectionRunConfig,
)
from .errors import CondensationError  # noqa: E402
from .selection import METHODS as SELECTION_METHODS  # noqa: E402

__all__ = [
    "CompensationRun",
    "CompensationRunConfig",
    "CondensationError",
    "DistillationRun",
    "DistillationRunConfig",
    "SELECTION_METHODS",
    "color_stats",
    "compensate",
    "compute_embeddings",
    "datasets",
    "delete_run",
    "distill",
    "evaluate",
    "list_runs",
    "load_run",
    "method_parameters",
    "rename_run",
    "select",
    "SelectionRun",
    "SelectionRunConfig",
]
