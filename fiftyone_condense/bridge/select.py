"""Selection runs: embed what the method needs, pick per class, record the picks as a run."""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Optional

import fiftyone as fo
import numpy as np

from ..algorithms.device import resolve_device
from ..algorithms.distillation.palette import median_cut
from ..algorithms.errors import CondensationError
from ..algorithms.loader import image_cache, materialised
from ..algorithms.params import resolve
from ..algorithms.progress import Progress
from ..algorithms.selection import (
    METHODS, feature_gram, gradient_gram, select_per_class, small_class_report,
)
from ..algorithms.selection.gram import FactoredGram, loss_gradients
from ..algorithms.teachers import Normalizer, TeacherConfig, load_vae, vae_latents
from . import embed as stored
from .lifecycle import RunRequest, begin, claimed_run, fields_claimed, record, versions
from .records import PLUGIN, RunRecord, config_for, run_config, run_tag
from .views import ImageSet, Reading, class_names, labels_of

Collection = fo.core.collections.SampleCollection
_log = logging.getLogger(__name__)


@dataclass
class SelectionPlan:
    """A computed selection, not yet written: picked sample ids, config, timings, embeddings to store,
    the view's per-sample scores (with ``scores_field``) and the replaced run's scores field."""

    ids: list[str]
    config: dict
    timings: dict
    writes: list[tuple[str, stored.Embeddings]]
    scores: Optional[np.ndarray] = None
    replaced_scores: Optional[str] = None


def method_params(method: str, given: dict) -> dict:
    """The method's declared parameters: ``given`` checked, the rest at their defaults."""
    if method not in METHODS:
        raise CondensationError(f"Unknown selection method {method!r}; choose one of {sorted(METHODS)}")
    return resolve(method, METHODS[method].params, given)


def run(view: Collection, request: RunRequest, progress: Progress) -> RunRecord:
    """Validate, claim the key, plan in memory, then tag the picks and record the run (all-or-nothing)."""
    begin(view, request.label_field)
    with claimed_run(view._dataset, request.run_key, request.overwrite) as entry:
        plan = plan_selection(view, request, progress)
        fields = fields_claimed(view._dataset, [field for field, _ in plan.writes])

        def write(transaction) -> dict:
            for field, embeddings in plan.writes:
                stored.write(transaction, view, field, embeddings)
            if plan.scores is not None:
                write_scores(transaction, view, plan)
            if plan.replaced_scores and plan.replaced_scores != request.scores_field:
                transaction.drop_field_on_commit(plan.replaced_scores)
            transaction.tag(plan.ids, run_tag(request.run_key))
            return {"selected_ids": plan.ids, "timings": plan.timings, "num_samples": len(plan.ids),
                    "small_classes": plan.config["small_classes"]}

        with fields:  # one writer per embeddings field
            return record(view, entry, config_for("selection", **plan.config), write)


