"""The Python SDK: compute embeddings, select coresets, evaluate, and manage runs.

Each function validates everything it can before computing, computes in memory, then writes
to the dataset inside a :class:`~fiftyone_condense.bridge.runs.Transaction`, so bad input
or an interruption leaves the dataset unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import fiftyone as fo
import numpy as np
import torch

from . import __version__
from .bridge import runs as run_store
from .bridge.views import (
    DEFAULT_EMBEDDINGS_FIELD,
    DEFAULT_EVAL_SPLIT,
    DEFAULT_LABEL_FIELD,
    DEFAULT_SOURCE_SPLIT,
    check_label_field,
    check_media,
    class_names,
    labels_of,
    load_images,
    require_samples,
    split_view,
)
from .cache import cached_path, digest, save_atomically
from .device import resolve_device
from .embeddings import (
    EMBEDDING_MODELS,
    Normalizer,
    PretrainedResNet18,
    TeacherConfig,
    embed_images,
    fit_linear_probe,
    load_teacher,
    teacher_checkpoint,
    train_teacher,
)
from .errors import CondensationError
from .evaluation import HardProtocol, evaluate_images
from .progress import Progress, ProgressFn
from .selection import METHODS, check_class_budget, feature_gram, gradient_gram, select_per_class
from .selection.coresets import pick_random

Collection = fo.core.collections.SampleCollection
EMBEDDING_KINDS = ("features", "gradients")


def _progress(progress: Optional[ProgressFn]) -> Progress:
    return Progress(progress)


def _logits_field(embeddings_field: str) -> str:
    return f"{embeddings_field}_logits"


# --------------------------------------------------------------------------- embeddings


@dataclass
class Embeddings:
    """Penultimate features and logits of a view's samples, plus where they came from."""

    features: np.ndarray
    logits: np.ndarray
    info: dict
    stored: bool  # already in the dataset's field


def _embedding_model(
    train_view: Collection, model: str, label_field: str, classes: list[str], weights: Optional[str],
    teacher_epochs: int, device: torch.device, seed: int, progress: Progress,
) -> tuple[torch.nn.Module, Normalizer, dict]:
    """A trained (cached) teacher, or pretrained ResNet-18 weights with a linear probe."""
    if model not in EMBEDDING_MODELS:
        raise CondensationError(f"Unknown embedding model {model!r}; choose one of {EMBEDDING_MODELS}")
    train = load_images(train_view, label_field, classes, progress.stage("loading source images", 0.0, 0.1))
    if weights is not None:
        if model != "resnet18":
            raise CondensationError("weights= applies to model='resnet18' only")
        if not Path(weights).is_file():
            raise CondensationError(f"Weights file {weights!r} does not exist")
        net = PretrainedResNet18(weights, len(classes))
        normalizer = Normalizer.identity(train.images.shape[1])
        features, _ = embed_images(net, normalizer, train.floats(), device, progress=progress.stage("probe features", 0.1, 0.4))
        fit_linear_probe(net.classifier, features, train.labels, seed=seed)
        return net, normalizer, {"model": model, "weights": str(weights)}
    config = TeacherConfig(arch=model, epochs=teacher_epochs)
    meta = {
        "dataset": train_view._dataset.name, "label_field": label_field, "classes": classes,
        "channels": int(train.images.shape[1]), "num_classes": len(classes),
        "image_size": list(train.images.shape[-2:]), "train_ids": digest(sorted(train.ids)), "seed": seed,
    }
    path = cached_path("teachers", {"config": config.__dict__, **meta})
    if path.is_file():
        net, normalizer = load_teacher(torch.load(path, map_location="cpu", weights_only=False))
    else:
        net, normalizer = train_teacher(
            train.floats(), train.labels, len(classes), config, device, seed, progress.stage(f"training {model} teacher", 0.1, 0.4)
        )
        save_atomically(teacher_checkpoint(net, normalizer, config, meta), path)
    return net, normalizer, {"model": model, "teacher_epochs": teacher_epochs, "teacher": str(path)}


