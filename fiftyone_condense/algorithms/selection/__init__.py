"""Per-class coreset selection: algorithms on arrays, no FiftyOne.

Each method picks ``budget`` items of one class. Embedding-based methods work on the class's
Gram matrix (inner products of its embeddings), so feature and gradient embeddings, whose
Gram factorises cheaply, share one code path. :func:`select_per_class` runs a method over
every class.
"""

from . import coresets, dc3, submodular  # noqa: F401  (register the methods)
from .base import METHODS, SMALL_CLASSES, SelectionMethod, class_budgets, select_per_class, small_class_report
from .gram import feature_gram, gradient_embeddings, gradient_gram, similarity_from_gram

__all__ = [
    "METHODS",
    "SMALL_CLASSES",
    "SelectionMethod",
    "class_budgets",
    "feature_gram",
    "gradient_embeddings",
    "gradient_gram",
    "select_per_class",
    "similarity_from_gram",
    "small_class_report",
]