def plan_selection(view: Collection, request: RunRequest, progress: Progress) -> SelectionPlan:
    """Validate, embed and select in memory; nothing is written."""
    method, budget, label_field, seed = request.method, request.budget, request.label_field, request.seed
    params = method_params(method, request.params)
    if label_field is None:
        check_unlabeled(method, params, budget)
    replaced_scores = check_scores_field(view, request, params)
    classes = class_names(view, label_field)
    labels = labels_of(view, label_field, classes)
    budgets = budget.per_class(labels, classes, request.small_classes)
    ipc = int(budgets.max())
    reading = request.reading.fixed(view)
    started = time.perf_counter()
    if not METHODS[method].needs_embeddings and method != "autopalette_init":
        reading.load(view, label_field, classes, progress.stage("checking images", 0.0, 0.9))
    inputs = SelectionInputs(view, label_field, classes, labels, params, resolve_device(request.device), seed, progress,
                             reading)
    inputs.prepare(method)
    embedded = time.perf_counter()
    picks, scores = select_per_class(method, labels, ipc, inputs.of_class, seed, METHODS[method].pick_params(params),
                                     progress.stage(f"selecting ({method})", 0.9, 1.0), budgets,
                                     scored=request.scores_field is not None)
    ids = view.values("id")
    finished = time.perf_counter()
    writes = [(field, e) for field, e in inputs.writes if e.write]
    config = {
        "method": method, "ipc": budget.ipc or per_class_mean(budgets), "budget": budget.record(budgets, classes),
        "label_field": label_field,
        "embeddings_field": writes[0][0] if writes else None,
        "model": inputs.model_name(params.get("model")), "embedding": inputs.embedding if inputs.embeddings else None,
        "params": {**params, "model": inputs.model_name(params.get("model"))}, "embeddings": inputs.used,
        "fallbacks": inputs.fallbacks, "seed": seed, "classes": classes, "versions": versions(),
        "image_format": reading.recorded(),
        "small_classes": small_class_report(labels, budget.ipc or 1, classes, request.small_classes),
        "scores_field": request.scores_field,
    }
    timings = {"embeddings_s": embedded - started, "selection_s": finished - embedded, "total_s": finished - started}
    return SelectionPlan([ids[i] for i in picks], config, timings, writes, scores, replaced_scores)


UNLABELED_METHODS = tuple(name for name, spec in METHODS.items() if not spec.needs_labels)


def check_unlabeled(method: str, params: dict, budget) -> None:
    """An unlabeled pool (``label_field=None``): a method and embedding that need no labels, and a
    budget in images (one group has no "per class")."""
    if METHODS[method].needs_labels:
        raise CondensationError(f"Selection method {method!r} needs labels (it trains on them); an unlabeled pool "
                                f"(label_field=None) can use {list(UNLABELED_METHODS)}.")
    if params.get("embedding") == "gradients":
        raise CondensationError("Gradient embeddings need labels (each image's loss gradient for its class); "
                                "use embedding='features' for an unlabeled pool.")
    if budget.mode == "ipc":
        raise CondensationError("An unlabeled pool (label_field=None) has no classes for ipc to count; give "
                                "fraction= (of the view) or count= (images) instead.")


def check_scores_field(view: Collection, request: RunRequest, params: dict) -> Optional[str]:
    """Scores go to a new field (or the one the replaced run of this key wrote): never over a field
    of the user's or of another run. Returns the replaced run's scores field, if any."""
    dataset, field = view._dataset, request.scores_field
    replaced = run_config(dataset, request.run_key).get("scores_field") if (
        request.overwrite and request.run_key in dataset.list_runs()) else None
    if field is None:
        return replaced
    METHODS[request.method].require_scores()
    taken = {request.label_field, params.get("embeddings_field"), "id", "filepath", "tags", "metadata"}
    if field in taken or field.startswith("_") or (dataset.has_sample_field(field) and field != replaced):
        raise CondensationError(f"Field {field!r} is already used; scores are written to a new field so that "
                                "nothing of yours is overwritten: choose another scores_field.")
    return replaced


def write_scores(transaction, view: Collection, plan: SelectionPlan) -> None:
    """The view's scores in the run's field (NaN: no value); a field the replaced run wrote is
    rewritten on the whole dataset, so no sample keeps an old score."""
    field, config = plan.config["scores_field"], plan.config
    values = dict(zip(view.values("id"), (None if np.isnan(v) else float(v) for v in plan.scores)))
    target = view._dataset if field == plan.replaced_scores else view
    info = {"plugin": PLUGIN, "run_key": transaction.run_key, "method": config["method"],
            "score": METHODS[config["method"]].score_help}
    transaction.set_field(target, field, [values.get(i) for i in target.values("id")], info)


def per_class_mean(budgets: np.ndarray) -> float:
    """A fraction or count budget's images per class, on average over the classes kept (its IPC in plots)."""
    return round(float(budgets.sum() / max((budgets > 0).sum(), 1)), 2)