def _embeddings(
    view: Collection, embeddings_field: str, label_field: str, classes: list[str], model: str,
    train_view: Optional[Collection], weights: Optional[str], teacher_epochs: int,
    device: torch.device, seed: int, overwrite: bool, progress: Progress,
) -> Embeddings:
    """Reuse the field when every sample has it, else compute (without writing)."""
    dataset = view._dataset
    logits_field = _logits_field(embeddings_field)
    if not overwrite and dataset.has_sample_field(embeddings_field) and dataset.has_sample_field(logits_field):
        if len(view.exists(embeddings_field, False)) == 0 and len(view.exists(logits_field, False)) == 0:
            info = dict(dataset.get_field(embeddings_field).info or {})
            return Embeddings(np.stack(view.values(embeddings_field)), np.stack(view.values(logits_field)), info, True)
    net, normalizer, info = _embedding_model(
        train_view if train_view is not None else view, model, label_field, classes, weights,
        teacher_epochs, device, seed, progress,
    )
    images = load_images(view, label_field, classes, progress.stage("loading images", 0.4, 0.5))
    features, logits = embed_images(net, normalizer, images.floats(), device, progress=progress.stage("embedding", 0.5, 0.95))
    return Embeddings(features.numpy(), logits.numpy(), {**info, "classes": classes}, False)


def _write_embeddings(transaction: run_store.Transaction, view: Collection, field: str, embeddings: Embeddings) -> None:
    if embeddings.stored:
        return
    transaction.set_field(view, field, list(embeddings.features.astype(np.float32)), embeddings.info)
    transaction.set_field(view, _logits_field(field), list(embeddings.logits.astype(np.float32)), embeddings.info)


def compute_embeddings(
    view: Collection,
    model: str = "convnet3",
    embeddings_field: str = DEFAULT_EMBEDDINGS_FIELD,
    label_field: str = DEFAULT_LABEL_FIELD,
    train_view: Optional[Collection] = None,
    weights: Optional[str] = None,
    teacher_epochs: int = 2,
    device: str = "auto",
    seed: int = 0,
    overwrite: bool = False,
    progress: Optional[ProgressFn] = None,
) -> str:
    """Store penultimate features (``embeddings_field``) and logits (``<field>_logits``).

    ``model`` is ``convnet3`` or ``resnet18``: a teacher trained on ``train_view`` (default:
    the view itself; cached so it trains once per dataset, split and settings), or with
    ``weights=`` a local torchvision ResNet-18 ImageNet checkpoint with a linear probe fitted
    on ``train_view``. Features and logits together give gradient embeddings on demand.
    Existing embeddings are kept unless ``overwrite=True``. Returns the field name.
    """
    require_samples(view)
    check_label_field(view, label_field)
    classes = class_names(view, label_field)
    check_media(view.values("filepath"))
    reporter = _progress(progress)
    embeddings = _embeddings(
        view, embeddings_field, label_field, classes, model, train_view, weights, teacher_epochs,
        resolve_device(device), seed, overwrite, reporter,
    )
    with run_store.Transaction(view._dataset) as transaction:
        _write_embeddings(transaction, view, embeddings_field, embeddings)
    reporter.stage("done", 0.95, 1.0)(1.0)
    return embeddings_field


# --------------------------------------------------------------------------- selection


