"""The Python SDK: compute embeddings, select coresets, evaluate, and manage runs.

Each function validates everything it can before computing, computes in memory, then writes
to the dataset inside a :class:`~fiftyone_condense.bridge.runs.Transaction`, so bad input
or an interruption leaves the dataset unchanged.
"""

from __future__ import annotations

import io
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import fiftyone as fo
import numpy as np
import torch
from PIL import Image

from . import __version__
from .bridge import runs as run_store
from .bridge.views import (
    DEFAULT_EMBEDDINGS_FIELD,
    ImageSet,
    DEFAULT_EVAL_SPLIT,
    DEFAULT_LABEL_FIELD,
    DEFAULT_SOURCE_SPLIT,
    check_label_field,
    check_media,
    class_names,
    labels_of,
    load_images,
    media_dir_beside,
    read_images,
    require_samples,
    split_view,
    write_pngs,
)
from .cache import cache_dir, cached_path, digest, save_atomically
from .color import BACKENDS, COMBINE_MODES, combine
from .color import classical as classical_backend
from .color import color_stats as image_color_stats
from .color import diffusion as diffusion_backend
from .device import resolve_device
from .embeddings import (
    EMBEDDING_MODELS,
    load_vae,
    vae_latents,
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
from .evaluation import PROTOCOLS, HardProtocol, Protocol, SoftProtocol, evaluate_images
from .progress import Progress, ProgressFn
from .selection import METHODS, check_class_budget, feature_gram, gradient_gram, select_per_class
from .selection.coresets import pick_random
from .distill import DistillSettings
from .distill import distill as distill_images
from .distill.palette import median_cut, palette_png

Collection = fo.core.collections.SampleCollection
EMBEDDING_KINDS = ("features", "gradients")
DC3_ENCODERS = ("convnet3", "resnet18", "vae")
DEFAULT_VAE = "stabilityai/sd-vae-ft-mse"


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
    embedding: Optional[str] = None,
    weights: Optional[str] = None,
    teacher_epochs: int = 2,
    lambda_: float = 1.0,
    optimizer: str = "NaiveGreedy",
    bins: int = 10,
    pca_dim: int = 50,
    gradient_model: str = "convnet3",
    vae_model: str = DEFAULT_VAE,
    vae_size: int = 512,
    num_colors: int = 64,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    progress: Optional[ProgressFn] = None,
) -> run_store.RunRecord:
    """Select ``ipc`` real samples per class from ``view`` and record them as run ``run_key``.

    Methods: ``random``, ``herding``, ``k_center``, ``graph_cut`` and ``facility_location``
    (submodlib, on a precomputed per-class kernel ``0.5 + 0.5·cos``) use ``embeddings_field``
    (computed with ``model`` when absent) as ``embedding="features"`` (default) or last-layer
    ``"gradients"``. ``dc3`` bins each class by K-means (``bins``) on PCA(``pca_dim``) of the
    encoder ``model`` (``convnet3``, ``resnet18`` or ``vae``: a diffusers AutoencoderKL,
    ``vae_model`` hub id or path, at ``vae_size`` px) and runs GraphCut (``lambda_``) on
    gradient embeddings of ``gradient_model`` inside each bin. ``autopalette_init`` quantises
    images to ``num_colors`` colours by Median Cut, embeds them with ``model`` and picks by
    GraphCut conditional gain (representative, unlike the picks so far). The picks get the tag
    ``condense:<run_key>`` and the saved view ``condense-<run_key>`` holds them.
    """
    dataset = view._dataset
    run_key = run_key or f"{method}_ipc{ipc}"
    require_samples(view)
    check_label_field(view, label_field)
    run_store.check_run_key(dataset, run_key, overwrite)
    plan = _plan_selection(
        view, method, ipc, label_field, embeddings_field=embeddings_field, model=model, embedding=embedding,
        weights=weights, teacher_epochs=teacher_epochs, lambda_=lambda_, optimizer=optimizer, bins=bins,
        pca_dim=pca_dim, gradient_model=gradient_model, vae_model=vae_model, vae_size=vae_size,
        num_colors=num_colors, seed=seed, device=device, progress=_progress(progress),
    )
    results = {"selected_ids": plan.ids, "timings": plan.timings, "num_samples": len(plan.ids), "evaluation": {}}
    with run_store.Transaction(dataset) as transaction:
        if run_key in run_store.list_runs(dataset):
            transaction.delete_run(run_key)
        for field, stored in plan.writes:
            _write_embeddings(transaction, view, field, stored)
        transaction.register(view, run_key, plan.config, results)
        transaction.tag(plan.ids, run_store.run_tag(run_key))
        transaction.save_view(run_store.saved_view_name(run_key), dataset.match_tags(run_store.run_tag(run_key)))
    return run_store.load_run(dataset, run_key)