class SelectionInputs:
    """The per-class inputs a method needs (its Gram matrix, encoder features), computed once for the view."""

    def __init__(self, view, label_field, classes, labels, params, device, seed, progress: Progress, reading: Reading):
        self.view, self.label_field, self.classes, self.labels = view, label_field, classes, labels
        self.params, self.device, self.seed, self.progress, self.reading = params, device, seed, progress, reading
        self.embeddings: Optional[stored.Embeddings] = None
        self.encoder: Optional[np.ndarray] = None
        self.writes: list[tuple[str, stored.Embeddings]] = []
        self.used: dict = {}
        self.fallbacks: dict = {}
        self.embedding = "gradients" if "gradient_model" in params else params.get("embedding", "features")

    @staticmethod
    def model_name(model) -> Optional[str]:
        return model if model is None or isinstance(model, str) else stored.model_settings(model, None, 0)["model"]

    def embed(self, field: str, model, stage: tuple[float, float], weights: Optional[str] = None) -> stored.Embeddings:
        if self.label_field is None and isinstance(model, str):
            return self.existing(field)
        embeddings = stored.embeddings_for(self.view, field, self.label_field, self.classes, model, weights,
                                           self.params["teacher_epochs"], self.device, self.seed, self.progress.sub(*stage),
                                           self.reading)
        self.writes.append((field, embeddings))
        self.used[field] = {k: v for k, v in embeddings.info.items() if k != "classes"}
        return embeddings

    def existing(self, field: str) -> stored.Embeddings:
        """An unlabeled pool's embeddings: a field already computed (no labels to train a model on)."""
        if not self.view._dataset.has_sample_field(field):
            raise CondensationError(
                f"An unlabeled pool has no labels to train an embedding model on, and there is no field {field!r}: "
                "compute embeddings first (fiftyone.brain, a zoo model's view.compute_embeddings(model, "
                "embeddings_field=...), or fc.compute_embeddings on a labeled view) and pass embeddings_field=, or "
                "pass model= a torch or FiftyOne model.")
        embeddings = stored.existing_embeddings(self.view, field)
        self.used[field] = {k: v for k, v in embeddings.info.items() if k != "classes"}
        return embeddings

    def prepare(self, method: str) -> None:
        needs = METHODS[method].needs
        if method == "autopalette_init":
            self.embeddings = quantised_embeddings(self.view, self.label_field, self.classes, self.params,
                                                   self.device, self.seed, self.progress.sub(0.0, 0.9), self.reading)
        elif method == "dc3":
            self.embeddings = self._dc3_gradient_embeddings()
        elif {"gram", "gram_rows"} & set(needs):
            self.embeddings = self.embed(self.params["embeddings_field"], self.params["model"], (0.0, 0.45),
                                         self.params.get("weights"))
        if self.embedding == "gradients" and self.embeddings is not None and self.embeddings.logits is None:
            raise CondensationError(
                f"Gradient embeddings need logits, and {self.params.get('embeddings_field')!r} has none (no "
                f"'<field>_logits'); use embedding='features' or a field this plugin computed.")
        if "encoder" in needs:
            self.encoder = self._dc3_encoder()

    def of_class(self, members: np.ndarray, wanted: tuple[str, ...]) -> dict:
        inputs = {}
        e, gradients = self.embeddings, self.embedding == "gradients"
        if "gram_rows" in wanted:
            features = e.features[members]
            inputs["gram"] = FactoredGram(features, loss_gradients(e.logits[members], self.labels[members],
                                                                   self.params["gradient_loss"]) if gradients else None)
        if "gram" in wanted:
            features = e.features[members]
            inputs["gram"] = (gradient_gram(features, e.logits[members], self.labels[members], self.params["gradient_loss"])
                              if gradients else feature_gram(features))
        if "encoder" in wanted:
            inputs["encoder"] = self.encoder[members]
        return inputs

    def _dc3_gradient_embeddings(self) -> stored.Embeddings:
        """DC3's gradient model (``weights`` are the ImageNet ResNet-18's); without those weights, a
        trained ConvNet-3 (recorded in ``fallbacks``)."""
        field, model = self.params["embeddings_field"], self.params["gradient_model"]
        try:
            return self.embed(field, model, (0.0, 0.45), self.params.get("weights"))
        except CondensationError as error:
            if model != "imagenet_resnet18":
                raise
            _log.warning("DC3 gradient model: %s Using a trained convnet3 instead.", error)
            self.fallbacks["gradient_model"] = f"imagenet_resnet18 unavailable ({error}); used convnet3"
            self.params["gradient_model"] = "convnet3"
            return self.embed(field, "convnet3", (0.0, 0.45))

    def _dc3_encoder(self) -> np.ndarray:
        """Features DC3's K-means bins: VAE latents (ConvNet-3 features when the VAE is missing)."""
        model = self.params["model"]
        if model == "vae":
            latents = self._vae_latents()
            if latents is not None:
                return latents
            model = self.params["model"] = "convnet3"
        if model == self.params["gradient_model"]:
            return self.embeddings.features
        return self.embed(f"{self.params['embeddings_field']}_{model}", model, (0.45, 0.9)).features

    def _vae_latents(self) -> Optional[np.ndarray]:
        vae_model = self.params["vae_model"]
        try:
            vae = load_vae(vae_model, self.device)
        except CondensationError as error:
            _log.warning("DC3 bins: %s Binning ConvNet-3 features instead.", error)
            self.fallbacks["encoder"] = f"VAE {vae_model!r} unavailable; used convnet3 features"
            return None
        images = self.reading.load(self.view, self.label_field, self.classes, self.progress.stage("checking images", 0.45, 0.5))
        self.used["vae"] = {"model": vae_model, "size": self.params["vae_size"]}
        return vae_latents(vae, images.floats(), Normalizer.fit(images.floats()), self.params["vae_size"], self.device,
                           progress=self.progress.stage("VAE latents", 0.5, 0.9)).numpy()


