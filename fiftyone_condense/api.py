"""The Python SDK: compute embeddings, select coresets, evaluate, and manage runs.

Each function validates everything it can before computing, computes in memory, then writes
to the dataset inside a :class:`~fiftyone_condense.bridge.runs.Transaction`, so bad input
or an interruption leaves the dataset unchanged.
"""

from __future__ import annotations

import io
import logging
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
from .color import BACKENDS, COMBINE_MODES, combine, plan_edits
from .color import classical as classical_backend
from .color import color_stats as image_color_stats
from .color import diffusion as diffusion_backend
from .device import resolve_device
from .embeddings import (
    EMBEDDING_MODELS,
    ImageNetResNet18,
    Normalizer,
    PretrainedResNet18,
    TeacherConfig,
    embed_images,
    fit_linear_probe,
    imagenet_resnet18_weights,
    load_teacher,
    load_vae,
    teacher_checkpoint,
    train_converged_teacher,
    train_teacher,
    vae_latents,
)
from .errors import CondensationError
from .evaluation import PROTOCOLS, HardProtocol, Protocol, SoftProtocol, evaluate_images
from .progress import Progress, ProgressFn
from .selection import METHODS, check_class_budget, feature_gram, gradient_gram, select_per_class
from .selection.gram import LOSSES as GRADIENT_LOSSES
from .training import accuracy
from .selection.coresets import pick_random
from .distill import DistillSettings
from .distill import distill as distill_images
from .distill.palette import median_cut, palette_png

Collection = fo.core.collections.SampleCollection
EMBEDDING_KINDS = ("features", "gradients")
DC3_ENCODERS = ("convnet3", "resnet18", "vae")
DEFAULT_VAE = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # DC3 encodes with the SD v1.5 pipeline's VAE
AUTOPALETTE_INIT_EPOCHS = 50  # AutoPalette's selection network: 50 epochs on Median-Cut images
_log = logging.getLogger(__name__)


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
    write: bool  # not yet in the dataset's field, and the field may take them


def _embedding_model(
    train_view: Collection, model: str, label_field: str, classes: list[str], weights: Optional[str],
    teacher_epochs: int, device: torch.device, seed: int, progress: Progress,
) -> tuple[torch.nn.Module, Normalizer, dict]:
    """A trained (cached) teacher; ResNet-18 ImageNet weights with a linear probe (``weights=``);
    or, ``imagenet_resnet18``, DC3's ImageNet ResNet-18 with an untrained head."""
    if model not in EMBEDDING_MODELS:
        raise CondensationError(f"Unknown embedding model {model!r}; choose one of {EMBEDDING_MODELS}")
    train = load_images(train_view, label_field, classes, progress.stage("loading source images", 0.0, 0.1))
    if model == "imagenet_resnet18":
        state = imagenet_resnet18_weights(weights)
        if state is None:
            raise CondensationError(
                f"No ImageNet ResNet-18 weights at {weights or 'the torch hub cache'}: pass weights= a local file "
                "(torchvision's resnet18 IMAGENET1K_V1 state dict), or run torchvision.models.resnet18(weights='IMAGENET1K_V1') "
                "once with a network to cache them.")
        net = ImageNetResNet18(state, len(classes), seed)
        return net, Normalizer.fit(train.floats()), {"model": model, "weights": str(weights or "torch hub cache"), "head": "random"}
    if weights is not None:
        if model != "resnet18":
            raise CondensationError("weights= applies to model='resnet18' and 'imagenet_resnet18' only")
        if not Path(weights).is_file():
            raise CondensationError(f"Weights file {weights!r} does not exist")
        net = PretrainedResNet18(weights, len(classes))
        normalizer = Normalizer.identity(train.images.shape[1])
        features, _ = embed_images(net, normalizer, train.floats(), device, progress=progress.stage("probe features", 0.1, 0.4))
        fit_linear_probe(net.classifier, features, train.labels, seed=seed)
        return net, normalizer, {"model": model, "weights": str(weights)}
    net, normalizer, path = _trained_teacher(train, TeacherConfig(arch=model, epochs=teacher_epochs), train_view, label_field,
                                             device, seed, progress.stage(f"training {model} teacher", 0.1, 0.4))
    return net, normalizer, {"model": model, "teacher_epochs": teacher_epochs, "teacher": str(path)}