def select(
    view: Collection,
    method: str = "random",
    ipc: int = 10,
    run_key: Optional[str] = None,
    label_field: str = DEFAULT_LABEL_FIELD,
    embeddings_field: str = DEFAULT_EMBEDDINGS_FIELD,
    model: str = "convnet3",
    embedding: str = "features",
    weights: Optional[str] = None,
    teacher_epochs: int = 2,
    lambda_: float = 1.0,
    optimizer: str = "NaiveGreedy",
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    progress: Optional[ProgressFn] = None,
) -> run_store.RunRecord:
    """Select ``ipc`` real samples per class from ``view`` and record them as run ``run_key``.

    Methods: ``random``, ``herding``, ``k_center``, ``graph_cut`` and ``facility_location``
    (submodlib, on a precomputed per-class kernel ``0.5 + 0.5·cos``). Embedding methods use
    ``embeddings_field`` (computed with ``model`` when absent) as ``features`` or as last-layer
    ``gradients``. The picks get the tag ``condense:<run_key>`` and the saved view
    ``condense-<run_key>`` holds them. Returns the run record.
    """
    dataset = view._dataset
    run_key = run_key or f"{method}_ipc{ipc}"
    require_samples(view)
    check_label_field(view, label_field)
    run_store.check_run_key(dataset, run_key, overwrite)
    if method not in METHODS:
        raise CondensationError(f"Unknown selection method {method!r}; choose one of {sorted(METHODS)}")
    if embedding not in EMBEDDING_KINDS:
        raise CondensationError(f"embedding must be one of {EMBEDDING_KINDS}, got {embedding!r}")
    classes = class_names(view, label_field)
    labels = labels_of(view, label_field, classes)
    check_class_budget(labels, ipc, classes)
    check_media(view.values("filepath"))
    reporter = _progress(progress)
    started = time.perf_counter()

    embeddings = None
    if METHODS[method].needs_embeddings:
        embeddings = _embeddings(
            view, embeddings_field, label_field, classes, model, None, weights, teacher_epochs,
            resolve_device(device), seed, False, reporter,
        )
    embedded = time.perf_counter()

    def gram_of_class(members: np.ndarray) -> np.ndarray:
        if embedding == "gradients":
            return gradient_gram(embeddings.features[members], embeddings.logits[members], labels[members])
        return feature_gram(embeddings.features[members])

    params = {"lambda_": lambda_, "optimizer": optimizer} if method == "graph_cut" else (
        {"optimizer": optimizer} if method == "facility_location" else {}
    )
    picks = select_per_class(
        method, labels, ipc, gram_of_class if embeddings is not None else None, seed, params,
        reporter.stage(f"selecting ({method})", 0.95, 1.0),
    )
    ids = view.values("id")
    selected_ids = [ids[i] for i in picks]
    finished = time.perf_counter()

    config = {
        "method": method, "kind": "selection", "ipc": ipc, "label_field": label_field,
        "embeddings_field": embeddings_field if embeddings is not None else None,
        "model": model if embeddings is not None else None, "embedding": embedding if embeddings is not None else None,
        "params": params, "seed": seed, "classes": classes, "versions": _versions(),
    }
    results = {
        "selected_ids": selected_ids,
        "timings": {"embeddings_s": embedded - started, "selection_s": finished - embedded, "total_s": finished - started},
        "num_samples": len(selected_ids),
        "evaluation": {},
    }
    with run_store.Transaction(dataset) as transaction:
        if run_key in run_store.list_runs(dataset):
            transaction.delete_run(run_key)
        if embeddings is not None:
            _write_embeddings(transaction, view, embeddings_field, embeddings)
        transaction.register(view, run_key, config, results)
        transaction.tag(selected_ids, run_store.run_tag(run_key))
        transaction.save_view(run_store.saved_view_name(run_key), dataset.match_tags(run_store.run_tag(run_key)))
    return run_store.load_run(dataset, run_key)


def _versions() -> dict:
    import fiftyone
    import submodlib  # noqa: F401
    import torchvision

    return {"fiftyone_condense": __version__, "fiftyone": fiftyone.__version__, "torch": torch.__version__,
            "torchvision": torchvision.__version__}


# --------------------------------------------------------------------------- evaluation


def _protocol(protocol: str, arch: str, epochs: int, num_models: int) -> HardProtocol:
    if protocol != "hard":
        raise CondensationError(f"Unknown protocol {protocol!r}; available: ['hard']")
    try:
        return HardProtocol(arch=arch, epochs=epochs, num_models=num_models)
    except ValueError as error:
        raise CondensationError(str(error)) from None


def _references(dataset: fo.Dataset) -> dict:
    return dict((dataset.info or {}).get("condense_references", {}))