@dataclass
class SelectionPlan:
    """A computed selection, not yet written: picked sample ids, config, timings, embeddings to store."""

    ids: list[str]
    config: dict
    timings: dict
    writes: list


def _plan_selection(
    view: Collection, method: str, ipc: int, label_field: str, *, embeddings_field: str = DEFAULT_EMBEDDINGS_FIELD,
    model: str = "convnet3", embedding: Optional[str] = None, weights: Optional[str] = None, teacher_epochs: int = 2,
    lambda_: float = 1.0, optimizer: str = "NaiveGreedy", bins: int = 10, pca_dim: int = 50,
    gradient_model: str = "convnet3", vae_model: str = DEFAULT_VAE, vae_size: int = 512, num_colors: int = 64,
    seed: int = 0, device: str = "auto", progress: Progress,
) -> SelectionPlan:
    """Validate, embed and select in memory; nothing is written."""
    if method not in METHODS:
        raise CondensationError(f"Unknown selection method {method!r}; choose one of {sorted(METHODS)}")
    embedding = embedding or ("gradients" if method in ("dc3", "autopalette_init") else "features")
    if embedding not in EMBEDDING_KINDS:
        raise CondensationError(f"embedding must be one of {EMBEDDING_KINDS}, got {embedding!r}")
    model = "convnet3" if model == "convnet" else model
    if method == "dc3" and model not in DC3_ENCODERS:
        raise CondensationError(f"dc3 encoder model must be one of {DC3_ENCODERS}, got {model!r}")
    classes = class_names(view, label_field)
    labels = labels_of(view, label_field, classes)
    check_class_budget(labels, ipc, classes)
    check_media(view.values("filepath"))
    started = time.perf_counter()
    torch_device = resolve_device(device)
    needs = METHODS[method].needs

    def embed(field: str, embedding_model: str, stage: tuple[float, float]) -> Embeddings:
        return _embeddings(view, field, label_field, classes, embedding_model, None, weights, teacher_epochs,
                           torch_device, seed, False, progress.sub(*stage))

    embeddings, encoder, writes = None, None, []
    if method == "autopalette_init":
        embeddings = _quantised_embeddings(view, label_field, classes, model, weights, teacher_epochs, num_colors,
                                           torch_device, seed, progress.sub(0.0, 0.9))
    elif "gram" in needs:
        embeddings = embed(embeddings_field, gradient_model if method == "dc3" else model, (0.0, 0.45))
        writes.append((embeddings_field, embeddings))
    if "encoder" in needs:
        if model == "vae":
            images = load_images(view, label_field, classes, progress.stage("loading images", 0.45, 0.5))
            encoder = vae_latents(load_vae(vae_model, torch_device), images.floats(), vae_size, torch_device,
                                  progress=progress.stage("VAE latents", 0.5, 0.9)).numpy()
        elif model == gradient_model and embeddings is not None:
            encoder = embeddings.features
        else:
            field = f"{embeddings_field}_{model}"
            encoder_embeddings = embed(field, model, (0.45, 0.9))
            writes.append((field, encoder_embeddings))
            encoder = encoder_embeddings.features
    embedded = time.perf_counter()

    def inputs_of_class(members: np.ndarray, wanted: tuple[str, ...]) -> dict:
        inputs = {}
        if "gram" in wanted:
            inputs["gram"] = (
                gradient_gram(embeddings.features[members], embeddings.logits[members], labels[members])
                if embedding == "gradients" else feature_gram(embeddings.features[members])
            )
        if "encoder" in wanted:
            inputs["encoder"] = encoder[members]
        return inputs

    params = {
        "graph_cut": {"lambda_": lambda_, "optimizer": optimizer},
        "autopalette_init": {"lambda_": lambda_, "optimizer": optimizer},
        "facility_location": {"optimizer": optimizer},
        "dc3": {"bins": bins, "pca_dim": pca_dim, "lambda_": lambda_, "optimizer": optimizer},
    }.get(method, {})
    picks = select_per_class(method, labels, ipc, inputs_of_class, seed, params,
                             progress.stage(f"selecting ({method})", 0.9, 1.0))
    ids = view.values("id")
    finished = time.perf_counter()
    extra_params = {
        **({"gradient_model": gradient_model} if method == "dc3" else {}),
        **({"vae_model": vae_model, "vae_size": vae_size} if method == "dc3" and model == "vae" else {}),
        **({"num_colors": num_colors} if method == "autopalette_init" else {}),
    }
    config = {
        "method": method, "kind": "selection", "ipc": ipc, "label_field": label_field,
        "embeddings_field": embeddings_field if writes else None,
        "model": model if needs else None, "embedding": embedding if embeddings is not None else None,
        "params": {**params, **extra_params}, "seed": seed, "classes": classes, "versions": _versions(),
    }
    timings = {"embeddings_s": embedded - started, "selection_s": finished - embedded, "total_s": finished - started}
    return SelectionPlan([ids[i] for i in picks], config, timings, [(f, e) for f, e in writes if not e.stored])


