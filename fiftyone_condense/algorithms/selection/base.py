"""The per-class driver shared by every selection method."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..errors import CondensationError
from ..params import Param
from ..progress import ProgressFn, silent

# ``pick(n, budget, rng, **inputs, **params)`` returns ``budget`` local indices of one class of n.
Picker = Callable[..., np.ndarray]
# Per-class inputs a method may need: "gram" (inner products of the selection embeddings, dense),
# "gram_rows" (the same Gram, factored: rows on demand, for methods that read only rows) and
# "encoder" (encoder features, e.g. for DC3's bins). Each is passed to ``pick`` as ``gram`` / ``encoder``.
# ``score(picks, n, rng, **inputs, **params)`` returns one float per item of the class (NaN where the
# method has no value): the method's own quantity, given the picks ``pick`` returned (in their order)
# and a generator seeded as ``pick``'s was.
Scorer = Callable[..., np.ndarray]


@dataclass(frozen=True)
class SelectionMethod:
    """A registered method: its per-class ``pick``, the inputs it needs and its declared parameters."""

    name: str
    pick: Picker
    needs: tuple[str, ...]
    description: str
    params: tuple[Param, ...] = ()
    score: Optional[Scorer] = None
    score_help: str = ""  # what the score is, for the docs and forms
    needs_labels: bool = False  # picks per class from a model trained on the labels (else: any pool)

    @property
    def needs_embeddings(self) -> bool:
        return bool(self.needs)

    def pick_params(self, values: dict) -> dict:
        """The parameters ``pick`` itself takes (the rest say how its inputs are made)."""
        accepted = inspect.signature(self.pick).parameters
        return {name: value for name, value in values.items() if name in accepted}

    def require_scores(self) -> None:
        if self.score is None:
            raise CondensationError(f"Selection method {self.name!r} has no per-sample score to write; "
                                    f"methods with one: {sorted(name for name, m in METHODS.items() if m.score)}")


def embedding_params(model_default: str = "convnet3", teacher_epochs: int = 2, loss: str = "cross_entropy",
                     models: tuple[str, ...] = ("convnet3", "resnet18")) -> tuple[Param, ...]:
    """Parameters of methods that compare embeddings: which field, model, kind and training."""
    return (
        Param("embeddings_field", str, "condense_embedding", "Sample field of penultimate features: reused when it "
              "holds this model's embeddings; any existing embeddings field (e.g. from fiftyone.brain) is used as is",
              label="Embeddings field"),
        Param("model", str, model_default, "Network embedding the images: trained on the source (cached), "
              "or a torch / FiftyOne model object you already have", label="Embedding model", choices=models,
              objects=True),
        Param("embedding", str, "features", "Penultimate features, or last-layer gradient embeddings [g, e⊗g]",
              label="Embedding", choices=("features", "gradients")),
        Param("gradient_loss", str, loss, "Loss whose last-layer gradient embeds an image (gradients only)",
              label="Gradient loss", choices=("cross_entropy", "softmax_cross_entropy"),
              when={"embedding": "gradients"}),
        Param("weights", str, None, "Local torchvision ResNet-18 ImageNet checkpoint (linear probe fitted on the "
              "source) instead of training", label="ResNet-18 weights (optional)", optional=True,
              when={"model": "resnet18"}, path="local"),
        Param("teacher_epochs", int, teacher_epochs, "Epochs training the embedding network on the source",
              label="Teacher epochs", min=1),
    )


METHODS: dict[str, SelectionMethod] = {}


def register(method: SelectionMethod) -> SelectionMethod:
    METHODS[method.name] = method
    return method


SMALL_CLASSES = ("error", "keep_all", "drop")


def class_budgets(labels: np.ndarray, ipc: int, classes: list[str], small_classes: str = "error") -> np.ndarray:
    """Picks per class: ``ipc`` each; a class smaller than ``ipc`` is an error (the papers'
    balanced protocol), or with ``small_classes`` kept whole (``keep_all``) or left out (``drop``)."""
    if small_classes not in SMALL_CLASSES:
        raise CondensationError(f"small_classes must be one of {SMALL_CLASSES}, got {small_classes!r}")
    if ipc < 1:
        raise CondensationError(f"ipc must be at least 1, got {ipc}")
    counts = np.bincount(labels, minlength=len(classes))
    short = [c for c in range(len(classes)) if 0 < counts[c] < ipc]
    if short and small_classes == "error":
        described = ", ".join(f"{classes[c]!r} has {counts[c]}" for c in short)
        raise CondensationError(
            f"ipc={ipc} is larger than some classes: {described}. Choose ipc <= {int(counts[counts > 0].min())}, "
            "drop those classes from the view, or pass small_classes='keep_all' (take all of them) or 'drop'.")
    budgets = np.minimum(counts, ipc)
    if small_classes == "drop":
        budgets[short] = 0
    return budgets


def small_class_report(labels: np.ndarray, ipc: int, classes: list[str], small_classes: str) -> dict:
    """What a run did with classes smaller than ``ipc`` (recorded on the run)."""
    counts = np.bincount(labels, minlength=len(classes))
    short = {classes[c]: int(counts[c]) for c in range(len(classes)) if 0 < counts[c] < ipc}
    return {"policy": small_classes, **({"kept_all" if small_classes == "keep_all" else "dropped": short} if short else {})}


def select_per_class(
    method: str,
    labels: np.ndarray,
    ipc: int,
    inputs_of_class: Optional[Callable[[np.ndarray, tuple[str, ...]], dict]] = None,
    seed: int = 0,
    params: Optional[dict] = None,
    progress: ProgressFn = silent,
    budgets: Optional[np.ndarray] = None,
    scored: bool = False,
) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Indices (into ``labels``) of ``ipc`` picks per class (``budgets[c]`` when given: a class
    whose budget is its size is taken whole, one of budget 0 left out), class by class, in label
    order; and, ``scored``, the method's score of every item (NaN in classes taken whole or left out).

    ``inputs_of_class(indices, needs)`` returns the named inputs (see ``INPUTS``) for those
    samples; it is called once per class so only one class's n×n Gram is in memory at a
    time. ``params`` go to the method (for example ``lambda_`` and ``optimizer`` for ``graph_cut``).
    """
    spec = METHODS.get(method)
    if spec is None:
        raise CondensationError(f"Unknown selection method {method!r}; choose one of {sorted(METHODS)}")
    if spec.needs and inputs_of_class is None:
        raise CondensationError(f"Selection method {method!r} needs embeddings")
    if scored:
        spec.require_scores()
    present = np.unique(labels)
    picks, scores = [], np.full(len(labels), np.nan) if scored else None
    for step, label in enumerate(present):
        members = np.flatnonzero(labels == label)
        budget = ipc if budgets is None else int(budgets[label])
        if len(members) < budget:
            raise CondensationError(f"class {int(label)} has {len(members)} samples, fewer than ipc={ipc}")
        if budget == len(members) or budget == 0:
            picks.append(members[:budget])
            continue
        inputs = inputs_of_class(members, spec.needs) if spec.needs else {}
        local = np.asarray(spec.pick(len(members), budget, class_rng(seed, label), **inputs, **(params or {})),
                           dtype=np.int64)
        if len(local) != budget or len(set(local.tolist())) != budget:
            raise RuntimeError(f"{method} returned {len(local)} picks ({len(set(local.tolist()))} unique), expected {budget}")
        picks.append(members[local])
        if scored:
            scores[members] = spec.score(local, len(members), class_rng(seed, label), **inputs, **(params or {}))
        progress((step + 1) / len(present), f"class {step + 1}/{len(present)}")
    return np.concatenate(picks), scores


def class_rng(seed: int, label: int) -> np.random.Generator:
    """The generator a class's pick (and its score, which replays the pick's draws) starts from."""
    return np.random.default_rng([seed, int(label)])