def _trained_teacher(images: ImageSet, config: TeacherConfig, train_view: Collection, label_field: str,
                     device: torch.device, seed: int, progress: ProgressFn, kind: str = "teachers"):
    """``config.arch`` trained on ``images`` once and cached (keyed by data and settings): (net, normaliser, path)."""
    meta = {
        "dataset": train_view._dataset.name, "label_field": label_field, "classes": images.classes,
        "channels": int(images.images.shape[1]), "num_classes": len(images.classes),
        "image_size": list(images.images.shape[-2:]), "train_ids": digest(sorted(images.ids)), "seed": seed,
    }
    path = cached_path(kind, {"config": asdict(config), **meta})
    if path.is_file():
        net, normalizer = load_teacher(torch.load(path, map_location="cpu", weights_only=False))
    else:
        net, normalizer = train_teacher(images.floats(), images.labels, len(images.classes), config, device, seed, progress)
        save_atomically(teacher_checkpoint(net, normalizer, config, meta), path)
    return net, normalizer, path


def _same_model(stored: dict, wanted: dict) -> bool:
    """Whether stored embeddings came from the wanted model (user-made ones, with no model recorded, are trusted)."""
    return "model" not in stored or all(stored.get(key) == value for key, value in wanted.items())


def _embeddings(
    view: Collection, embeddings_field: str, label_field: str, classes: list[str], model: str,
    train_view: Optional[Collection], weights: Optional[str], teacher_epochs: int,
    device: torch.device, seed: int, overwrite: bool, progress: Progress, strict: bool = False,
) -> Embeddings:
    """Reuse the field when every sample has it from the same model, else compute (without writing).

    A field filled by another model is not overwritten: with ``strict`` that is an error, else the
    embeddings are computed for this run only.
    """
    dataset = view._dataset
    logits_field = _logits_field(embeddings_field)
    wanted = {"model": model, **({"weights": str(weights)} if weights else {"teacher_epochs": teacher_epochs}
                                 if model != "imagenet_resnet18" else {})}
    may_write = True
    if not overwrite and dataset.has_sample_field(embeddings_field) and dataset.has_sample_field(logits_field):
        info = dict(dataset.get_field(embeddings_field).info or {})
        may_write = _same_model(info, wanted)
        if not may_write and strict:
            raise CondensationError(
                f"Field {embeddings_field!r} holds embeddings of another model ({ {k: info.get(k) for k in wanted} }, "
                f"not {wanted}); pass overwrite=True or another embeddings_field.")
        if may_write and len(view.exists(embeddings_field, False)) == 0 and len(view.exists(logits_field, False)) == 0:
            return Embeddings(np.stack(view.values(embeddings_field)), np.stack(view.values(logits_field)), info, False)
    net, normalizer, info = _embedding_model(
        train_view if train_view is not None else view, model, label_field, classes, weights,
        teacher_epochs, device, seed, progress,
    )
    images = load_images(view, label_field, classes, progress.stage("loading images", 0.4, 0.5))
    features, logits = embed_images(net, normalizer, images.floats(), device, progress=progress.stage("embedding", 0.5, 0.95))
    return Embeddings(features.numpy(), logits.numpy(), {**info, "classes": classes}, may_write)


