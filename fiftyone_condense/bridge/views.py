"""Reading from FiftyOne: label fields, classes, splits, images (as :class:`Reading` says) and embeddings as tensors."""

from __future__ import annotations

import os
import re
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Union

import fiftyone as fo
import numpy as np
import torch
from PIL import Image

from ..algorithms.errors import CondensationError
from ..algorithms.loader import (
    RESIZE_MODES, WHITE, ImageFiles, ImageFormat, ImagesLike, LazyImages, image_cache, release_free_memory,
)
from ..algorithms.params import param
from ..algorithms.progress import ProgressFn, silent

DEFAULT_LABEL_FIELD = "ground_truth"
DEFAULT_SOURCE_SPLIT = "train"
DEFAULT_EVAL_SPLIT = "test"
DEFAULT_EMBEDDINGS_FIELD = "condense_embedding"
MAX_DEFAULT_SIZE = 128  # the largest working resolution of the papers (ImageNet subsets)
Collection = fo.core.collections.SampleCollection


@dataclass(frozen=True)
class Reading:
    """How a capability reads images: the working format asked for (``None``: from the images'
    metadata) and the bound of the decoded-image cache in bytes (``None``: the default, 0: off).

    Its fields are the reading parameters every SDK function takes and every form offers, declared
    here only (:func:`~fiftyone_condense.algorithms.params.declared`)."""

    image_size: Union[int, tuple[int, int], None] = param(
        None, "Images are resized (short side, centre crop) to this many pixels a side, or to (height, width); "
        "empty: their own size, or the most common size up to 128 px when sizes differ",
        label="Working size (optional)", min=1)
    channels: Optional[int] = param(None, "1: grey, 3: RGB; empty: RGB when any image has colour",
                                    label="Channels (optional)", choices=(1, 3))
    resize: str = param("crop", "crop: short side to size, centre crop; letterbox: fit inside, pad with the background",
                        label="Resize", choices=RESIZE_MODES)
    background: tuple[int, int, int] = param(WHITE, "RGB colour that alpha is composited on and letterboxing pads with",
                                             form=False)
    cache_bytes: Optional[int] = param(None, "Bound of the decoded-image cache in bytes; empty: "
                                       "$FIFTYONE_CONDENSE_CACHE_BYTES or 1 GiB, 0: off", min=0, form=False)
    format: Optional[ImageFormat] = None  # once decided for a run, every read uses it
    reason: str = ""

    def fixed(self, view: Collection) -> "Reading":
        """This reading with its format decided for ``view`` (from its metadata unless already fixed)."""
        if self.format is not None:
            return self
        fmt, reason = image_format(view, self.image_size, self.channels, self.resize, self.background)
        return replace(self, format=fmt, reason=reason)

    def with_format(self, fmt: ImageFormat) -> "Reading":
        return replace(self, format=fmt, reason="")

    def recorded(self) -> dict:
        """The working format as a run records it."""
        return {**self.format.as_dict(), **({"reason": self.reason} if self.reason else {})}

    def load(self, view: Collection, label_field: str, classes: Optional[list[str]],
             progress: ProgressFn = silent, verify: bool = True) -> ImageSet:
        """The view's images at the fixed format, read lazily; ``verify`` decodes every file once
        first (in batches, filling the cache) so an undecodable one stops the run before it computes."""
        images = load_images(view, label_field, classes, self.fixed(view).format, self.cache_bytes)
        if verify and isinstance(images.pixels, LazyImages):
            total = len(images.pixels)
            for start in range(0, total, 1024):
                images.pixels.files.read(images.pixels.rows[start:start + 1024])
                progress(min(1.0, (start + 1024) / total), f"checked {min(total, start + 1024)}/{total} images")
            release_free_memory()
        return images


@dataclass
class ImageSet:
    """A view's images (floats in [0, 1], read lazily at one format) with their labels and sample ids."""

    ids: list[str]
    pixels: ImagesLike
    labels: torch.Tensor
    classes: list[str]

    def floats(self) -> ImagesLike:
        """Pixels as float32 in [0, 1], lazily read when the set was loaded from files."""
        return self.pixels

    def tensor(self) -> torch.Tensor:
        """All pixels in memory (for sets known to be small: a condensed set, a selection)."""
        return self.pixels.tensor() if isinstance(self.pixels, LazyImages) else self.pixels

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width)."""
        return tuple(self.pixels.shape[1:])


def require_samples(view: fo.core.collections.SampleCollection, what: str = "view") -> None:
    """The view must be an image collection with samples."""
    require_images(view)
    if len(view) == 0:
        raise CondensationError(f"The {what} is empty: there is nothing to condense or evaluate.")


def require_images(collection: fo.core.collections.SampleCollection) -> None:
    """Only image datasets are condensed: video, grouped and 3D datasets are refused up front."""
    media_type = collection.media_type
    if media_type != fo.core.media.IMAGE:
        raise CondensationError(
            f"{collection._dataset.name!r} is a {media_type} dataset; fiftyone-condense works on image datasets only "
            "(for a grouped dataset, pass one image slice: dataset.select_group_slices('<slice>'))."
        )


def classification_fields(view: fo.core.collections.SampleCollection) -> list[str]:
    """Names of the view's ``fo.Classification`` fields."""
    return sorted(
        name
        for name, field in view.get_field_schema().items()
        if isinstance(field, fo.EmbeddedDocumentField) and issubclass(field.document_type, fo.Classification)
    )