def _store_reference(dataset: fo.Dataset, key: str, value: dict) -> None:
    dataset.reload()
    info = dict(dataset.info or {})
    references = dict(info.get("condense_references", {}))
    references[key] = value
    info["condense_references"] = references
    dataset.info = info
    dataset.save()


def _random_subset(labels: np.ndarray, counts: np.ndarray, seed: int) -> np.ndarray:
    """``counts[c]`` random indices of each class c, drawn exactly as the ``random`` method draws.

    So a ``random`` run with the same seed on the same source *is* the reference, and its
    evaluation is shared instead of repeated.
    """
    picks = []
    for label, count in enumerate(counts):
        if count:
            members = np.flatnonzero(labels == label)
            picks.append(members[pick_random(None, len(members), int(count), np.random.default_rng([seed, label]))])
    return np.concatenate(picks)


def evaluate(
    view: Optional[Collection] = None,
    run_key: Optional[str] = None,
    dataset: Optional[fo.Dataset] = None,
    protocol: str = "hard",
    arch: str = "convnet3",
    epochs: int = 1000,
    num_models: int = 5,
    eval_split: str = DEFAULT_EVAL_SPLIT,
    source_split: str = DEFAULT_SOURCE_SPLIT,
    label_field: Optional[str] = None,
    references: bool = True,
    include_full: bool = False,
    full_epochs: int = 30,
    seed: int = 0,
    device: str = "auto",
    progress: Optional[ProgressFn] = None,
) -> dict:
    """Train ``num_models`` fresh ``arch`` networks on a condensed set and test them.

    Pass any ``view`` of training images, or ``run_key`` (with ``dataset``, or a view of it)
    to evaluate that run's output and store the result on the run. The test set is the
    samples tagged ``eval_split``. With ``references`` the same protocol also runs on a
    random class-balanced subset of the same size from the source split (the run's source
    view, else the samples tagged ``source_split``), and with ``include_full`` on the whole
    source split (``full_epochs`` epochs); both are cached on the dataset. Returns a dict
    with ``mean``, ``std``, ``accuracies``, ``per_class`` and the references.
    """
    if view is None and dataset is None:
        raise CondensationError("Pass a view to evaluate, or run_key with dataset=")
    dataset = dataset if dataset is not None else view._dataset
    source = None
    if run_key is not None:
        record = run_store.load_run(dataset, run_key)
        view = record.view
        label_field = label_field or record.config.get("label_field")
        source = dataset.load_run_view(run_key)
    label_field = label_field or DEFAULT_LABEL_FIELD
    require_samples(view, "condensed set")
    check_label_field(view, label_field)
    settings = _protocol(protocol, arch, epochs, num_models)
    test_view = split_view(dataset, eval_split)
    check_label_field(test_view, label_field)
    overlap = set(view.values("id")) & set(test_view.values("id"))
    if overlap:
        raise CondensationError(f"{len(overlap)} samples of the condensed set are also tagged {eval_split!r}; evaluation would test on training images.")
    if references:
        source = source if source is not None else split_view(dataset, source_split)
    classes = class_names(dataset, label_field)
    torch_device = resolve_device(device)
    reporter = _progress(progress)

    train = load_images(view, label_field, classes, reporter.stage("loading condensed set", 0.0, 0.02))
    test = load_images(test_view, label_field, classes, reporter.stage("loading test split", 0.02, 0.08))
    if train.images.shape[1:] != test.images.shape[1:]:
        raise CondensationError(
            f"Condensed images are {tuple(train.images.shape[1:])} but test images are {tuple(test.images.shape[1:])}"
        )

    def evaluate_train(stage: ProgressFn) -> dict:
        return evaluate_images(
            train.floats(), train.labels, test.floats(), test.labels, len(classes), settings, torch_device, seed, stage
        ).as_dict()

    if not references:
        result = evaluate_train(reporter.stage("evaluating condensed set", 0.08, 0.99))
        output = {"protocol": settings.as_dict(), "eval_split": eval_split, "label_field": label_field, **result}
    else:
        counts = np.bincount(train.labels.numpy(), minlength=len(classes))
        source_labels = labels_of(source, label_field, classes)
        if np.any(np.bincount(source_labels, minlength=len(classes)) < counts):
            raise CondensationError("The source split has fewer samples of some class than the condensed set")
        source_ids = source.values("id")
        subset_ids = [source_ids[i] for i in _random_subset(source_labels, counts, seed)]
        common = {"dataset": dataset.name, "label_field": label_field, "protocol": settings.as_dict(), "seed": seed,
                  "source": digest(sorted(source_ids)), "test": digest(sorted(test.ids))}
        random_reference = _reference(
            dataset, {**common, "kind": "random", "counts": counts.tolist()},
            lambda: _evaluate_subset(source.select(subset_ids, ordered=True), label_field, classes, test, settings,
                                     torch_device, seed, reporter.stage("random reference", 0.08, 0.5)),
        )
        same_as_reference = sorted(subset_ids) == sorted(train.ids)
        result = (
            {k: random_reference[k] for k in ("accuracies", "per_class", "num_train", "seconds", "protocol", "mean", "std")}
            if same_as_reference else evaluate_train(reporter.stage("evaluating condensed set", 0.5, 0.9))
        )
        output = {"protocol": settings.as_dict(), "eval_split": eval_split, "label_field": label_field, **result,
                  "random": random_reference, "gain_over_random": result["mean"] - random_reference["mean"]}
        if include_full:
            full_settings = HardProtocol(arch=arch, epochs=full_epochs, num_models=num_models)
            output["full"] = _reference(
                dataset, {**common, "kind": "full", "protocol": full_settings.as_dict()},
                lambda: {**_evaluate_subset(source, label_field, classes, test, full_settings, torch_device, seed,
                                            reporter.stage("full-split reference", 0.9, 0.99)),
                         "source": common["source"]},
            )
        else:
            output["full"] = _cached_full(dataset, common, arch)
        if output.get("full"):
            output["fraction_of_full"] = output["mean"] / output["full"]["mean"]
    if run_key is not None:
        record = run_store.load_run(dataset, run_key)
        evaluations = dict(record.results.get("evaluation") or {})
        evaluations[protocol] = output
        run_store.save_results(dataset, run_key, {**record.results, "evaluation": evaluations})
    reporter.stage("done", 0.99, 1.0)(1.0)
    return output


