"""Embeddings of a view's images: computed by a cached teacher or a model you pass, reused, never clobbered.

A field is *ours* when fiftyone-condense wrote it (its info says ``plugin``, or — runs of the
first version — it names a ``model`` and has a ``<field>_logits`` companion). Ours is reused only
when it came from the same model and settings, and rewritten only with ``overwrite``. Any other
field is the user's: it is read as it is (features, plus logits when a companion exists) and
never written.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import fiftyone as fo
import numpy as np
import torch

from ..algorithms.cache import cached_path, digest, load_cached, save_atomically
from ..algorithms.device import resolve_device
from ..algorithms.distributed import current_team
from ..algorithms.errors import CondensationError
from ..algorithms.images import as_rgb
from ..algorithms.loader import ImagesLike, release_free_memory, subset
from ..algorithms.progress import Progress, ProgressFn
from ..algorithms.rows import Rows, RowStore
from ..algorithms.teachers import (
    EMBEDDING_MODELS, ImageNetResNet18, Normalizer, PretrainedResNet18, TeacherConfig, embed_images, fit_linear_probe,
    imagenet_resnet18_weights, load_teacher, teacher_checkpoint, train_teacher,
)
from ..algorithms.training import predict
from .lifecycle import claimed, field_key
from .records import PLUGIN
from .transaction import Transaction
from .views import ImageSet, Reading, check_label_field, class_names, require_samples

Collection = fo.core.collections.SampleCollection
STREAM_BATCH = 8192  # images embedded, or samples read from a field, at a time


@dataclass
class Embeddings:
    """Penultimate features (and logits, when the model has a head) of a view's samples, and their origin."""

    features: Rows  # rows on disk for computed or stored embeddings: read a class at a time
    logits: Optional[Rows]
    info: dict
    write: bool  # store them in the field (it is absent, or ours and may be replaced)


def logits_field(embeddings_field: str) -> str:
    return f"{embeddings_field}_logits"


def model_settings(model: Any, weights: Optional[str], teacher_epochs: int) -> dict:
    """What identifies embeddings: the model, and its weights or training epochs."""
    if not isinstance(model, str):
        return {"model": f"{type(model).__module__}.{type(model).__qualname__}"}
    if model == "imagenet_resnet18":
        return {"model": model}
    return {"model": model, **({"weights": str(weights)} if weights else {"teacher_epochs": teacher_epochs})}


def field_owner(dataset: fo.Dataset, field: str) -> str:
    """``absent``, ``ours`` (written by this plugin) or ``user``."""
    if not dataset.has_sample_field(field):
        return "absent"
    info = dataset.get_field(field).info or {}
    legacy = "model" in info and dataset.has_sample_field(logits_field(field))
    return "ours" if info.get("plugin") == PLUGIN or legacy else "user"


@dataclass(frozen=True)
class Request:
    """Embeddings as :func:`~fiftyone_condense.api.compute_embeddings` was asked for them."""

    model: Any
    field: str
    label_field: str
    train_view: Optional[Collection]
    weights: Optional[str]
    teacher_epochs: int
    device: str
    seed: int
    overwrite: bool
    reading: Reading


def run(view: Collection, request: Request, progress: Progress) -> str:
    """Validate, compute (or reuse) the view's embeddings, then write the field in one transaction."""
    require_samples(view)
    check_label_field(view, request.label_field)
    with claimed(view._dataset, field_key(request.field)) as (entry,):  # the field is checked under the claim
        embeddings = embeddings_for(
            view, request.field, request.label_field, class_names(view, request.label_field), request.model,
            request.weights, request.teacher_epochs, resolve_device(request.device), request.seed, progress,
            request.reading, train_view=request.train_view, overwrite=request.overwrite, strict=True)
        with Transaction(entry) as transaction:
            write(transaction, view, request.field, embeddings)
    progress.stage("done", 0.95, 1.0)(1.0)
    return request.field