def check_label_field(view: fo.core.collections.SampleCollection, label_field: str) -> None:
    """The field must exist, hold ``fo.Classification`` labels, and label every sample."""
    schema = view.get_field_schema()
    choices = classification_fields(view)
    if label_field not in schema:
        raise CondensationError(
            f"The dataset has no field {label_field!r}. Classification fields: {choices or 'none'}."
        )
    if label_field not in choices:
        found = getattr(schema[label_field], "document_type", type(schema[label_field])).__name__
        raise CondensationError(
            f"Field {label_field!r} holds {found}, not fo.Classification labels; condensation needs "
            f"one class label per image. Classification fields: {choices or 'none'}."
        )
    unlabeled = len(view.exists(label_field, False)) + len(view.exists(f"{label_field}.label", False))
    if unlabeled:
        raise CondensationError(
            f"{unlabeled} samples have no label in {label_field!r}; label them or exclude them from the view."
        )


POOL = "(unlabeled pool)"  # the one group of a view selected without labels (``label_field=None``)


def class_names(view: fo.core.collections.SampleCollection, label_field: Optional[str]) -> list[str]:
    """The dataset's classes for the field: declared ones, else every label seen in the dataset
    (an unlabeled pool: one group, :data:`POOL`)."""
    if label_field is None:
        return [POOL]
    dataset = view._dataset
    declared = dataset.classes.get(label_field) or dataset.default_classes
    seen = set(dataset.distinct(f"{label_field}.label"))
    if declared and seen <= set(declared):
        return list(declared)
    return sorted(seen)


def split_view(collection: fo.core.collections.SampleCollection, tag: str) -> fo.DatasetView:
    """The samples tagged ``tag``; an empty split is an error."""
    view = collection.match_tags(tag)
    if len(view) == 0:
        tags = sorted(collection.distinct("tags"))
        raise CondensationError(f"No samples are tagged {tag!r}. Tags present: {tags or 'none'}.")
    return view


def labels_of(view: fo.core.collections.SampleCollection, label_field: Optional[str], classes: list[str]) -> np.ndarray:
    """Each sample's class index in ``classes`` (an unlabeled pool: all 0), in the view's order."""
    if label_field is None:
        return np.zeros(len(view), dtype=np.int64)
    index = {name: i for i, name in enumerate(classes)}
    return np.array([index[label] for label in view.values(f"{label_field}.label")], dtype=np.int64)


def check_media(filepaths: list[str]) -> None:
    """Every image file must exist."""
    missing = [path for path in filepaths if not os.path.isfile(path)]
    if missing:
        raise CondensationError(
            f"{len(missing)} image files are missing, for example {missing[:3]}. "
            "Restore them or exclude those samples from the view."
        )


def _shape_from_header(path: str) -> tuple[int, int, int]:
    """(height, width, channels) from a file's header, as FiftyOne's metadata records them."""
    metadata = fo.ImageMetadata.build_for(path)
    return metadata.height, metadata.width, metadata.num_channels


def _header_or_none(path: str) -> Optional[tuple[int, int, int]]:
    try:
        return _shape_from_header(path)
    except Exception:  # noqa: BLE001 (PIL and FiftyOne raise many kinds for unreadable files)
        return None


