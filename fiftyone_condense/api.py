"""The Python SDK: documented signatures that each build one typed request and hand it to their
capability's module in :mod:`.bridge` (``embed``, ``select``, ``distill``, ``evaluate``, ``compensate``).

Every function validates everything it can before computing, claims its run key (a second
writer of the key is refused), computes in memory, then writes to the dataset in one journalled
transaction (:mod:`.bridge.transaction`): bad input, an exception, Ctrl-C or a killed process leave
the dataset unchanged. What a killed writer left half-written is undone (or finished) by the next
writer on the dataset when it claims its key, or on demand by :func:`recover`; reading calls
(:func:`list_runs`, :func:`load_run`, :func:`color_stats`) only read.
Method-specific parameters are ``**params``, checked against each method's declaration
(:func:`method_parameters`); an unknown or out-of-range one raises :class:`CondensationError`.

.. _reading:

Reading images. Every function works at one *working format*: ``image_size`` (an int or
``(height, width)``) and ``channels`` (1 or 3). By default both come from FiftyOne's ``metadata``
(computed from the file headers where missing, and not written): the images' own size when they
share one, else the most common size scaled to at most 128 px a side (a warning says so), and 3
channels when any image has colour. Files are converted as torchvision users expect: 16-bit
scaled to 8, alpha composited on ``background``, grey repeated to RGB, and resized with
antialiasing, short side to size then centre-cropped (``resize="crop"``) or letterboxed
(``"letterbox"``, padded with ``background``). They are read in batches through a process-wide
cache of decoded images bounded to ``cache_bytes`` (default ``$FIFTYONE_CONDENSE_CACHE_BYTES`` or
1 GiB; 0 turns it off), never all at once. These keywords are declared once, as the fields of
:class:`~fiftyone_condense.bridge.views.Reading`, and added to each function's signature from there.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional, Union

import fiftyone as fo

from .algorithms.budgets import ALLOCATIONS, budget_of  # noqa: F401  (the forms offer and parse budgets)
from .algorithms.cache import cache_dir  # noqa: F401  (the forms allow paths under it)
from .algorithms.color import BACKENDS, COMBINE_MODES  # noqa: F401  (the compensation form offers them)
from .algorithms.color.diffusion import DiffusionSettings
from .algorithms.distillation import METHODS as DISTILLATION_METHODS
from .algorithms.distillation import images_per_class  # noqa: F401  (public: the images a distillation makes)
from .algorithms.errors import CondensationError
from .algorithms.params import Param, declared, resolve, takes
from .algorithms.progress import ProgressFn
from .algorithms.protocols import PROTOCOLS, protocol_parameters  # noqa: F401  (the forms offer them)
from .algorithms.selection import METHODS
from .bridge import compensate as compensation
from .bridge import distill as distillation
from .bridge import embed as embedding
from .bridge import evaluate as evaluation
from .bridge import records as run_store
from .bridge.records import SYNTHETIC_TAG, scores_field_name  # noqa: F401  (the forms find the source media by it)
from .bridge import recovery, renaming
from .bridge import select as selection
from .bridge.lifecycle import (  # noqa: F401  (check_run_key: the forms check run keys as the SDK does)
    RunRequest, check_run_key, check_run_key_free, check_run_key_name, claimed, default_run_key, reporter,
)
from .bridge.views import (  # noqa: F401  (classification_fields: the forms' label field choices)
    DEFAULT_EMBEDDINGS_FIELD, DEFAULT_EVAL_SPLIT, DEFAULT_LABEL_FIELD, DEFAULT_SOURCE_SPLIT, Reading,
    classification_fields,
)
from .bridge.views import media_root, output_root  # noqa: F401  (the forms allow paths under them)

Collection = fo.core.collections.SampleCollection
RunRecord = run_store.RunRecord
DeleteReport = run_store.DeleteReport
RecoveryReport = recovery.RecoveryReport
logger = logging.getLogger(__name__)
SCORES = {name: spec.score_help for name, spec in METHODS.items() if spec.score}  # what scores_field holds, per method


def reads_images(function: Callable) -> Callable:
    """The reading keywords (:class:`Reading`'s declared fields) as one ``reading``."""
    return takes(declared(Reading), "reading", lambda given: Reading(**given))(function)


def reading_parameters() -> tuple[Param, ...]:
    """The reading parameters every function takes (the forms offer those marked ``form``)."""
    return declared(Reading)


def compensation_parameters() -> tuple[Param, ...]:
    """The editing parameters of :func:`compensate` (most apply to the diffusion backend only)."""
    return declared(DiffusionSettings)


def method_parameters(kind: str, method: str) -> tuple[Param, ...]:
    """The parameters ``method`` declares: ``kind`` is ``"selection"`` or ``"distillation"``."""
    registry = {"selection": {name: spec.params for name, spec in METHODS.items()},
                "distillation": {name: declared(d.Settings) for name, d in DISTILLATION_METHODS.items()}}
    if kind not in registry or method not in registry[kind]:
        raise CondensationError(f"No {kind} method {method!r}")
    return registry[kind][method]


@reads_images
def compute_embeddings(
    view: Collection,
    model: Any = "convnet3",
    embeddings_field: str = DEFAULT_EMBEDDINGS_FIELD,
    label_field: str = DEFAULT_LABEL_FIELD,
    train_view: Optional[Collection] = None,
    weights: Optional[str] = None,
    teacher_epochs: int = 2,
    device: str = "auto",
    seed: int = 0,
    overwrite: bool = False,
    progress: Optional[ProgressFn] = None,
    *,
    reading: Reading,
) -> str:
    """Store penultimate features (``embeddings_field``) and logits (``<field>_logits``).

    ``model`` is ``convnet3`` or ``resnet18`` — a teacher trained on ``train_view`` (default: the
    view itself; cached so it trains once per dataset, split and settings), or with ``weights=``
    a local torchvision ResNet-18 ImageNet checkpoint with a linear probe fitted on
    ``train_view`` — or a model object you have: a torch module (fed [0, 1] RGB batches; its
    ``embed``/``classifier`` give features and logits when it has them, else its output is the
    features) or a FiftyOne model with embeddings. The field records the model and settings;
    it is reused when they match, replaced only with ``overwrite=True``, and a field this
    plugin did not write is never replaced. Images are read as :ref:`reading <reading>` says.
    Returns the field name.
    """
    request = embedding.Request(model, embeddings_field, label_field, train_view, weights, teacher_epochs, device, seed,
                                overwrite, reading)
    return embedding.run(view, request, reporter(progress))


@reads_images
def select(
    view: Collection,
    method: str = "random",
    ipc: Optional[int] = None,
    run_key: Optional[str] = None,
    label_field: Optional[str] = DEFAULT_LABEL_FIELD,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    small_classes: str = "error",
    progress: Optional[ProgressFn] = None,
    fraction: Optional[float] = None,
    count: Optional[int] = None,
    allocation: Optional[str] = None,
    scores_field: Union[bool, str, None] = None,
    *,
    reading: Reading,
    **params: Any,
) -> RunRecord:
    """Select real samples from ``view`` and record them as run ``run_key`` (default
    ``<method>_ipc<ipc>``, ``<method>_frac<fraction>`` (``herding_frac0_05``) or ``<method>_n<count>``): the picks get the
    tag ``condense:<run_key>`` and the saved view ``condense-<run_key>`` holds them.

    The budget is exactly one of ``ipc`` (per class; 10 when no budget is given), ``fraction`` (of
    the view) or ``count`` (in total), the last two split ``allocation="proportional"`` (the
    default: the class distribution kept) or ``"balanced"``, every class with images getting at
    least one (rounding: :mod:`fiftyone_condense.algorithms.budgets`); the run records the budget
    and its per-class numbers (``config["budget"]``).

    Methods (``fc.SELECTION_METHODS``; each one's ``**params`` in
    ``fc.method_parameters("selection", method)``): ``random``; ``herding``, ``k_center``,
    ``graph_cut`` (``lambda_``) and ``facility_location`` (submodlib, on a per-class kernel
    ``0.5 + 0.5·cos``) on ``embeddings_field`` — computed with ``model`` (``convnet3`` trained
    ``teacher_epochs`` = 2, ``resnet18``, or a model object) when absent, or any existing field —
    as ``embedding="features"`` or last-layer ``"gradients"``.

    ``dc3`` (as its reference code): bins each class by K-means (``bins``) on PCA(``pca_dim``) of
    the encoder ``model`` (``vae``: the Stable Diffusion VAE ``vae_model`` at ``vae_size`` px; or
    ``convnet3`` / ``resnet18`` features) and runs GraphCut (``lambda_``) on gradient embeddings
    (``gradient_loss``, DC3's cross-entropy of the softmax) of ``gradient_model``
    (``imagenet_resnet18``: ImageNet weights from ``weights`` or torch's hub cache, untrained head)
    inside each bin; without the VAE or the ImageNet weights it uses a trained ``convnet3`` and
    records that in the run's ``fallbacks``.

    ``autopalette_init`` (as AutoPalette's code): a ConvNet-3 trained ``teacher_epochs`` (50) on
    Median-Cut-quantised (``num_colors``) images embeds them, and GraphCut conditional gain picks
    representative images unlike the picks so far.

    A class with fewer than ``ipc`` samples is an error by default (the papers' balanced
    protocol); ``small_classes="keep_all"`` takes all of it and ``"drop"`` leaves it out, and the
    run records which classes were kept whole or dropped. Images are read as :ref:`reading
    <reading>` says; the run records the working format.

    ``scores_field`` writes each candidate's score (the method's own quantity, ``fc.SCORES``) to a
    new float field, sortable and filterable in the App: ``True`` names it
    ``condense_scores_<run_key>`` (renamed with the run), or give a name; deleting the run removes it.
    ``label_field=None`` selects from an unlabeled pool (the whole view as one group; ``fraction`` or
    ``count`` budget; ``random``, ``herding`` towards the view's mean, ``k_center``, ``graph_cut``,
    ``facility_location``) on an existing ``embeddings_field`` or a ``model`` object.
    """
    budget = budget_of(ipc, fraction, count, allocation)
    key = default_run_key(run_key, method, budget)
    request = RunRequest(method=method, budget=budget, run_key=key, label_field=label_field, seed=seed, device=device,
                         overwrite=overwrite, small_classes=small_classes, params=params, reading=reading,
                         scores_field=scores_field_name(scores_field, key))
    return selection.run(view, request, reporter(progress))


@reads_images
def distill(
    view: Collection,
    method: str = "dm",
    ipc: Optional[int] = None,
    init: Optional[str] = None,
    run_key: Optional[str] = None,
    label_field: str = DEFAULT_LABEL_FIELD,
    output_dir: Optional[str] = None,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    small_classes: str = "error",
    progress: Optional[ProgressFn] = None,
    fraction: Optional[float] = None,
    count: Optional[int] = None,
    allocation: Optional[str] = None,
    *,
    reading: Reading,
    **params: Any,
) -> RunRecord:
    """Distil synthetic images from ``view`` and record them as run ``run_key``: ``ipc`` per class,
    or as many per class as a ``fraction`` / ``count`` budget gives (as for :func:`select`; with
    AutoPalette each class's number is then its storage budget's images per class).

    Every default is the method's reference code (docs/benchmarks.md, "fidelity"); each
    method's ``**params`` are in ``fc.method_parameters("distillation", method)``. ``method``:
    ``dm`` (distribution matching: a fresh ConvNet-3 each iteration, class-mean embeddings, DSA
    shared by real and synthetic images, SGD on pixels with ``lr_img`` — 1; AutoPalette 10 from
    IPC 50, its paper's Table 9 — and ``momentum``, for ``iterations`` with ``batch_real`` real
    images per class), ``ddm`` (DM plus moments and Gram matching after every normalisation
    layer and intra-class diversity against the 2 nearest neighbours; ``moments_weight``,
    ``correlation_weight``, ``diversity_weight`` = the reference's 1e4, 1e4, 10) or
    ``autopalette`` (a palette network reduces each image to ``num_colors`` colours; task loss
    ``task`` = dm or ddm divided by the number of classes, plus maximum-colour, balance and
    Median-Cut pixel-similarity losses on 64 detached images per iteration; images stored as
    palette PNGs; ``budget`` = ``paper`` distils IPC × 2^(8 − ⌈log₂K⌉) images per class, ``bits``
    or ``count``; ``palette_warmup`` is the reference's ``--use_warmup``). Options of ours:
    ``confidence_weight``, ``normalize_palette_task``, ``mixed_precision``.
    ``init``: ``noise``, a selection method (default ``random``; ``autopalette_init`` for
    AutoPalette, its network trained ``teacher_epochs``) or a selection run key. Images are
    written under ``output_dir/<run_key>`` (default: beside the source media). Checkpoints every
    ``checkpoint_every`` iterations let an interrupted run resume. Real images are read in
    ``batch_real`` batches per class from disk (through the bounded cache), never all at once; the
    synthetic images are written at the working format (:ref:`reading <reading>`), which the run
    records. ``small_classes`` as for :func:`select` (``keep_all`` distils at most a class's size).
    """
    budget = budget_of(ipc, fraction, count, allocation)
    request = distillation.Request(
        method=method, budget=budget, run_key=default_run_key(run_key, method, budget), label_field=label_field, seed=seed,
        device=device, overwrite=overwrite, small_classes=small_classes, params=params, reading=reading, init=init,
        output_dir=output_dir)
    return distillation.run(view, request, reporter(progress))


@takes(compensation_parameters(), "settings",
       lambda given: DiffusionSettings(**resolve("compensate", compensation_parameters(), given)))
@reads_images
def compensate(
    view: Optional[Collection] = None,
    run_key: Optional[str] = None,
    backend: str = "diffusion",
    combine_mode: str = "gradient",
    parent: Optional[str] = None,
    label_field: Optional[str] = None,
    output_dir: Optional[str] = None,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    progress: Optional[ProgressFn] = None,
    *,
    settings: DiffusionSettings,
    reading: Reading,
) -> RunRecord:
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
    working format (:ref:`reading <reading>`; by default the parent selection's). The run records
    its parent run, the format and the colour statistics before and after.
    """
    request = compensation.Request(run_key, parent, label_field, backend, combine_mode, settings, reading, output_dir,
                                   seed, device, overwrite)
    return compensation.run(view, request, reporter(progress))


@takes(protocol_parameters(), "settings", dict)
@reads_images
def evaluate(
    view: Optional[Collection] = None,
    run_key: Optional[str] = None,
    dataset: Optional[fo.Dataset] = None,
    protocol: str = "hard",
    eval_split: str = DEFAULT_EVAL_SPLIT,
    source_split: str = DEFAULT_SOURCE_SPLIT,
    label_field: Optional[str] = None,
    references: bool = True,
    include_full: bool = False,
    full_epochs: int = 30,
    float_images: bool = True,
    seed: int = 0,
    device: str = "auto",
    progress: Optional[ProgressFn] = None,
    *,
    settings: dict,
    reading: Reading,
) -> dict:
    """Train ``num_models`` fresh ``arch`` networks on a condensed set and test them.

    ``arch``: ``"convnet3"`` (default), ``"resnet18"``, the papers' cross-architecture set by our
    names or the DC/DSA/DM code's (``"convnet4"`` = ``"ConvNetD4"``, ``"vgg11-bn"`` = ``"VGG11BN"``,
    ``"resnet18-in"`` = ``"ResNet18"``; case-insensitive except ``resnet18``/``ResNet18``, two
    different networks), ``"torchvision:<model>"`` (any torchvision classifier, random weights, its
    first convolution adapted to grey images), or a callable ``(channels, num_classes, (height,
    width)) -> nn.Module`` building your own network; the result records the canonical name (a
    callable as ``callable:<module>.<qualified name>``). A callable's references are cached across
    calls and sessions only when that name identifies it (a module-level function outside
    ``__main__``); a lambda's or nested function's are computed anew each call. See
    :mod:`fiftyone_condense.algorithms.architectures`.
    Pass any ``view`` of training images, or ``run_key`` (with ``dataset``, or a view of it)
    to evaluate that run's output and store the result on the run (one entry per protocol).
    A DM or Decomposed DM run stores each image's float pixels beside its PNG
    (``condense_floats``: the PNG clamps them to [0, 1] and rounds them to 8 bits, which cost
    2.8 points on the emoji benchmark); with ``float_images`` (the default) the models train on
    those, as the reference trains on its float tensor, else on the PNGs (``trained_on`` says which).
    ``protocol="hard"``: DC/DSA/DM's ``evaluate_synset`` on the labels (SGD, DSA).
    ``protocol="soft"``: RDED's validation (DC3's): soft labels of a ``teacher_arch`` teacher
    trained to convergence on the source split (at most ``teacher_epochs``; cached, its test
    accuracy reported as ``teacher``), KL at ``temperature`` on CutMixed batches, AdamW with
    RDED's schedule, ShufflePatches → RandomResizedCrop → flip; ``best_mean`` is RDED's
    best-over-epochs accuracy beside the final ``mean``. ``protocol="autopalette"``: AutoPalette's
    ``dm_quant.py`` evaluation: the hard protocol's schedule (batch 128) trained with
    SoftCrossEntropy on the logits of experts trained as its replay buffer (GSAM, ``expert_epochs``;
    cached, their test accuracies reported as ``experts``), one expert's or, with
    ``soft_labels="correct_experts"``, the mean of the ``num_experts`` that classify an image
    correctly. The test set is the samples tagged
    ``eval_split``. With ``references`` the same protocol also runs on a random class-balanced
    subset of the same size from the source split (the run's source view, else the samples
    tagged ``source_split``), and with ``include_full`` on the whole source split
    (``full_epochs`` epochs); both are cached on the dataset, keyed by every setting. All sets
    are trained with the same network at one working format: a run's own (what it recorded),
    else :ref:`reading <reading>`'s, inferred from the condensed set and the test split (grey
    images are repeated to RGB when either is colour). The test split and the whole-split
    reference are streamed in batches. Returns a dict with ``mean``, ``std``, ``accuracies``,
    ``per_class`` (in the order of ``classes``) and the references.
    """
    request = evaluation.Request(run_key, dataset, label_field, protocol, settings, eval_split, source_split, references,
                                 include_full, full_epochs, float_images, seed, device, reading)
    return evaluation.run(view, request, reporter(progress))


def color_stats(view: Collection, label_field: Optional[str] = None, points: int = 64) -> dict:
    """Colour statistics of a view's images: per-channel KDE, colourfulness, unique colours.

    The result is plain data (lists of numbers) a panel can plot; runs store it so the
    colour homogenisation of a condensed set can be compared with its source.
    """
    return compensation.color_stats(view, points)


def list_runs(dataset: fo.Dataset, kind: Optional[str] = None) -> list[str]:
    """Keys of the condensation runs on ``dataset``; ``kind``: ``selection``, ``compensation`` or
    ``distillation`` (the same as ``dataset.list_runs(type=fc.SelectionRun)`` and so on)."""
    return run_store.list_runs(dataset, kind)


def load_run(dataset: fo.Dataset, run_key: str) -> RunRecord:
    """A run's config, results (selected ids, timings, evaluations) and saved view."""
    return run_store.load_run(dataset, run_key)