def _reference(dataset: fo.Dataset, key_parts: dict, compute) -> dict:
    """A cached reference result, computed once per dataset, split, size and protocol."""
    key = digest(key_parts)
    cached = _references(dataset).get(key)
    if cached is not None:
        return cached
    value = {**compute(), "kind": key_parts["kind"]}
    _store_reference(dataset, key, value)
    return value


def _cached_full(dataset: fo.Dataset, common: dict, arch: str) -> Optional[dict]:
    """A full-split reference computed earlier for this protocol family, if there is one."""
    for value in _references(dataset).values():
        protocol = value.get("protocol", {})
        if value.get("kind") == "full" and protocol.get("arch") == arch and value.get("source") == common["source"]:
            return value
    return None


def _evaluate_subset(view, label_field, classes, test, settings, device, seed, progress) -> dict:
    """The protocol trained on ``view`` (a reference subset or the whole source split)."""
    images = load_images(view, label_field, classes)
    return evaluate_images(
        images.floats(), images.labels, test.floats(), test.labels, len(classes), settings, device, seed, progress
    ).as_dict()


# --------------------------------------------------------------------------- runs


def list_runs(dataset: fo.Dataset) -> list[str]:
    """Keys of the condensation runs on ``dataset``."""
    return run_store.list_runs(dataset)


def load_run(dataset: fo.Dataset, run_key: str) -> run_store.RunRecord:
    """A run's config, results (selected ids, timings, evaluations) and saved view."""
    return run_store.load_run(dataset, run_key)


def delete_run(dataset: fo.Dataset, run_key: str) -> None:
    """Remove a run: its tags, saved view and record. Samples themselves are untouched."""
    run_store.require_run(dataset, run_key)
    with run_store.Transaction(dataset) as transaction:
        transaction.delete_run(run_key)