def _write_embeddings(transaction: run_store.Transaction, view: Collection, field: str, embeddings: Embeddings) -> None:
    if not embeddings.write:
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
        resolve_device(device), seed, overwrite, reporter, strict=True,
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
    model: Optional[str] = None,
    embedding: Optional[str] = None,
    weights: Optional[str] = None,
    teacher_epochs: Optional[int] = None,
    lambda_: float = 1.0,
    optimizer: str = "NaiveGreedy",
    bins: int = 10,
    pca_dim: int = 50,
    gradient_model: str = "imagenet_resnet18",
    gradient_loss: Optional[str] = None,
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
    (computed with ``model``, default ``convnet3`` trained ``teacher_epochs`` (2), when absent) as
    ``embedding="features"`` (default) or last-layer ``"gradients"``.

    ``dc3`` (as its reference code): bins each class by K-means (``bins``) on PCA(``pca_dim``) of
    the encoder ``model`` (default ``vae``: the Stable Diffusion VAE ``vae_model``, hub id or
    path, at ``vae_size`` px; or ``convnet3`` / ``resnet18`` features) and runs GraphCut
    (``lambda_``) on gradient embeddings (``gradient_loss``, default DC3's cross-entropy of the
    softmax) of ``gradient_model`` (default ``imagenet_resnet18``: ImageNet weights from
    ``weights`` or torch's hub cache, untrained head) inside each bin. Without the VAE or the
    ImageNet weights it falls back to a trained ``convnet3`` and records that on the run.

    ``autopalette_init`` (as AutoPalette's code): a ConvNet-3 trained ``teacher_epochs`` (50) on
    Median-Cut-quantised (``num_colors``) images embeds them (features), and GraphCut conditional
    gain picks representative images unlike the picks so far. The picks get the tag
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
        pca_dim=pca_dim, gradient_model=gradient_model, gradient_loss=gradient_loss, vae_model=vae_model,
        vae_size=vae_size, num_colors=num_colors, seed=seed, device=device, progress=_progress(progress),
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
    model: Optional[str] = None, embedding: Optional[str] = None, weights: Optional[str] = None,
    teacher_epochs: Optional[int] = None, lambda_: float = 1.0, optimizer: str = "NaiveGreedy", bins: int = 10,
    pca_dim: int = 50, gradient_model: str = "imagenet_resnet18", gradient_loss: Optional[str] = None,
    vae_model: str = DEFAULT_VAE, vae_size: int = 512, num_colors: int = 64, seed: int = 0, device: str = "auto",
    progress: Progress,
) -> SelectionPlan:
    """Validate, embed and select in memory; nothing is written."""
    if method not in METHODS:
        raise CondensationError(f"Unknown selection method {method!r}; choose one of {sorted(METHODS)}")
    embedding = embedding or ("gradients" if method == "dc3" else "features")
    if embedding not in EMBEDDING_KINDS:
        raise CondensationError(f"embedding must be one of {EMBEDDING_KINDS}, got {embedding!r}")
    gradient_loss = gradient_loss or ("softmax_cross_entropy" if method == "dc3" else "cross_entropy")
    if gradient_loss not in GRADIENT_LOSSES:
        raise CondensationError(f"gradient_loss must be one of {GRADIENT_LOSSES}, got {gradient_loss!r}")
    model = model or ("vae" if method == "dc3" else "convnet3")
    teacher_epochs = teacher_epochs or (AUTOPALETTE_INIT_EPOCHS if method == "autopalette_init" else 2)
    if method == "dc3" and model not in DC3_ENCODERS:
        raise CondensationError(f"dc3 encoder model must be one of {DC3_ENCODERS}, got {model!r}")
    classes = class_names(view, label_field)
    labels = labels_of(view, label_field, classes)
    check_class_budget(labels, ipc, classes)
    check_media(view.values("filepath"))
    started = time.perf_counter()
    torch_device = resolve_device(device)
    needs = METHODS[method].needs
    fallbacks = {}

    def embed(field: str, embedding_model: str, stage: tuple[float, float], model_weights: Optional[str] = None) -> Embeddings:
        return _embeddings(view, field, label_field, classes, embedding_model, None, model_weights, teacher_epochs,
                           torch_device, seed, False, progress.sub(*stage))

    embeddings, encoder, writes = None, None, []
    if method == "autopalette_init":
        embeddings = _quantised_embeddings(view, label_field, classes, teacher_epochs, num_colors, torch_device, seed,
                                           progress.sub(0.0, 0.9))
    elif method == "dc3":
        gradient_model, embeddings = _dc3_gradient_embeddings(embed, embeddings_field, gradient_model, weights, fallbacks)
        writes.append((embeddings_field, embeddings))
    elif "gram" in needs:
        embeddings = embed(embeddings_field, model, (0.0, 0.45), weights)
        writes.append((embeddings_field, embeddings))
    if "encoder" in needs:
        if model == "vae":
            encoder = _vae_encoder(view, label_field, classes, vae_model, vae_size, torch_device, progress, fallbacks)
            model = "vae" if encoder is not None else "convnet3"
        if encoder is None and model == gradient_model:
            encoder = embeddings.features
        elif encoder is None:
            field = f"{embeddings_field}_{model}"
            encoder_embeddings = embed(field, model, (0.45, 0.9))
            writes.append((field, encoder_embeddings))
            encoder = encoder_embeddings.features
    embedded = time.perf_counter()

    def inputs_of_class(members: np.ndarray, wanted: tuple[str, ...]) -> dict:
        inputs = {}
        if "gram" in wanted:
            inputs["gram"] = (
                gradient_gram(embeddings.features[members], embeddings.logits[members], labels[members], gradient_loss)
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
        **({"gradient_loss": gradient_loss} if embedding == "gradients" else {}),
        **({"vae_model": vae_model, "vae_size": vae_size} if method == "dc3" and model == "vae" else {}),
        **({"num_colors": num_colors, "teacher_epochs": teacher_epochs} if method == "autopalette_init" else {}),
    }
    writes = [(f, e) for f, e in writes if e.write]
    config = {
        "method": method, "kind": "selection", "ipc": ipc, "label_field": label_field,
        "embeddings_field": embeddings_field if writes else None,
        "model": model if needs else None, "embedding": embedding if embeddings is not None else None,
        "params": {**params, **extra_params}, "fallbacks": fallbacks, "seed": seed, "classes": classes,
        "versions": _versions(),
    }
    timings = {"embeddings_s": embedded - started, "selection_s": finished - embedded, "total_s": finished - started}
    return SelectionPlan([ids[i] for i in picks], config, timings, writes)


def _dc3_gradient_embeddings(embed, field: str, gradient_model: str, weights: Optional[str],
                             fallbacks: dict) -> tuple[str, Embeddings]:
    """DC3's gradient model (``weights`` are the ImageNet ResNet-18's); without those weights, a
    trained ConvNet-3 (recorded in ``fallbacks``)."""
    try:
        return gradient_model, embed(field, gradient_model, (0.0, 0.45), weights)
    except CondensationError as error:
        if gradient_model != "imagenet_resnet18":
            raise
        _log.warning("DC3 gradient model: %s Using a trained convnet3 instead.", error)
        fallbacks["gradient_model"] = f"imagenet_resnet18 unavailable ({error}); used convnet3"
        return "convnet3", embed(field, "convnet3", (0.0, 0.45))


def _vae_encoder(view, label_field, classes, vae_model, vae_size, device, progress: Progress, fallbacks: dict):
    """DC3's VAE latents of the view's images, or None (recorded in ``fallbacks``) without the VAE."""
    try:
        vae = load_vae(vae_model, device)
    except CondensationError as error:
        _log.warning("DC3 bins: %s Binning ConvNet-3 features instead.", error)
        fallbacks["encoder"] = f"VAE {vae_model!r} unavailable; used convnet3 features"
        return None
    images = load_images(view, label_field, classes, progress.stage("loading images", 0.45, 0.5))
    return vae_latents(vae, images.floats(), Normalizer.fit(images.floats()), vae_size, device,
                       progress=progress.stage("VAE latents", 0.5, 0.9)).numpy()


def _quantised_embeddings(view, label_field, classes, epochs, num_colors, device, seed, progress: Progress) -> Embeddings:
    """AutoPalette's initialisation embeddings: features of the view's Median-Cut-quantised images
    from a ConvNet-3 trained on them (SGD lr 0.1, momentum 0.9, wd 5e-4, batch 128, constant lr)."""
    images = load_images(view, label_field, classes, progress.stage("loading images", 0.0, 0.05))
    quantised = ImageSet(images.ids, (median_cut(images.floats(), num_colors)[0] * 255).round().to(torch.uint8),
                         images.labels, images.classes)
    config = TeacherConfig(arch="convnet3", epochs=epochs, lr=0.1, batch_size=128, decay=False)
    net, normalizer, path = _trained_teacher(quantised, config, view, label_field, device, seed,
                                             progress.stage("training the selection network on Median-Cut images", 0.05, 0.7),
                                             kind="median-cut-teachers")
    features, logits = embed_images(net, normalizer, quantised.floats(), device,
                                    progress=progress.stage("embedding quantised images", 0.7, 1.0))
    info = {"model": "convnet3", "teacher_epochs": epochs, "median_cut_colors": num_colors, "teacher": str(path)}
    return Embeddings(features.numpy(), logits.numpy(), info, False)


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


def _with_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey images repeated to RGB when the evaluation works in RGB."""
    if images.shape[1] == channels:
        return images
    if images.shape[1] == 1 and channels == 3:
        return _as_rgb(images)
    raise CondensationError(f"Cannot compare images of {images.shape[1]} channels with images of {channels} channels")


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


def _soft_teacher(source: Collection, label_field: str, classes: list[str], settings: SoftProtocol,
                  device: torch.device, seed: int, progress: Progress) -> tuple["_RawTeacher", dict]:
    """The soft protocol's teacher: ``teacher_arch`` trained to convergence on the source split, cached."""
    images = load_images(source, label_field, classes, progress.stage("loading source split", 0.0, 0.2))
    config = settings.teacher_config()
    meta = {"dataset": source._dataset.name, "label_field": label_field, "classes": classes, "arch": settings.teacher_arch,
            "channels": int(images.images.shape[1]), "num_classes": len(classes), "image_size": list(images.images.shape[-2:]),
            "train_ids": digest(sorted(images.ids)), "seed": seed}
    path = cached_path("soft-teachers", {"config": asdict(config), **meta})
    if path.is_file():
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        net, normalizer = load_teacher(checkpoint)
        record = checkpoint["meta"]["training"]
    else:
        net, normalizer, record = train_converged_teacher(
            images.floats(), images.labels, len(classes), settings.teacher_arch, config, device, seed,
            progress.stage(f"training the {settings.teacher_arch} teacher to convergence", 0.2, 1.0),
        )
        teacher_config = TeacherConfig(arch=settings.teacher_arch, epochs=record["epochs"])
        save_atomically(teacher_checkpoint(net, normalizer, teacher_config, {**meta, "training": record}), path)
    return _RawTeacher(net, normalizer), {"arch": settings.teacher_arch, **record}


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
    temperature: float = 20.0,
    teacher_arch: str = "convnet3",
    teacher_epochs: int = 50,
    seed: int = 0,
    device: str = "auto",
    progress: Optional[ProgressFn] = None,
) -> dict:
    """Train ``num_models`` fresh ``arch`` networks on a condensed set and test them.

    Pass any ``view`` of training images, or ``run_key`` (with ``dataset``, or a view of it)
    to evaluate that run's output and store the result on the run (one entry per protocol).
    ``protocol="hard"``: DC/DSA/DM's ``evaluate_synset`` on the labels (SGD, DSA).
    ``protocol="soft"``: RDED's validation (DC3's): soft labels of a ``teacher_arch`` teacher
    trained to convergence on the source split (at most ``teacher_epochs``; cached, its test
    accuracy reported as ``teacher``), KL at ``temperature`` on CutMixed batches, AdamW with
    RDED's schedule, ShufflePatches → RandomResizedCrop → flip; ``best_mean`` is RDED's
    best-over-epochs accuracy beside the final ``mean``. The test set is the samples tagged
    ``eval_split``. With ``references`` the same protocol also runs on a random class-balanced
    subset of the same size from the source split (the run's source view, else the samples
    tagged ``source_split``), and with ``include_full`` on the whole source split
    (``full_epochs`` epochs); both are cached on the dataset, keyed by every setting. All sets
    are trained with the same network and channels (grey images are repeated to RGB when the
    condensed set is colour). Returns a dict with ``mean``, ``std``, ``accuracies``,
    ``per_class`` and the references.
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
    channels = max(train.images.shape[1], test.images.shape[1])
    test_x = _with_channels(test.floats(), channels)
    header = {"protocol": settings.as_dict(), "eval_split": eval_split, "label_field": label_field, "channels": channels}
    teacher = None
    if protocol == "soft":
        teacher, header["teacher"] = _soft_teacher(source, label_field, classes, settings, torch_device, seed,
                                                   reporter.sub(0.08, 0.2))
        header["teacher"]["test_accuracy"] = accuracy(teacher, test.floats(), test.labels, torch_device)

    def run_protocol(images: ImageSet, stage: ProgressFn, settings: Protocol = settings) -> dict:
        return evaluate_images(_with_channels(images.floats(), channels), images.labels, test_x, test.labels, len(classes),
                               settings, torch_device, seed, stage, teacher).as_dict()

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
                  "channels": channels, "teacher": header.get("teacher"), "source": digest(sorted(source_ids)),
                  "test": digest(sorted(test.ids))}
        random_reference = _reference(
            dataset, {**common, "kind": "random", "counts": counts.tolist()},
            lambda: run_protocol(load_images(source.select(subset_ids, ordered=True), label_field, classes),
                                 reporter.stage("random reference", 0.2, 0.55)),
        )
        same_as_reference = channels == train.images.shape[1] and sorted(subset_ids) == sorted(train.ids)
        result = (
            {k: v for k, v in random_reference.items() if k not in ("kind", "source")}
            if same_as_reference else run_protocol(train, reporter.stage("evaluating condensed set", 0.55, 0.9))
        )
        output = {**header, **result, "random": random_reference,
                  "gain_over_random": result["mean"] - random_reference["mean"]}
        full_settings = _protocol(protocol, arch, full_epochs, num_models, **(soft if protocol == "soft" else {}))
        full_key = {**common, "kind": "full", "protocol": full_settings.as_dict()}
        if include_full:
            output["full"] = _reference(
                dataset, full_key,
                lambda: run_protocol(load_images(source, label_field, classes),
                                     reporter.stage("full-split reference", 0.9, 0.99), full_settings),
            )
        else:
            output["full"] = _references(dataset).get(digest(full_key))
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

    def _own_channels(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 3 and self.channels == 1:
            return x.mean(dim=1, keepdim=True)
        if x.shape[1] == 1 and self.channels == 3:
            return x.repeat(1, 3, 1, 1)
        return x

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.embed(self.normalizer(self._own_channels(x)))

    @property
    def classifier(self) -> torch.nn.Module:
        return self.net.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


def _source_of(dataset: fo.Dataset, run_key: str) -> Collection:
    """The view a run was computed from; for a compensation run, its parent selection's source."""
    record = run_store.load_run(dataset, run_key)
    parent = record.config.get("parent")
    if parent and parent in run_store.list_runs(dataset):
        return _source_of(dataset, parent)
    return dataset.load_run_view(run_key)