def rename_run(dataset: fo.Dataset, run_key: str, new_run_key: str) -> None:
    """Give a run a new key: its record, tag, samples' ``condense_run``, saved view, scores field named
    after it and other runs' references move with it, journalled (FiftyOne's ``dataset.rename_run``
    moves the same, unjournalled): a rename killed half-way is completed by the next writer of the
    dataset (or :func:`recover`), so the run has its old name or its new one, never a mix."""
    check_run_key_name(new_run_key)  # before it names a journal entry
    with claimed(dataset, run_key, new_run_key) as entries:  # no other writer of either key meanwhile
        run_store.require_run(dataset, run_key)
        check_run_key_free(dataset, new_run_key, overwrite=False)
        renaming.rename(entries[0], new_run_key)


def delete_run(dataset: fo.Dataset, run_key: str) -> DeleteReport:
    """Remove a run and what it made: tags, saved view, synthetic samples and their media, record.
    Selected real samples themselves are untouched. What is already gone (media files, samples or
    the saved view removed or renamed by hand) is skipped and named in the returned report (and
    logged); a deletion cut short is completed by the next writer of the dataset (or :func:`recover`)."""
    with claimed(dataset, run_key) as (entry,):
        report = run_store.delete(entry)
    if report.missing:
        logger.warning("%s", report)
    return report


def recover(dataset: fo.Dataset, force: bool = False) -> RecoveryReport:
    """Undo what runs killed half-way left on ``dataset``, or finish those that had committed, from
    their journal entries, and say what was done (``print(fc.recover(dataset))``). Every function
    that writes (and so every operator's execution) does this by itself when it claims its key, and
    the panel when it loads; reads do not. A run still being written by a live process is left
    alone; so is one written from another machine (its process cannot be checked from here) unless
    ``force=True``."""
    return recovery.recover(dataset, force)