def embeddings_for(
    view: Collection, field: str, label_field: str, classes: list[str], model: Any, weights: Optional[str],
    teacher_epochs: int, device: torch.device, seed: int, progress: Progress, reading: Reading, *,
    train_view: Optional[Collection] = None, overwrite: bool = False, strict: bool = False,
) -> Embeddings:
    """The view's embeddings in ``field`` when they can be trusted, else computed (not yet written).

    ``strict`` (compute_embeddings): a field of another model or the user's is an error rather
    than embeddings computed for this run only.
    """
    dataset = view._dataset
    owner = field_owner(dataset, field)
    wanted = model_settings(model, weights, teacher_epochs)
    if owner == "user":
        if strict:
            raise CondensationError(f"Field {field!r} was not written by fiftyone-condense and is never overwritten; "
                                    "choose another embeddings_field.")
        return existing_embeddings(view, field)
    if owner == "ours" and not overwrite:
        info = dict(dataset.get_field(field).info or {})
        same = all(info.get(key) == value for key, value in wanted.items()) and isinstance(model, str)
        if same and _complete(view, field):
            return Embeddings(*_stored(view, field), {**info, "source": "reused"}, False)
        if not same and strict:
            raise CondensationError(
                f"Field {field!r} holds embeddings of another model ({ {k: info.get(k) for k in wanted} }, not {wanted}); "
                "pass overwrite=True or another embeddings_field.")
        may_write = same
    else:
        may_write = True
    embeddings = compute(view, label_field, classes, model, weights, teacher_epochs, device, seed, progress,
                         reading.fixed(view), train_view)
    embeddings.write = may_write
    return embeddings


def existing_embeddings(view: Collection, field: str) -> Embeddings:
    """A user's embeddings field (e.g. from fiftyone.brain or a zoo model), read as it is."""
    missing = len(view.exists(field, False))
    if missing:
        raise CondensationError(f"{missing} samples of the view have no {field!r}; compute it for all of them "
                                "(e.g. view.compute_embeddings(model, embeddings_field=...)) or choose another field.")
    features, logits = _stored(view, field)
    return Embeddings(features, logits, {"field": field, "source": "existing field", "model": "user"}, False)


def _complete(view: Collection, field: str) -> bool:
    return len(view.exists(field, False)) == 0 and len(view.exists(logits_field(field), False)) == 0


def _stored(view: Collection, field: str) -> tuple[RowStore, Optional[RowStore]]:
    """A field's vectors (and logits), read in batches of samples into row stores on disk."""
    ids = view.values("id")
    has_logits = view._dataset.has_sample_field(logits_field(field)) and not len(view.exists(logits_field(field), False))

    def rows(name: str) -> RowStore:
        return RowStore.of(np.stack([np.asarray(v, dtype=np.float32).ravel()
                                     for v in view._dataset.select(ids[start:start + STREAM_BATCH], ordered=True).values(name)])
                           for start in range(0, len(ids), STREAM_BATCH))

    return rows(field), rows(logits_field(field)) if has_logits else None


def compute(view: Collection, label_field: str, classes: list[str], model: Any, weights: Optional[str],
            teacher_epochs: int, device: torch.device, seed: int, progress: Progress, reading: Reading,
            train_view: Optional[Collection] = None) -> Embeddings:
    """Embeddings of the view from ``model``: a name (trained / pretrained, cached) or a model object;
    images are read in batches at ``reading``'s format."""
    if isinstance(model, fo.core.models.Model):
        features = view.compute_embeddings(model, progress=False)
        return Embeddings(np.asarray(features, dtype=np.float32).reshape(len(view), -1), None,
                          model_settings(model, weights, teacher_epochs), True)
    if isinstance(model, torch.nn.Module):
        images = reading.load(view, label_field, classes, progress.stage("checking images", 0.0, 0.3))
        features, logits = streamed(lambda part, report: _module_outputs(model, part, device, report),
                                    as_rgb(images.floats()), progress.stage("embedding", 0.3, 0.95))
        return Embeddings(features, logits, model_settings(model, weights, teacher_epochs), True)
    net, normalizer, info = embedding_model(train_view if train_view is not None else view, model, label_field, classes,
                                            weights, teacher_epochs, device, seed, progress, reading)
    images = reading.load(view, label_field, classes, progress.stage("checking images", 0.4, 0.5))
    features, logits = embedded(net, normalizer, images.floats(), device, progress.stage("embedding", 0.5, 0.95))
    return Embeddings(features, logits, {**info, "classes": classes, "source": "computed"}, True)


def streamed(outputs: Callable, images: ImagesLike, progress: ProgressFn) -> tuple[RowStore, Optional[RowStore]]:
    """``outputs(part, progress)`` → (features, logits or None) over ``STREAM_BATCH`` images at a
    time, kept in row stores on disk: memory holds one part, whatever the view's size."""
    features, logits = RowStore(), None
    for start in range(0, len(images), STREAM_BATCH):
        part = subset(images, slice(start, start + STREAM_BATCH))
        done = lambda fraction, message, start=start, n=len(part): progress(  # noqa: E731
            (start + fraction * n) / len(images), f"{start + int(fraction * n)}/{len(images)} images")
        part_features, part_logits = outputs(part, done)
        features.append(part_features)
        if part_logits is not None:
            logits = logits or RowStore()
            logits.append(part_logits)
        del part_features, part_logits
        release_free_memory()
    return features, logits