def _quantised_embeddings(view, label_field, classes, model, weights, teacher_epochs, num_colors, device, seed,
                          progress: Progress) -> Embeddings:
    """Embeddings of the view's images after Median-Cut quantisation (AutoPalette's initialisation)."""
    net, normalizer, info = _embedding_model(view, model, label_field, classes, weights, teacher_epochs, device, seed,
                                             progress.sub(0.0, 0.5))
    images = load_images(view, label_field, classes)
    quantised, _ = median_cut(images.floats(), num_colors)
    features, logits = embed_images(net, normalizer, quantised, device, progress=progress.stage("embedding quantised images", 0.5, 1.0))
    return Embeddings(features.numpy(), logits.numpy(), {**info, "median_cut_colors": num_colors}, True)


def _versions() -> dict:
    import fiftyone
    import submodlib  # noqa: F401
    import torchvision

    return {"fiftyone_condense": __version__, "fiftyone": fiftyone.__version__, "torch": torch.__version__,
            "torchvision": torchvision.__version__}


# --------------------------------------------------------------------------- evaluation


def _protocol(protocol: str, arch: str, epochs: int, num_models: int, **soft) -> Protocol:
    try:
        if protocol == "hard":
            return HardProtocol(arch=arch, epochs=epochs, num_models=num_models)
        if protocol == "soft":
            return SoftProtocol(arch=arch, epochs=epochs, num_models=num_models, **soft)
    except ValueError as error:
        raise CondensationError(str(error)) from None
    raise CondensationError(f"Unknown protocol {protocol!r}; choose one of {PROTOCOLS}")


