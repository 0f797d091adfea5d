"""Evaluation: train fresh models on a condensed set, test them, and compare with cached references."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Callable, Optional

import fiftyone as fo
import numpy as np
import torch

from ..algorithms.architectures import check_network
from ..algorithms.cache import cached_path, digest, load_cached, save_atomically
from ..algorithms.device import resolve_device
from ..algorithms.distributed import current_team
from ..algorithms.errors import CondensationError
from ..algorithms.experts import Experts, train_experts
from ..algorithms.images import with_channels
from ..algorithms.loader import ImageFormat
from ..algorithms.models import build_model
from ..algorithms.params import declared, resolve
from ..algorithms.progress import Progress, ProgressFn
from ..algorithms.protocols import PROTOCOLS, AutoPaletteProtocol, Protocol, SoftProtocol, evaluate_images
from ..algorithms.ranking import dd_ranking_scores
from ..algorithms.selection.coresets import pick_random
from ..algorithms.teachers import Normalizer, TeacherConfig, load_teacher, teacher_checkpoint, train_converged_teacher
from ..algorithms.training import accuracy
from . import records as run_store
from .lifecycle import claimed
from .records import FLOATS_FIELD
from .views import (
    DEFAULT_LABEL_FIELD, ImageSet, Reading, check_label_field, class_names, labels_of, require_samples, split_view,
)

Collection = fo.core.collections.SampleCollection
REFERENCES_KEY = "condense_references"  # dataset.info entry caching reference results


@dataclass
class Request:
    """What to evaluate and how (the public function's arguments, resolved)."""

    run_key: Optional[str]
    dataset: Optional[fo.Dataset]
    label_field: Optional[str]
    protocol: str
    settings: dict
    eval_split: str
    source_split: str
    references: bool
    include_full: bool
    full_epochs: int
    float_images: bool
    seed: int
    device: str
    reading: Reading = Reading()


def protocol_settings(request: Request, epochs: Optional[int] = None) -> Protocol:
    """The protocol's settings: its declared parameters as given, the rest at its defaults
    (``epochs`` overrides, for the whole-split reference)."""
    if request.protocol not in PROTOCOLS:
        raise CondensationError(f"Unknown protocol {request.protocol!r}; choose one of {list(PROTOCOLS)}")
    settings = PROTOCOLS[request.protocol]
    names = {p.name for p in declared(settings)}
    given = {k: v for k, v in request.settings.items() if k in names and v is not None}
    values = resolve(f"the {request.protocol} protocol", declared(settings), given)
    try:
        return settings(**{**values, **({"epochs": epochs} if epochs is not None else {})})
    except ValueError as error:
        raise CondensationError(str(error)) from None


def run(view: Optional[Collection], request: Request, progress: Progress) -> dict:
    """Evaluate ``view`` (or run ``run_key``'s output); store the result on the run when there is one.
    A run's key is claimed from its first read to its stored result, so a deletion or rewrite of
    the run meanwhile is refused (and an evaluation of a run being rewritten is refused) rather
    than the evaluation reading half a run or training for a record that is gone."""
    if view is None and request.dataset is None:
        raise CondensationError("Pass a view to evaluate, or run_key with dataset=")
    dataset = request.dataset if request.dataset is not None else view._dataset
    if request.run_key is None:
        return evaluate(view, dataset, None, request, progress)
    with claimed(dataset, request.run_key) as (entry,):
        return evaluate(view, dataset, entry, request, progress)


def evaluate(view: Optional[Collection], dataset: fo.Dataset, entry, request: Request, progress: Progress) -> dict:
    """The evaluation itself; with a claimed run's ``entry``, its output and references are read from
    the run and the result is stored on it."""
    run_key, label_field = request.run_key, request.label_field
    source, recorded = None, None
    if run_key is not None:
        record = run_store.load_run(dataset, run_key)
        view, source = record.view, source_of(dataset, run_key)
        label_field = label_field or record.config.get("label_field")
        recorded = record.config.get("image_format")
    label_field = label_field or DEFAULT_LABEL_FIELD
    require_samples(view, "condensed set")
    check_label_field(view, label_field)
    settings = protocol_settings(request)
    test_view = split_view(dataset, request.eval_split)
    check_label_field(test_view, label_field)
    untested = sorted(set(view.distinct(f"{label_field}.label")) - set(test_view.distinct(f"{label_field}.label")))
    if untested:
        raise CondensationError(f"Classes {untested} of the condensed set have no images tagged {request.eval_split!r}, "
                                "so their accuracy cannot be measured; tag test images of them or evaluate a view without them.")
    overlap = set(view.values("id")) & set(test_view.values("id"))
    if overlap:
        raise CondensationError(f"{len(overlap)} samples of the condensed set are also tagged {request.eval_split!r}; "
                                "evaluation would test on training images.")
    if request.references or request.protocol in ("soft", "autopalette"):
        source = source if source is not None else split_view(dataset, request.source_split)
    reading = evaluation_reading(request.reading, view, test_view, recorded)
    evaluator = Evaluator(dataset, view, test_view, source, label_field, settings, request, progress, reading)
    output = evaluator.with_references() if request.references else evaluator.alone()
    if entry is not None:
        evaluations = {**(record.results.get("evaluation") or {}), request.protocol: output}
        run_store.save_results(entry, run_key, {**record.results, "evaluation": evaluations})
        entry.close()
    progress.stage("done", 0.99, 1.0)(1.0)
    return output


def evaluation_reading(reading: Reading, view: Collection, test_view: Collection, recorded: Optional[dict]) -> Reading:
    """One working format for the condensed set, the test split and the references: the one asked
    for, else the run's recorded one, else the condensed set's; RGB when either set has colour."""
    if reading.image_size is None and recorded:
        fmt = ImageFormat.from_dict(recorded)
        reading = reading.with_format(ImageFormat(fmt.size, reading.channels or fmt.channels, fmt.resize, fmt.background))
    fixed = reading.fixed(view)
    if reading.channels is None:
        channels = max(fixed.format.channels, reading.fixed(test_view).format.channels)
        fixed = replace(fixed, format=replace(fixed.format, channels=channels))
    return fixed


class Evaluator:
    """One evaluation: the condensed set (in memory), the test split (streamed) and the protocol,
    with its references, all read at one working format."""

    def __init__(self, dataset, view, test_view, source, label_field, settings: Protocol, request: Request,
                 progress: Progress, reading: Reading):
        self.dataset, self.source, self.label_field = dataset, source, label_field
        self.settings, self.request, self.progress, self.reading = settings, request, progress, reading
        self.device = resolve_device(request.device)
        self.classes = class_names(dataset, label_field)
        self.train = reading.load(view, label_field, self.classes, progress.stage("loading condensed set", 0.0, 0.02))
        floats = stored_floats(view, self.train) if request.float_images else None
        self.trained_on = "image files" if floats is None else f"float pixels ({FLOATS_FIELD})"
        if floats is not None:
            self.train = replace(self.train, pixels=floats)
        try:  # before any training: a network that cannot take this format stops the call here
            self.architecture = check_network(settings.arch, reading.format.channels, len(self.classes),
                                              tuple(self.train.shape[-2:]))
        except ValueError as error:
            raise CondensationError(f"the {request.protocol} protocol: {error}") from None
        self.test = reading.load(test_view, label_field, self.classes, progress.stage("checking test split", 0.02, 0.08))
        self.channels = reading.format.channels
        self.test_x = self.test.floats()
        self.header = {"protocol": settings.as_dict(), "eval_split": request.eval_split, "label_field": label_field,
                       "trained_on": self.trained_on,
                       "channels": self.channels, "image_format": reading.recorded(), "classes": self.classes}
        self.teacher, self.experts = None, None
        if request.protocol == "autopalette":
            self.experts, self.header["experts"] = palette_experts(source, label_field, self.classes, settings, self.device,
                                                                   request.seed, progress.sub(0.08, 0.2), reading)
            self.header["experts"]["test_accuracy"] = [
                float((logits.argmax(1) == self.test.labels).float().mean())
                for logits in self.experts.logits(self.test_x, self.device)]
        if request.protocol == "soft":
            self.teacher, self.header["teacher"] = soft_teacher(source, label_field, self.classes, settings, self.device,
                                                                request.seed, progress.sub(0.08, 0.2), reading)
            self.header["teacher"]["test_accuracy"] = accuracy(self.teacher, self.test.floats(), self.test.labels, self.device)

    def protocol(self, images: ImageSet, stage: ProgressFn, settings: Optional[Protocol] = None) -> dict:
        return current_team().run(evaluate_images, images.tensor(), images.labels, self.test_x, self.test.labels,
                                  len(self.classes), settings or self.settings, device=self.device,
                                  seed=self.request.seed, teacher=self.teacher, experts=self.experts,
                                  local={"progress": stage}).as_dict()

    def alone(self) -> dict:
        return {**self.header, **self.protocol(self.train, self.progress.stage("evaluating condensed set", 0.2, 0.99))}

    def with_references(self) -> dict:
        """The condensed set beside a random subset of the same size (and the whole split), both cached."""
        counts = np.bincount(self.train.labels.numpy(), minlength=len(self.classes))
        source_labels = labels_of(self.source, self.label_field, self.classes)
        if np.any(np.bincount(source_labels, minlength=len(self.classes)) < counts):
            raise CondensationError("The source split has fewer samples of some class than the condensed set")
        source_ids = self.source.values("id")
        subset_ids = [source_ids[i] for i in random_subset(source_labels, counts, self.request.seed)]
        common = {"dataset": self.dataset.name, "label_field": self.label_field, "protocol": self.settings.as_dict(),
                  "seed": self.request.seed, "channels": self.channels, "teacher": self.header.get("teacher"),
                  **({"image_format": self.reading.format.as_dict()} if self._resized() else {}),
                  "source": digest(sorted(source_ids)), "test": digest(sorted(self.test.ids))}
        random_reference = self.reference({**common, "kind": "random", "counts": counts.tolist()}, lambda: self.protocol(
            self.reading.load(self.source.select(subset_ids, ordered=True), self.label_field, self.classes),
            self.progress.stage("random reference", 0.2, 0.55)))
        same_as_reference = sorted(subset_ids) == sorted(self.train.ids)
        result = ({k: v for k, v in random_reference.items() if k not in ("kind", "source")} if same_as_reference
                  else self.protocol(self.train, self.progress.stage("evaluating condensed set", 0.55, 0.9)))
        output = {**self.header, **result, "random": random_reference,
                  "gain_over_random": result["mean"] - random_reference["mean"]}
        output["full"] = self.full_reference(common)
        if output.get("full"):
            output["fraction_of_full"] = output["mean"] / output["full"]["mean"]
            output["scores"] = dd_ranking_scores(result["accuracies"], random_reference["accuracies"],
                                                 output["full"]["accuracies"])
        return output

    def full_reference(self, common: dict) -> Optional[dict]:
        """The whole source split's result: trained when asked, else whatever is cached."""
        full_settings = protocol_settings(self.request, self.request.full_epochs)
        key = {**common, "kind": "full", "protocol": full_settings.as_dict()}
        if not self.request.include_full:
            return references(self.dataset).get(digest(key)) if self.architecture.identified else None
        return self.reference(key, lambda: self.protocol(self.reading.load(self.source, self.label_field, self.classes),
                                                         self.progress.stage("full-split reference", 0.9, 0.99),
                                                         full_settings))

    def _resized(self) -> bool:
        """Whether the working format differs from the images' own size (then it keys the references)."""
        return bool(self.reading.reason) or self.reading.image_size is not None

    def reference(self, key_parts: dict, compute: Callable[[], dict]) -> dict:
        """A cached reference result, computed once per dataset, split, size, channels and protocol.
        A callable architecture whose name does not identify it (a lambda, a nested or a script's
        function) is neither read from nor written to the cache: its references are computed anew."""
        if not self.architecture.identified:
            return {**compute(), "kind": key_parts["kind"]}
        key = digest(key_parts)
        cached = references(self.dataset).get(key)
        if cached is not None:
            return cached
        value = {**compute(), "kind": key_parts["kind"]}
        store_reference(self.dataset, key, value)
        return value


def references(dataset: fo.Dataset) -> dict:
    return dict((dataset.info or {}).get(REFERENCES_KEY, {}))


def store_reference(dataset: fo.Dataset, key: str, value: dict) -> None:
    dataset.reload()
    info = dict(dataset.info or {})
    info[REFERENCES_KEY] = {**info.get(REFERENCES_KEY, {}), key: value}
    dataset.info = info
    dataset.save()


def random_subset(labels: np.ndarray, counts: np.ndarray, seed: int) -> np.ndarray:
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


def stored_floats(view: Collection, images: ImageSet) -> Optional[torch.Tensor]:
    """The float pixels a distillation stored with its samples (``condense_floats``), in ``images``'
    order, when every sample has them at the working format; else None (the image files are used)."""
    if not view.has_field(FLOATS_FIELD):
        return None
    by_id = dict(zip(view.values("id"), view.values(FLOATS_FIELD)))
    arrays = [by_id.get(sample_id) for sample_id in images.ids]
    if any(a is None or tuple(a.shape) != images.shape for a in arrays):
        return None
    return torch.from_numpy(np.stack(arrays)).float()


def source_of(dataset: fo.Dataset, run_key: str) -> Collection:
    """The view a run was computed from; for a compensation run, its parent selection's source."""
    parent = run_store.run_config(dataset, run_key).get("parent")
    if parent and parent in run_store.list_runs(dataset):
        return source_of(dataset, parent)
    return dataset.load_run_view(run_key)


def soft_teacher(source: Collection, label_field: str, classes: list[str], settings: SoftProtocol,
                 device: torch.device, seed: int, progress: Progress, reading: Reading) -> tuple["RawTeacher", dict]:
    """The soft protocol's teacher: ``teacher_arch`` trained to convergence on the source split
    (streamed at the working format), cached."""
    images = reading.load(source, label_field, classes, progress.stage("checking source split", 0.0, 0.2))
    config = settings.teacher_config()
    meta = {"dataset": source._dataset.name, "label_field": label_field, "classes": classes, "arch": settings.teacher_arch,
            "channels": int(images.shape[0]), "num_classes": len(classes), "image_size": list(images.shape[-2:]),
            "train_ids": digest(sorted(images.ids)), "seed": seed}
    path = cached_path("soft-teachers", {"config": asdict(config), **meta})
    checkpoint = load_cached(path)
    if checkpoint is not None:
        net, normalizer = load_teacher(checkpoint)
        record = checkpoint["meta"]["training"]
    else:
        net, normalizer, record = train_converged_teacher(
            images.floats(), images.labels, len(classes), settings.teacher_arch, config, device, seed,
            progress.stage(f"training the {settings.teacher_arch} teacher to convergence", 0.2, 1.0),
        )
        teacher_config = TeacherConfig(arch=settings.teacher_arch, epochs=record["epochs"])
        save_atomically(teacher_checkpoint(net, normalizer, teacher_config, {**meta, "training": record}), path)
    return RawTeacher(net, normalizer), {"arch": settings.teacher_arch, **record}


def palette_experts(source: Collection, label_field: str, classes: list[str], settings: AutoPaletteProtocol,
                    device: torch.device, seed: int, progress: Progress, reading: Reading) -> tuple[Experts, dict]:
    """AutoPalette's experts (the role of its replay buffer), trained on the source split at the
    working format, cached as plain tensors (read back by ``load_cached``)."""
    images = reading.load(source, label_field, classes, progress.stage("checking source split", 0.0, 0.2))
    config = settings.expert_config()
    meta = {"dataset": source._dataset.name, "label_field": label_field, "classes": classes,
            "channels": int(images.shape[0]), "num_classes": len(classes), "image_size": list(images.shape[-2:]),
            "train_ids": digest(sorted(images.ids)), "seed": seed}
    path = cached_path("autopalette-experts", {"config": asdict(config), **meta})
    shape = (meta["channels"], len(classes), tuple(meta["image_size"]))
    stored = load_cached(path)
    if stored is not None:
        experts = Experts([load_state(config.arch, shape, state) for state in stored["states"]],
                          Normalizer(tuple(stored["mean"]), tuple(stored["std"])))
    else:
        experts = train_experts(images.floats(), images.labels, len(classes), config, device, seed,
                                progress.stage(f"training {config.num_experts} expert(s) as AutoPalette's buffer", 0.2, 1.0))
        save_atomically({"states": [model.state_dict() for model in experts.models],
                         "mean": list(experts.normalizer.mean), "std": list(experts.normalizer.std)}, path)
    return experts, {"arch": config.arch, "num_experts": config.num_experts, "epochs": config.epochs}


def load_state(arch: str, shape: tuple, state: dict) -> torch.nn.Module:
    model = build_model(arch, *shape)
    model.load_state_dict(state)
    return model.eval()


class RawTeacher(torch.nn.Module):
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
        return with_channels(x, self.channels)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.embed(self.normalizer(self._own_channels(x)))

    @property
    def classifier(self) -> torch.nn.Module:
        return self.net.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