def image_shapes(view: fo.core.collections.SampleCollection) -> list[tuple[int, int, int]]:
    """(height, width, channels) of every image, from FiftyOne ``metadata``; where it is missing it
    is computed from the file headers (nothing is decoded, nothing is written to the dataset).
    Missing files and files that are not readable images are a ``CondensationError``."""
    filepaths, heights, widths, channels = view.values(
        ["filepath", "metadata.height", "metadata.width", "metadata.num_channels"], _allow_missing=True)
    check_media(filepaths)
    unknown = [i for i, (h, w) in enumerate(zip(heights, widths)) if not h or not w]
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        headers = list(pool.map(_header_or_none, [filepaths[i] for i in unknown]))
    unreadable = [filepaths[i] for i, header in zip(unknown, headers) if header is None]
    if unreadable:
        raise CondensationError(
            f"{len(unreadable)} image files cannot be decoded (not a readable image format), for example "
            f"{unreadable[:3]}. Replace or convert them (PNG, JPEG, ...) or exclude those samples from the view.")
    for i, (height, width, count) in zip(unknown, headers):
        heights[i], widths[i], channels[i] = height, width, count
    return [(int(h), int(w), int(c or 3)) for h, w, c in zip(heights, widths, channels)]


def most_common_size(sizes: Counter) -> tuple[tuple[int, int], int]:
    """The most frequent (height, width); among sizes as frequent (every image its own size, say),
    the one of median area, so the choice does not depend on the order of the samples."""
    top = max(sizes.values())
    tied = sorted((size for size, count in sizes.items() if count == top), key=lambda s: (s[0] * s[1], s))
    return tied[(len(tied) - 1) // 2], top


def image_format(view: Collection, image_size: Union[int, tuple[int, int], None], channels: Optional[int], resize: str,
                 background: tuple[int, int, int]) -> tuple[ImageFormat, str]:
    """The working format of a view and why: ``image_size`` / ``channels`` when given; else the
    images' one size, or the most common size scaled down to at most ``MAX_DEFAULT_SIZE`` pixels
    a side when they differ; 3 channels when any image has colour (or alpha), else 1."""
    shapes = image_shapes(view)
    sizes = Counter((h, w) for h, w, _ in shapes)
    colour = any(c >= 3 for _, _, c in shapes)
    channels = channels or (3 if colour else 1)
    reasons = []
    if image_size is None:
        (height, width), count = most_common_size(sizes)
        scale = min(1.0, MAX_DEFAULT_SIZE / max(height, width))
        image_size = (max(1, round(height * scale)), max(1, round(width * scale)))
        if len(sizes) > 1 or scale < 1:
            reasons.append(
                f"images come in {len(sizes)} sizes (most common {height}×{width}, {count} of {len(shapes)}"
                f"{', of median area among those as common' if len([c for c in sizes.values() if c == count]) > 1 else ''}); "
                f"working at {image_size[0]}×{image_size[1]} ({resize}), that size"
                f"{f' scaled to at most {MAX_DEFAULT_SIZE} px' if scale < 1 else ''}. Pass image_size= to choose another")
    if len({c >= 3 for _, _, c in shapes}) > 1 and channels == 3:
        reasons.append("grey and colour images are mixed; grey ones are converted to RGB")
    fmt = ImageFormat(image_size, channels, resize, background)
    message = "; ".join(reasons)
    if message:
        warnings.warn(message, stacklevel=3)
    return fmt, message


def load_images(view: fo.core.collections.SampleCollection, label_field: str, classes: Optional[list[str]],
                fmt: ImageFormat, cache_bytes: Optional[int] = None) -> ImageSet:
    """The view's images (read lazily, at ``fmt``) and labels, in the view's order."""
    require_samples(view)
    if label_field is not None:
        check_label_field(view, label_field)
    classes = classes or class_names(view, label_field)
    ids, filepaths = view.values(["id", "filepath"])
    check_media(filepaths)
    pixels = LazyImages(ImageFiles(filepaths, fmt, image_cache(cache_bytes)))
    return ImageSet(ids, pixels, torch.from_numpy(labels_of(view, label_field, classes)), classes)


def media_root(view: Collection) -> Path:
    """The deepest folder holding all of ``view``'s media (FiftyOne's default dataset folder when it has none)."""
    folders = sorted({os.path.dirname(path) for path in view.values("filepath")})
    return Path(os.path.commonpath(folders)) if folders else Path(fo.config.default_dataset_dir)


def output_root(view: Collection) -> Path:
    """The folder beside ``view``'s media that runs write their new media under by default."""
    return media_root(view).parent / "condense"


def media_dir_beside(view: Collection, run_key: str) -> Path:
    """Default folder for a run's new media: ``<parent of the source media>/condense/<dataset>/<run_key>``.

    The dataset's name is part of the path so clones that share media never collide.
    """
    return output_root(view) / re.sub(r"[^\w.-]+", "-", view._dataset.name) / run_key


def write_pngs(images: torch.Tensor, paths: list) -> None:
    """Save float images (N, C, H, W) in [0, 1] as 8-bit PNG files (grey or RGB)."""
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for array, path in zip(pixels, paths):
        Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)