def _matched_channels(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey and RGB sets are compared in RGB (a grey image repeated on three channels)."""
    if train.shape[1] == test.shape[1]:
        return train, test
    if {train.shape[1], test.shape[1]} == {1, 3}:
        return _as_rgb(train), _as_rgb(test)
    raise CondensationError(f"Condensed images have {train.shape[1]} channels but test images have {test.shape[1]}")


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
            picks.append(members[pick_random(len(members), int(count), np.random.default_rng([seed, label]))])
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
    temperature: float = 4.0,
    teacher_arch: str = "convnet3",
    teacher_epochs: int = 2,
    seed: int = 0,
    device: str = "auto",
    progress: Optional[ProgressFn] = None,
) -> dict:
    """Train ``num_models`` fresh ``arch`` networks on a condensed set and test them.

    Pass any ``view`` of training images, or ``run_key`` (with ``dataset``, or a view of it)
    to evaluate that run's output and store the result on the run (one entry per protocol).
    ``protocol="hard"``: DC/DM standard on the labels (SGD, DSA). ``protocol="soft"``:
    RDED/DC3, soft labels of a ``teacher_arch`` teacher trained on the source split (cached),
    KD at ``temperature``, AdamW + cosine, crop/flip/patch-shuffle. The test set is the
    samples tagged ``eval_split``. With ``references`` the same protocol also runs on a
    random class-balanced subset of the same size from the source split (the run's source
    view, else the samples tagged ``source_split``), and with ``include_full`` on the whole
    source split (``full_epochs`` epochs); both are cached on the dataset. Grey and RGB sets
    are compared in RGB. Returns a dict with ``mean``, ``std``, ``accuracies``, ``per_class``
    and the references.
    """
    if view is None and dataset is None:
        raise CondensationError("Pass a view to evaluate, or run_key with dataset=")
    dataset = dataset if dataset is not None else view._dataset
    source = None
    if run_key is not None:
        record = run_store.load_run(dataset, run_key)
        view = record.view
        label_field = label_field or record.config.get("label_field")
        source = _source_of(dataset, run_key)
    label_field = label_field or DEFAULT_LABEL_FIELD
    require_samples(view, "condensed set")
    check_label_field(view, label_field)
    soft = {"temperature": temperature, "teacher_arch": teacher_arch, "teacher_epochs": teacher_epochs}
    settings = _protocol(protocol, arch, epochs, num_models, **(soft if protocol == "soft" else {}))
    test_view = split_view(dataset, eval_split)
    check_label_field(test_view, label_field)
    overlap = set(view.values("id")) & set(test_view.values("id"))
    if overlap:
        raise CondensationError(f"{len(overlap)} samples of the condensed set are also tagged {eval_split!r}; evaluation would test on training images.")
    if references or protocol == "soft":
        source = source if source is not None else split_view(dataset, source_split)
    classes = class_names(dataset, label_field)
    torch_device = resolve_device(device)
    reporter = _progress(progress)

    train = load_images(view, label_field, classes, reporter.stage("loading condensed set", 0.0, 0.02))
    test = load_images(test_view, label_field, classes, reporter.stage("loading test split", 0.02, 0.08))
    teacher = None
    if protocol == "soft":
        net, normalizer, _ = _embedding_model(source, teacher_arch, label_field, classes, None, teacher_epochs,
                                              torch_device, seed, reporter.sub(0.08, 0.2))
        teacher = _RawTeacher(net, normalizer)

    def run_protocol(images: ImageSet, stage: ProgressFn, settings: Protocol = settings) -> dict:
        train_x, test_x = _matched_channels(images.floats(), test.floats())
        return evaluate_images(train_x, images.labels, test_x, test.labels, len(classes), settings, torch_device, seed,
                               stage, teacher).as_dict()

    header = {"protocol": settings.as_dict(), "eval_split": eval_split, "label_field": label_field}
    if not references:
        output = {**header, **run_protocol(train, reporter.stage("evaluating condensed set", 0.2, 0.99))}
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
            lambda: run_protocol(load_images(source.select(subset_ids, ordered=True), label_field, classes),
                                 reporter.stage("random reference", 0.2, 0.55)),
        )
        same_as_reference = sorted(subset_ids) == sorted(train.ids)
        result = (
            {k: random_reference[k] for k in ("accuracies", "per_class", "num_train", "seconds", "protocol", "mean", "std")}
            if same_as_reference else run_protocol(train, reporter.stage("evaluating condensed set", 0.55, 0.9))
        )
        output = {**header, **result, "random": random_reference,
                  "gain_over_random": result["mean"] - random_reference["mean"]}
        if include_full:
            full_settings = _protocol(protocol, arch, full_epochs, num_models, **(soft if protocol == "soft" else {}))
            output["full"] = _reference(
                dataset, {**common, "kind": "full", "protocol": full_settings.as_dict()},
                lambda: {**run_protocol(load_images(source, label_field, classes),
                                        reporter.stage("full-split reference", 0.9, 0.99), full_settings),
                         "source": common["source"]},
            )
        else:
            output["full"] = _cached_full(dataset, common, settings)
        if output.get("full"):
            output["fraction_of_full"] = output["mean"] / output["full"]["mean"]
    if run_key is not None:
        record = run_store.load_run(dataset, run_key)
        evaluations = dict(record.results.get("evaluation") or {})
        evaluations[protocol] = output
        run_store.save_results(dataset, run_key, {**record.results, "evaluation": evaluations})
    reporter.stage("done", 0.99, 1.0)(1.0)
    return output


class _RawTeacher(torch.nn.Module):
    """A trained teacher that takes raw [0, 1] images of either channel count.

    A teacher trained on grey images sees RGB inputs as their channel mean (and an RGB
    teacher sees grey inputs repeated), then its own normaliser.
    """

    def __init__(self, net: torch.nn.Module, normalizer: Normalizer):
        super().__init__()
        self.net, self.normalizer = net, normalizer
        self.channels = len(normalizer.mean)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 3 and self.channels == 1:
            x = x.mean(dim=1, keepdim=True)
        elif x.shape[1] == 1 and self.channels == 3:
            x = x.repeat(1, 3, 1, 1)
        return self.net(self.normalizer(x))


def _source_of(dataset: fo.Dataset, run_key: str) -> Collection:
    """The view a run was computed from; for a compensation run, its parent selection's source."""
    record = run_store.load_run(dataset, run_key)
    parent = record.config.get("parent")
    if parent and parent in run_store.list_runs(dataset):
        return _source_of(dataset, parent)
    return dataset.load_run_view(run_key)


def _reference(dataset: fo.Dataset, key_parts: dict, compute) -> dict:
    """A cached reference result, computed once per dataset, split, size and protocol."""
    key = digest(key_parts)
    cached = _references(dataset).get(key)
    if cached is not None:
        return cached
    value = {**compute(), "kind": key_parts["kind"]}
    _store_reference(dataset, key, value)
    return value


def _cached_full(dataset: fo.Dataset, common: dict, settings: Protocol) -> Optional[dict]:
    """A full-split reference computed earlier for this protocol and architecture, if any."""
    for value in _references(dataset).values():
        protocol = value.get("protocol", {})
        if (value.get("kind") == "full" and protocol.get("name") == settings.name
                and protocol.get("arch") == settings.arch and value.get("source") == common["source"]):
            return value
    return None


# --------------------------------------------------------------------------- colour


def _as_rgb(images: torch.Tensor) -> torch.Tensor:
    return images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images


def _parent_run(view: Collection, parent: Optional[str]) -> Optional[str]:
    """The selection run whose saved view this is (``condense-<key>``), if any."""
    if parent is not None:
        return parent
    name = getattr(view, "name", None) or ""
    return name[len("condense-"):] if name.startswith("condense-") else None


def color_stats(view: Collection, label_field: Optional[str] = None, points: int = 64) -> dict:
    """Colour statistics of a view's images: per-channel KDE, colourfulness, unique colours.

    The result is plain data (lists of numbers) a panel can plot; runs store it so the
    colour homogenisation of a condensed set can be compared with its source.
    """
    require_samples(view)
    images = torch.from_numpy(read_images(view.values("filepath"))).float().div_(255.0)
    return image_color_stats(images, points)


def compensate(
    view: Optional[Collection] = None,
    run_key: Optional[str] = None,
    backend: str = "classical",
    combine_mode: str = "gradient",
    parent: Optional[str] = None,
    label_field: Optional[str] = None,
    model: str = diffusion_backend.DEFAULT_MODEL,
    steps: int = 20,
    guidance: float = 4.0,
    image_guidance: float = 1.5,
    edit_size: int = 256,
    batch_size: int = 8,
    size: Optional[tuple[int, int]] = None,
    output_dir: Optional[str] = None,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    progress: Optional[ProgressFn] = None,
) -> run_store.RunRecord:
    """DC3 colour compensation of ``view`` (typically a selection run's ``condense-<key>`` view).

    Each image gets a warm and a cold hue edit, merged by ``combine_mode`` (``gradient``,
    ``random``, ``grid``, ``fourfold``); ``backend="diffusion"`` edits with InstructPix2Pix
    (``model``: hub id or local directory; ``batch_size`` images per call; fp16 on a GPU),
    ``backend="classical"`` with a deterministic hue/temperature shift. The results are new
    RGB samples (tags ``condense:<run_key>`` and ``synthetic``, ``condense_sources`` = the
    edited sample) written as PNGs under ``output_dir/<run_key>`` (default:
    ``condense/<dataset>/<run_key>`` beside the source media), at the source size or ``size=(height, width)``. The run records
    its parent run and the colour statistics before and after.
    """
    if view is None:
        raise CondensationError("Pass the view to compensate, e.g. dataset.load_saved_view('condense-<key>')")
    dataset = view._dataset
    parent = _parent_run(view, parent)
    run_key = run_key or f"{parent or 'view'}_{backend}_{combine_mode}"
    require_samples(view)
    if parent is not None and parent in run_store.list_runs(dataset):
        label_field = label_field or run_store.load_run(dataset, parent).config.get("label_field")
    label_field = label_field or DEFAULT_LABEL_FIELD
    check_label_field(view, label_field)
    run_store.check_run_key(dataset, run_key, overwrite)
    if backend not in BACKENDS:
        raise CondensationError(f"Unknown backend {backend!r}; choose one of {BACKENDS}")
    if combine_mode not in COMBINE_MODES:
        raise CondensationError(f"Unknown combine_mode {combine_mode!r}; choose one of {COMBINE_MODES}")
    settings = diffusion_backend.DiffusionSettings(model, steps, guidance, image_guidance, edit_size, batch_size)
    reporter = _progress(progress)
    started = time.perf_counter()

    source = load_images(view, label_field, None, reporter.stage("loading images", 0.0, 0.05))
    images = _as_rgb(source.floats())
    generator = torch.Generator().manual_seed(seed)
    if backend == "diffusion":
        pipeline = diffusion_backend.load_pipeline(model, resolve_device(device))
        warm, cold = diffusion_backend.warm_and_cold(pipeline, images, generator, settings,
                                                     reporter.stage("diffusion edits", 0.05, 0.85))
    else:
        warm, cold = classical_backend.warm_and_cold(images, generator)
    output = combine(warm, cold, combine_mode, generator)
    if size is not None:
        output = torch.nn.functional.interpolate(output, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    edited = time.perf_counter()

    folder = Path(output_dir) / run_key if output_dir else media_dir_beside(view, run_key)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise CondensationError(f"Output folder {folder} is not empty; choose output_dir= or overwrite=True")
    config = {
        "method": "dc3_compensation", "kind": "compensation", "parent": parent, "backend": backend,
        "combine_mode": combine_mode, "label_field": label_field, "seed": seed, "classes": source.classes,
        "params": {"model": model, "steps": steps, "guidance": guidance, "image_guidance": image_guidance,
                   "edit_size": edit_size, "batch_size": batch_size, "size": list(size) if size else None} if backend == "diffusion"
        else {"size": list(size) if size else None},
        "output_dir": str(folder), "versions": _versions(),
    }
    with run_store.Transaction(dataset) as transaction:
        if run_key in run_store.list_runs(dataset):
            transaction.delete_run(run_key)
        paths = [folder / f"{source_id}.png" for source_id in source.ids]
        written = transaction.add_synthetic_samples(
            run_key, label_field, paths, [source.classes[int(label)] for label in source.labels],
            [[source_id] for source_id in source.ids], lambda files: write_pngs(output, files),
        )
        results = {
            "num_samples": len(paths),
            "bytes": written,
            "timings": {"edit_s": edited - started, "total_s": time.perf_counter() - started},
            "color_stats": {"before": image_color_stats(images), "after": image_color_stats(output)},
            "evaluation": {},
        }
        transaction.register(view, run_key, config, results)
        transaction.save_view(run_store.saved_view_name(run_key), dataset.match_tags(run_store.run_tag(run_key)))
    return run_store.load_run(dataset, run_key)


# --------------------------------------------------------------------------- distillation


def _run_workdir(dataset: fo.Dataset, run_key: str) -> Path:
    """Where a run keeps its checkpoints while it is in progress."""
    return cache_dir() / "runs" / str(dataset._doc.id) / run_key


def _initial_images(view, source: ImageSet, init: str, ipc: int, label_field: str, num_colors: int, seed: int,
                    device: str, teacher_epochs: int, progress: Progress) -> tuple[torch.Tensor, torch.Tensor, list]:
    """(images, labels, source ids per image) to start distillation from."""
    dataset = view._dataset
    if init == "noise":
        generator = torch.Generator().manual_seed(seed)
        labels = torch.arange(len(source.classes)).repeat_interleave(ipc)
        labels = labels[torch.isin(labels, source.labels.unique())]
        images = torch.rand((len(labels), *source.images.shape[1:]), generator=generator)
        return images, labels, [[] for _ in range(len(labels))]
    if init in run_store.list_runs(dataset):
        ids = run_store.load_run(dataset, init).results.get("selected_ids") or []
        if not ids:
            raise CondensationError(f"Run {init!r} selected no real samples to initialise from")
    elif init in METHODS:
        ids = _plan_selection(view, init, ipc, label_field, num_colors=num_colors, seed=seed, device=device,
                              teacher_epochs=teacher_epochs, progress=progress).ids
    else:
        raise CondensationError(
            f"init must be 'noise', a selection method {sorted(METHODS)} or a selection run key {run_store.list_runs(dataset)}"
        )
    position = {sample_id: i for i, sample_id in enumerate(source.ids)}
    missing = [i for i in ids if i not in position]
    if missing:
        raise CondensationError(f"{len(missing)} initial samples are not in the view being distilled")
    rows = torch.tensor([position[i] for i in ids])
    return source.floats()[rows], source.labels[rows], [[i] for i in ids]


def _encoded_sizes(images: torch.Tensor) -> dict:
    """PNG bytes of the same images stored as 8-bit (their own channels) and as 8-bit RGB."""
    def png_bytes(batch: torch.Tensor) -> int:
        total = 0
        for array in (batch.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy():
            buffer = io.BytesIO()
            Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(buffer, format="PNG")
            total += buffer.tell()
        return total

    return {"bytes_8bit": png_bytes(images), "bytes_8bit_rgb": png_bytes(_as_rgb(images))}


def _write_palette_pngs(palettes: torch.Tensor, indices: torch.Tensor, channels: int, num_colors: int, paths: list) -> None:
    bits = next(b for b in (1, 2, 4, 8) if 2**b >= num_colors)
    for palette, index, path in zip(palettes, indices, paths):
        palette_png(palette, index, channels).save(path, bits=bits, optimize=False)


def distill(
    view: Collection,
    method: str = "dm",
    ipc: int = 10,
    init: Optional[str] = None,
    run_key: Optional[str] = None,
    label_field: str = DEFAULT_LABEL_FIELD,
    iterations: int = 20000,
    batch_real: int = 256,
    lr_img: float = 1.0,
    momentum: float = 0.5,
    moments_weight: float = 3.0,
    correlation_weight: float = 1000.0,
    diversity_weight: float = 10.0,
    task: str = "dm",
    num_colors: int = 64,
    palette_lr: float = 0.05,
    equal_storage: bool = False,
    checkpoint_every: int = 500,
    teacher_epochs: int = 2,
    output_dir: Optional[str] = None,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    progress: Optional[ProgressFn] = None,
) -> run_store.RunRecord:
    """Distil ``ipc`` synthetic images per class from ``view`` and record them as run ``run_key``.

    ``method``: ``dm`` (distribution matching: a fresh ConvNet-3 each iteration, class-mean
    embeddings, DSA, SGD on pixels with ``lr_img`` and ``momentum``), ``ddm`` (DM plus
    moments and Gram matching on every normalisation layer's input maps, and kNN intra-class
    diversity; ``*_weight``) or ``autopalette`` (a palette network reduces each image to
    ``num_colors`` colours; task loss ``task`` = dm or ddm, plus max-colour, balance and
    Median-Cut alignment losses with weights 1, 1, 3 and the reference code's per-pixel
    confidence term; images stored as palette PNGs).
    ``init``: ``noise``, a selection method (default ``random``; ``autopalette_init`` for
    AutoPalette) or a selection run key. ``equal_storage`` (AutoPalette) keeps the byte budget
    of ``ipc`` 8-bit images and so distils ``ipc · 8 / ceil(log2 K)`` images per class.
    Checkpoints every ``checkpoint_every`` iterations let an interrupted run resume.
    """
    dataset = view._dataset
    run_key = run_key or f"{method}_ipc{ipc}"
    init = init or ("autopalette_init" if method == "autopalette" else "random")
    require_samples(view)
    check_label_field(view, label_field)
    run_store.check_run_key(dataset, run_key, overwrite)
    try:
        settings = DistillSettings(
            method=method, iterations=iterations, batch_real=batch_real, lr_img=lr_img, momentum=momentum,
            moments_weight=moments_weight, correlation_weight=correlation_weight, diversity_weight=diversity_weight,
            task=task, num_colors=num_colors, palette_lr=palette_lr, checkpoint_every=max(1, checkpoint_every),
        )
    except ValueError as error:
        raise CondensationError(str(error)) from None
    bits = math.ceil(math.log2(num_colors))
    per_class = ipc * 8 // bits if (equal_storage and method == "autopalette") else ipc
    classes = class_names(view, label_field)
    check_class_budget(labels_of(view, label_field, classes), per_class if init != "noise" else 1, classes)
    reporter = _progress(progress)
    started = time.perf_counter()
    source = load_images(view, label_field, classes, reporter.stage("loading real images", 0.0, 0.05))
    images, labels, sources = _initial_images(view, source, init, per_class, label_field, num_colors, seed, device,
                                              teacher_epochs, reporter.sub(0.05, 0.15))
    workdir = _run_workdir(dataset, run_key)
    result = distill_images(
        source.floats(), source.labels, images, labels, len(classes), settings, resolve_device(device), seed,
        workdir / "checkpoint.pt", reporter.stage(f"distilling ({method})", 0.15, 0.95),
    )

    folder = Path(output_dir) / run_key if output_dir else media_dir_beside(view, run_key)
    config = {
        "method": method, "kind": "distillation", "ipc": per_class, "init": init, "label_field": label_field,
        "params": {**asdict(settings), "equal_storage": equal_storage, "requested_ipc": ipc}, "seed": seed,
        "classes": classes, "output_dir": str(folder), "versions": _versions(),
    }
    with run_store.Transaction(dataset) as transaction:
        if run_key in run_store.list_runs(dataset):
            transaction.delete_run(run_key)
        paths = [folder / f"{method}_{classes[int(label)]}_{i:05d}.png".replace("/", "-") for i, label in enumerate(labels)]

        def write_media(files: list) -> None:
            if result.palettes is not None:
                _write_palette_pngs(result.palettes, result.indices, images.shape[1], num_colors, files)
            else:
                write_pngs(result.images, files)

        written = transaction.add_synthetic_samples(
            run_key, label_field, paths, [classes[int(label)] for label in labels], sources, write_media,
        )
        results = {
            "num_samples": len(paths),
            "bytes": written,
            **_encoded_sizes(result.images),
            "loss_history": result.history[:: max(1, len(result.history) // 500)],
            "resumed_from": result.resumed_from,
            "timings": {"distill_s": result.seconds, "total_s": time.perf_counter() - started},
            "color_stats": {"after": image_color_stats(result.images)},
            "evaluation": {},
        }
        transaction.register(view, run_key, config, results)
        transaction.save_view(run_store.saved_view_name(run_key), dataset.match_tags(run_store.run_tag(run_key)))
    shutil.rmtree(workdir, ignore_errors=True)
    return run_store.load_run(dataset, run_key)


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
