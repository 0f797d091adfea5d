"""Reading from FiftyOne: label fields, classes, splits, images and embeddings as tensors."""

from __future__ import annotations

import os
import re
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import fiftyone as fo
import numpy as np
import torch
from PIL import Image

from ..errors import CondensationError
from ..progress import ProgressFn, chunks, silent

DEFAULT_LABEL_FIELD = "ground_truth"
DEFAULT_SOURCE_SPLIT = "train"
DEFAULT_EVAL_SPLIT = "test"
DEFAULT_EMBEDDINGS_FIELD = "condense_embedding"
GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
_IMAGE_CACHE: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
_IMAGE_CACHE_ENTRIES = 2


@dataclass
class ImageSet:
    """Images of a view as a uint8 tensor (N, C, H, W) with their labels and sample ids."""

    ids: list[str]
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def floats(self) -> torch.Tensor:
        """Pixels as float32 in [0, 1]."""
        return self.images.float().div_(255.0)


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


def class_names(view: fo.core.collections.SampleCollection, label_field: str) -> list[str]:
    """The dataset's classes for the field: declared ones, else every label seen in the dataset."""
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


def labels_of(view: fo.core.collections.SampleCollection, label_field: str, classes: list[str]) -> np.ndarray:
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


def _is_grey(image: Image.Image) -> bool:
    """Grey modes, and paletted images whose palette holds only greys (AutoPalette's grey output)."""
    if image.mode == "P":
        palette = image.getpalette() or []
        return all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette) - 2, 3))
    return image.mode in GREY_MODES


def _read_image(path: str) -> np.ndarray:
    with Image.open(path) as image:
        image = image.convert("L" if _is_grey(image) else "RGB")
        pixels = np.asarray(image, dtype=np.uint8)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def _read_or_none(path: str) -> Optional[np.ndarray]:
    try:
        return _read_image(path)
    except (OSError, ValueError, SyntaxError):
        return None


def _cache_key(filepaths: list[str]) -> tuple:
    stamps = tuple(os.stat(path).st_mtime_ns for path in filepaths)
    return (tuple(filepaths), hash(stamps))


def read_images(filepaths: list[str], progress: ProgressFn = silent, batch: int = 2048) -> np.ndarray:
    """Decode image files into one uint8 array (N, C, H, W); all must share size and channels."""
    check_media(filepaths)
    key = _cache_key(filepaths)
    if key in _IMAGE_CACHE:
        _IMAGE_CACHE.move_to_end(key)
        return _IMAGE_CACHE[key]
    decoded: list[Optional[np.ndarray]] = []
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        for start, stop in chunks(len(filepaths), batch):
            decoded.extend(pool.map(_read_or_none, filepaths[start:stop]))
            progress(stop / len(filepaths), f"{stop}/{len(filepaths)} images")
    corrupt = [path for path, pixels in zip(filepaths, decoded) if pixels is None]
    if corrupt:
        raise CondensationError(
            f"{len(corrupt)} image files cannot be decoded, for example {corrupt[:3]}. "
            "Replace them or exclude those samples from the view."
        )
    shapes = Counter(pixels.shape for pixels in decoded)
    if len(shapes) > 1:
        described = ", ".join(f"{n} of {c}×{h}×{w} (channels×height×width)" for (c, h, w), n in shapes.most_common(5))
        raise CondensationError(
            f"Images differ in size or channels: {described}. Condensation needs one shape; "
            "resize or convert them first, or condense a view of one shape."
        )
    array = np.stack(decoded)
    _IMAGE_CACHE[key] = array
    while len(_IMAGE_CACHE) > _IMAGE_CACHE_ENTRIES:
        _IMAGE_CACHE.popitem(last=False)
    return array


def load_images(
    view: fo.core.collections.SampleCollection,
    label_field: str,
    classes: Optional[list[str]] = None,
    progress: ProgressFn = silent,
) -> ImageSet:
    """The view's images and labels as tensors, in the view's order."""
    require_samples(view)
    check_label_field(view, label_field)
    classes = classes or class_names(view, label_field)
    ids, filepaths = view.values(["id", "filepath"])
    pixels = read_images(filepaths, progress)
    return ImageSet(ids, torch.from_numpy(pixels), torch.from_numpy(labels_of(view, label_field, classes)), classes)


def media_dir_beside(view: fo.core.collections.SampleCollection, run_key: str) -> Path:
    """Default folder for a run's new media: ``<parent of the source media>/condense/<dataset>/<run_key>``.

    The dataset's name is part of the path so clones that share media never collide.
    """
    folders = sorted({os.path.dirname(path) for path in view.values("filepath")})
    common = Path(os.path.commonpath(folders)) if folders else Path(fo.config.default_dataset_dir)
    return common.parent / "condense" / re.sub(r"[^\w.-]+", "-", view._dataset.name) / run_key


def write_pngs(images: torch.Tensor, paths: list) -> None:
    """Save float images (N, C, H, W) in [0, 1] as 8-bit PNG files (grey or RGB)."""
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for array, path in zip(pixels, paths):
        Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)