def _reference(dataset: fo.Dataset, key_parts: dict, compute) -> dict:
    """A cached reference result, computed once per dataset, split, size, channels and protocol."""
    key = digest(key_parts)
    cached = _references(dataset).get(key)
    if cached is not None:
        return cached
    value = {**compute(), "kind": key_parts["kind"]}
    _store_reference(dataset, key, value)
    return value


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
    backend: str = "diffusion",
    combine_mode: str = "gradient",
    parent: Optional[str] = None,
    label_field: Optional[str] = None,
    model: str = diffusion_backend.DEFAULT_MODEL,
    steps: int = 100,
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

    As DC3's reference code: each image, resized to ``edit_size`` (256), gets a warm and a cold
    hue edit, merged there by ``combine_mode`` (``gradient``, ``random``, ``grid``; ``fourfold``
    is ours). ``backend="diffusion"`` (the paper's) edits with InstructPix2Pix (``model``: hub id
    or local directory; ``steps`` 100, guidance 4, image guidance 1.5; ``batch_size`` images per
    call; fp16 on a GPU) and stops with a clear error when the weights are not there;
    ``backend="classical"`` is a deterministic hue/temperature shift that needs no weights. The
    results are new RGB samples (tags ``condense:<run_key>`` and ``synthetic``,
    ``condense_sources`` = the edited sample) written as PNGs under ``output_dir/<run_key>``
    (default: ``condense/<dataset>/<run_key>`` beside the source media), resized back to the
    source size or to ``size=(height, width)``. The run records its parent run and the colour
    statistics before and after.
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
    plan = plan_edits(len(images), combine_mode, (edit_size, edit_size), seed)
    generator = torch.Generator().manual_seed(seed)
    at_edit_size = _resized(images, (edit_size, edit_size), "bicubic")
    if backend == "diffusion":
        pipeline = diffusion_backend.load_pipeline(model, resolve_device(device))
        warm, cold = diffusion_backend.warm_and_cold(pipeline, at_edit_size, plan.warm, plan.cold, generator, settings,
                                                     reporter.stage("diffusion edits", 0.05, 0.85))
    else:
        warm, cold = classical_backend.warm_and_cold(at_edit_size, generator)
    output = _resized(combine(warm, cold, plan), tuple(size) if size is not None else tuple(images.shape[-2:]), "bilinear")
    edited = time.perf_counter()

    folder = Path(output_dir) / run_key if output_dir else media_dir_beside(view, run_key)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise CondensationError(f"Output folder {folder} is not empty; choose output_dir= or overwrite=True")
    config = {
        "method": "dc3_compensation", "kind": "compensation", "parent": parent, "backend": backend,
        "combine_mode": combine_mode, "label_field": label_field, "seed": seed, "classes": source.classes,
        "params": {"edit_size": edit_size, "size": list(size) if size else None,
                   **({"model": model, "steps": steps, "guidance": guidance, "image_guidance": image_guidance,
                       "batch_size": batch_size} if backend == "diffusion" else {})},
        "styles": {"warm": plan.warm, "cold": plan.cold},
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


def _resized(images: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return torch.nn.functional.interpolate(images, size=size, mode=mode, align_corners=False, antialias=True).clamp(0, 1)


# --------------------------------------------------------------------------- distillation


def _run_workdir(dataset: fo.Dataset, run_key: str) -> Path:
    """Where a run keeps its checkpoints while it is in progress."""
    return cache_dir() / "runs" / str(dataset._doc.id) / run_key


def _initial_images(view, source: ImageSet, init: str, ipc: int, label_field: str, num_colors: int, seed: int,
                    device: str, teacher_epochs: Optional[int], progress: Progress) -> tuple[torch.Tensor, torch.Tensor, list]:
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
    order = torch.argsort(source.labels[rows], stable=True)  # the engine takes classes as contiguous blocks
    rows = rows[order]
    return source.floats()[rows], source.labels[rows], [[ids[i]] for i in order.tolist()]


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


BUDGETS = ("paper", "bits", "count")


def default_lr_img(method: str, ipc: int) -> float:
    """The image learning rate of the method's reference: 1, AutoPalette 10 from IPC 50 (its paper's Table 9)."""
    return 10.0 if method == "autopalette" and ipc >= 50 else 1.0


def images_per_class(ipc: int, method: str, budget: str, num_colors: int) -> int:
    """Synthetic images per class: AutoPalette's storage budget (``paper``: IPC × 2^(8 − ⌈log₂K⌉),
    as its reference code; ``bits``: IPC × 8 / ⌈log₂K⌉, the same bytes as IPC 8-bit images;
    ``count``: IPC), IPC for the other methods."""
    if budget not in BUDGETS:
        raise CondensationError(f"budget must be one of {BUDGETS}, got {budget!r}")
    bits = math.ceil(math.log2(num_colors))
    if method != "autopalette" or budget == "count":
        return ipc
    return ipc * 2 ** (8 - bits) if budget == "paper" else ipc * 8 // bits


def distill(
    view: Collection,
    method: str = "dm",
    ipc: int = 10,
    init: Optional[str] = None,
    run_key: Optional[str] = None,
    label_field: str = DEFAULT_LABEL_FIELD,
    iterations: int = 20000,
    batch_real: int = 256,
    lr_img: Optional[float] = None,
    momentum: float = 0.5,
    moments_weight: float = 1e4,
    correlation_weight: float = 1e4,
    diversity_weight: float = 10.0,
    task: str = "dm",
    num_colors: int = 64,
    palette_lr: float = 0.05,
    confidence_weight: float = 0.0,
    normalize_palette_task: bool = False,
    palette_warmup: int = 0,
    budget: str = "paper",
    mixed_precision: bool = False,
    checkpoint_every: int = 500,
    teacher_epochs: Optional[int] = None,
    output_dir: Optional[str] = None,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    progress: Optional[ProgressFn] = None,
) -> run_store.RunRecord:
    """Distil ``ipc`` synthetic images per class from ``view`` and record them as run ``run_key``.

    Every default is the method's reference code (docs/benchmarks.md, "fidelity"). ``method``:
    ``dm`` (distribution matching: a fresh ConvNet-3 each iteration, class-mean embeddings, DSA
    shared by real and synthetic images, SGD on pixels with ``lr_img`` (1; AutoPalette 10 from
    IPC 50, its paper's Table 9) and ``momentum``),
    ``ddm`` (DM plus moments and Gram matching on the activation after every normalisation
    layer, and intra-class diversity against the 2 nearest neighbours; ``*_weight``, the
    reference's 1e4, 1e4 and 10) or ``autopalette`` (a palette network reduces each image to
    ``num_colors`` colours; task loss ``task`` = dm or ddm divided by the number of classes,
    plus maximum-colour, balance and Median-Cut pixel-similarity losses with weights 1, 1, 3 on
    64 detached images per iteration; images stored as palette PNGs). AutoPalette distils
    ``budget`` = ``paper`` (IPC × 2^(8 − ⌈log₂K⌉): 4 × IPC at K = 64), ``bits`` or ``count``
    images per class. ``palette_warmup``: epochs fitting the palette network to the real images
    first (the reference's ``--use_warmup``, off by default as in its CIFAR-10 runs). Options of
    ours: ``confidence_weight`` (the reference code's per-pixel confidence term, 0 in the authors'
    runs), ``normalize_palette_task``, ``mixed_precision``.
    ``init``: ``noise``, a selection method (default ``random``; ``autopalette_init`` for
    AutoPalette) or a selection run key. Checkpoints every ``checkpoint_every`` iterations let
    an interrupted run resume.
    """
    dataset = view._dataset
    run_key = run_key or f"{method}_ipc{ipc}"
    init = init or ("autopalette_init" if method == "autopalette" else "random")
    require_samples(view)
    check_label_field(view, label_field)
    run_store.check_run_key(dataset, run_key, overwrite)
    lr_img = lr_img if lr_img is not None else default_lr_img(method, ipc)
    try:
        settings = DistillSettings(
            method=method, iterations=iterations, batch_real=batch_real, lr_img=lr_img, momentum=momentum,
            moments_weight=moments_weight, correlation_weight=correlation_weight, diversity_weight=diversity_weight,
            task=task, num_colors=num_colors, palette_lr=palette_lr, confidence_weight=confidence_weight,
            normalize_palette_task=normalize_palette_task, palette_warmup=palette_warmup, mixed_precision=mixed_precision,
            checkpoint_every=max(1, checkpoint_every),
        )
    except ValueError as error:
        raise CondensationError(str(error)) from None
    per_class = images_per_class(ipc, method, budget, num_colors)
    classes = class_names(view, label_field)
    smallest = int(np.bincount(labels_of(view, label_field, classes), minlength=len(classes)).min())
    if per_class != ipc and init != "noise" and per_class > smallest:
        raise CondensationError(
            f"AutoPalette's budget {budget!r} distils {per_class} images per class at ipc={ipc} and K={num_colors}, "
            f"each initialised from a real image, but the smallest class has {smallest}. Choose a smaller ipc, "
            "budget='count' (ipc images), or init='noise'.")
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
        "params": {**asdict(settings), "budget": budget, "requested_ipc": ipc}, "seed": seed,
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