def embedded(net: torch.nn.Module, normalizer: Normalizer, images: ImagesLike, device: torch.device,
             progress: ProgressFn) -> tuple[RowStore, RowStore]:
    """(features, logits) of ``net`` on ``images``, streamed (see :func:`streamed`); under a launcher's
    team each process embeds its share of every part."""
    return streamed(lambda part, report: current_team().run(embed_images, net, normalizer, part, device=device,
                                                            local={"progress": report}), images, progress)


def _module_outputs(module: torch.nn.Module, images: torch.Tensor, device: torch.device,
                    progress: ProgressFn) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """A user's torch model on [0, 1] RGB batches: its ``embed`` and ``classifier`` when it has them
    (then logits too), else its output as features."""
    if hasattr(module, "embed") and hasattr(module, "classifier"):
        features, logits = predict(module, images, device, progress=progress)
        return features.numpy(), logits.numpy()
    module = module.to(device).eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(images), 256):
            outputs.append(module(images[start:start + 256].to(device)).flatten(1).float().cpu())
            progress(min(1.0, (start + 256) / len(images)), "embedding")
    return torch.cat(outputs).numpy(), None


def write(transaction: Transaction, view: Collection, field: str, embeddings: Embeddings) -> None:
    """Store embeddings (and logits) marked as this plugin's, with the model and settings they came from."""
    if not embeddings.write:
        return
    info = {**embeddings.info, "plugin": PLUGIN, "source": "computed"}
    transaction.set_field(view, field, embeddings.features, info)
    if embeddings.logits is not None:
        transaction.set_field(view, logits_field(field), embeddings.logits, info)


def embedding_model(
    train_view: Collection, model: str, label_field: str, classes: list[str], weights: Optional[str],
    teacher_epochs: int, device: torch.device, seed: int, progress: Progress, reading: Reading,
) -> tuple[torch.nn.Module, Normalizer, dict]:
    """A trained (cached) teacher; ResNet-18 ImageNet weights with a linear probe (``weights=``);
    or, ``imagenet_resnet18``, DC3's ImageNet ResNet-18 with an untrained head."""
    if model not in EMBEDDING_MODELS:
        raise CondensationError(f"Unknown embedding model {model!r}; choose one of {EMBEDDING_MODELS} or pass a model object")
    train = reading.load(train_view, label_field, classes, progress.stage("checking source images", 0.0, 0.1))
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
        normalizer = Normalizer.identity(train.shape[0])
        features, _ = embed_images(net, normalizer, train.floats(), device, progress=progress.stage("probe features", 0.1, 0.4))
        fit_linear_probe(net.classifier, features, train.labels, seed=seed)  # ResNet features: 512 per image
        return net, normalizer, {"model": model, "weights": str(weights)}
    net, normalizer, path = trained_teacher(train, TeacherConfig(arch=model, epochs=teacher_epochs), train_view,
                                            label_field, device, seed, progress.stage(f"training {model} teacher", 0.1, 0.4))
    return net, normalizer, {"model": model, "teacher_epochs": teacher_epochs, "teacher": str(path)}


def trained_teacher(images: ImageSet, config: TeacherConfig, train_view: Collection, label_field: str,
                    device: torch.device, seed: int, progress: ProgressFn, kind: str = "teachers"):
    """``config.arch`` trained on ``images`` once and cached (keyed by data and settings): (net, normaliser, path)."""
    meta = {
        "dataset": train_view._dataset.name, "label_field": label_field, "classes": images.classes,
        "channels": int(images.shape[0]), "num_classes": len(images.classes),
        "image_size": list(images.shape[-2:]), "train_ids": digest(sorted(images.ids)), "seed": seed,
    }
    path = cached_path(kind, {"config": asdict(config), **meta})
    checkpoint = load_cached(path)
    if checkpoint is not None:
        net, normalizer = load_teacher(checkpoint)
    else:
        net, normalizer = train_teacher(images.floats(), images.labels, len(images.classes), config, device, seed, progress)
        save_atomically(teacher_checkpoint(net, normalizer, config, meta), path)
    return net, normalizer, path