def quantised_embeddings(view, label_field, classes, params: dict, device, seed, progress: Progress,
                         reading: Reading) -> stored.Embeddings:
    """AutoPalette's initialisation embeddings: features of the view's Median-Cut-quantised images
    from a ConvNet-3 trained on them (SGD lr 0.1, momentum 0.9, wd 5e-4, batch 128, constant lr).
    Images are quantised as they are read (kept in memory when they fit the cache bound)."""
    images = reading.load(view, label_field, classes, progress.stage("checking images", 0.0, 0.05))
    pixels = images.floats().map(functools.partial(median_cut_images, num_colors=params["num_colors"]))
    quantised = ImageSet(images.ids, materialised(pixels, image_cache(reading.cache_bytes).capacity),
                         images.labels, images.classes)
    config = TeacherConfig(arch="convnet3", epochs=params["teacher_epochs"], lr=0.1, batch_size=128, decay=False)
    net, normalizer, path = stored.trained_teacher(
        quantised, config, view, label_field, device, seed,
        progress.stage("training the selection network on Median-Cut images", 0.05, 0.7), kind="median-cut-teachers")
    features, logits = stored.embedded(net, normalizer, quantised.floats(), device,
                                       progress.stage("embedding quantised images", 0.7, 1.0))
    info = {"model": "convnet3", "teacher_epochs": params["teacher_epochs"], "median_cut_colors": params["num_colors"],
            "teacher": str(path)}
    return stored.Embeddings(features, logits, info, False)


def median_cut_images(images, num_colors: int):
    """Median-Cut-quantised images (a module-level function: lazy images that map it can be handed
    to other processes)."""
    return median_cut(images, num_colors)[0]
