"""Image files read at one working format, in batches, through a bounded cache (no FiftyOne here).

Real datasets mix sizes, grey and colour, alpha and 16-bit files; the papers work at one
resolution. :class:`ImageFormat` says which: every file is decoded to it (16-bit scaled to
8-bit, alpha composited on a background, grey or colour converted, resized as torchvision
does: short side to size then centre crop, or letterboxed). :class:`LazyImages` stands in for a
float tensor (N, C, H, W) of a whole view and reads only the rows asked for, so memory does not
grow with the dataset; decoded files are kept in a process-wide LRU cache bounded in bytes.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms.v2 import functional as TF

from .errors import CondensationError

RESIZE_MODES = ("crop", "letterbox")
WHITE = (255, 255, 255)
DEFAULT_CACHE_BYTES = 1 << 30
SLOW_DECODE_S = 0.001  # files taking longer on average to decode go to the decoding threads
SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
Index = Union[int, slice, Sequence[int], np.ndarray, torch.Tensor]


@dataclass(frozen=True)
class ImageFormat:
    """The working format every image is decoded to: (height, width), 1 or 3 channels, how sizes
    are matched (``crop``: the short side to size, then centre crop; ``letterbox``: the long side
    to size, padded) and the background under transparent pixels and around letterboxed images."""

    size: tuple[int, int]
    channels: int
    resize: str = "crop"
    background: tuple[int, int, int] = WHITE

    def __post_init__(self):
        size = (self.size, self.size) if isinstance(self.size, int) else tuple(int(s) for s in self.size)
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "background", tuple(int(v) for v in self.background))
        if len(size) != 2 or min(size) < 1:
            raise CondensationError(f"image_size must be a positive int or (height, width), got {self.size!r}")
        if self.channels not in (1, 3):
            raise CondensationError(f"channels must be 1 (grey) or 3 (RGB), got {self.channels!r}")
        if self.resize not in RESIZE_MODES:
            raise CondensationError(f"resize must be one of {RESIZE_MODES}, got {self.resize!r}")
        if len(self.background) != 3 or not all(0 <= v <= 255 for v in self.background):
            raise CondensationError(f"background must be an (r, g, b) triple of 0-255 values, got {self.background!r}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, *self.size)

    def as_dict(self) -> dict:
        return {"size": list(self.size), "channels": self.channels, "resize": self.resize,
                "background": list(self.background)}

    @classmethod
    def from_dict(cls, values: dict) -> "ImageFormat":
        return cls(tuple(values["size"]), values["channels"], values.get("resize", "crop"),
                   tuple(values.get("background", WHITE)))


# --------------------------------------------------------------------------- decoding one file


def _eight_bit(image: Image.Image) -> Image.Image:
    """16- and 32-bit integer images scaled to 8 bits (65535 → 255) rather than clipped; float
    images in [0, 1] scaled, others clipped."""
    pixels = np.asarray(image)
    if image.mode == "F":
        scaled = pixels * 255.0 if pixels.size and pixels.max() <= 1.0 else pixels
    elif image.mode == "I" and pixels.size and pixels.max() <= 255:
        scaled = pixels
    else:
        scaled = pixels.astype(np.float64) / 257.0
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _converted(image: Image.Image, fmt: ImageFormat) -> Image.Image:
    """``image`` as 8-bit ``L`` or ``RGB``, alpha composited on the background."""
    if image.mode in SIXTEEN_BIT_MODES or image.mode == "F":
        image = _eight_bit(image)
    if _has_alpha(image):
        background = Image.new("RGBA", image.size, (*fmt.background, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("L" if fmt.channels == 1 else "RGB")


def _fitted(pixels: torch.Tensor, fmt: ImageFormat) -> torch.Tensor:
    """(C, h, w) uint8 pixels at ``fmt.size``: scaled with antialiasing, then centre-cropped or padded."""
    height, width = pixels.shape[-2:]
    target_h, target_w = fmt.size
    if (height, width) == (target_h, target_w):
        return pixels
    if fmt.resize == "crop":
        # As torchvision's Resize(short side) then CenterCrop: the side that sets the scale gets its
        # target exactly, the other int(target · other / side) (truncated, as torchvision does).
        if target_h * width >= target_w * height:
            scaled_h, scaled_w = target_h, max(target_w, int(target_h * width / height))
        else:
            scaled_h, scaled_w = max(target_h, int(target_w * height / width)), target_w
        return TF.center_crop(TF.resize(pixels, [scaled_h, scaled_w], antialias=True), [target_h, target_w])
    scale = min(target_h / height, target_w / width)
    scaled_h = min(max(1, round(height * scale)), target_h)
    scaled_w = min(max(1, round(width * scale)), target_w)
    pixels = TF.resize(pixels, [scaled_h, scaled_w], antialias=True)
    left, top = (target_w - scaled_w) // 2, (target_h - scaled_h) // 2
    fill = list(fmt.background) if fmt.channels == 3 else _grey(fmt.background)
    return TF.pad(pixels, [left, top, target_w - scaled_w - left, target_h - scaled_h - top], fill=fill)


def _grey(colour: tuple[int, int, int]) -> int:
    """``colour`` as PIL converts it to ``L`` (so a letterbox's padding matches composited transparent pixels)."""
    return Image.new("RGB", (1, 1), colour).convert("L").getpixel((0, 0))


def decode(path: str, fmt: ImageFormat) -> np.ndarray:
    """One file as uint8 (C, H, W) in ``fmt`` (EXIF orientation applied)."""
    with Image.open(path) as image:
        image = _converted(ImageOps.exif_transpose(image), fmt)
        pixels = torch.from_numpy(np.array(image, dtype=np.uint8))
    pixels = pixels.unsqueeze(0) if pixels.dim() == 2 else pixels.permute(2, 0, 1)
    return _fitted(pixels, fmt).contiguous().numpy()


# --------------------------------------------------------------------------- the bounded cache


class ImageCache:
    """Decoded images (per file and format) kept up to ``capacity`` bytes, least recently used
    out first; an entry is trusted only while its file's modification time is unchanged."""

    def __init__(self, capacity: int):
        self.capacity = max(0, int(capacity))
        self._entries: "OrderedDict[tuple, tuple[int, np.ndarray]]" = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: tuple, stamp: int) -> Optional[np.ndarray]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != stamp:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: tuple, stamp: int, pixels: np.ndarray) -> None:
        if pixels.nbytes > self.capacity:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            self._bytes -= old[1].nbytes if old else 0
            self._entries[key] = (stamp, pixels)
            self._bytes += pixels.nbytes
            self._shrink(self.capacity)

    def resize(self, capacity: int) -> "ImageCache":
        with self._lock:
            self.capacity = max(0, int(capacity))
            self._shrink(self.capacity)
        return self

    def clear(self) -> None:
        """Drop every entry; the capacity stays."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _shrink(self, capacity: int) -> None:
        while self._bytes > capacity and self._entries:
            _, (_, pixels) = self._entries.popitem(last=False)
            self._bytes -= pixels.nbytes


def default_cache_bytes() -> int:
    """``$FIFTYONE_CONDENSE_CACHE_BYTES``, else 1 GiB."""
    return int(os.environ.get("FIFTYONE_CONDENSE_CACHE_BYTES", DEFAULT_CACHE_BYTES))


_SHARED_CACHE = ImageCache(default_cache_bytes())
_POOL = ThreadPoolExecutor(max_workers=min(8, 2 * (os.cpu_count() or 1)), thread_name_prefix="condense-decode")


def image_cache(cache_bytes: Optional[int] = None) -> ImageCache:
    """The process-wide cache, bounded to ``cache_bytes`` (None: the default bound; 0: off)."""
    return _SHARED_CACHE.resize(default_cache_bytes() if cache_bytes is None else cache_bytes)


def _libc_trim() -> Callable[[], None]:
    """glibc's ``malloc_trim``, or nothing on other C libraries."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    return lambda: trim(0)


release_free_memory = _libc_trim()
release_free_memory.__doc__ = """Hand freed heap memory back to the system. Streaming many batches
interleaves large short-lived buffers with small long-lived cache entries, and glibc keeps the
fragmented heap it cannot trim from the top: without this, resident memory grew ~10 KB per image
embedded (measured at 200k images)."""


def cached_bytes() -> int:
    """Bytes of decoded images the process-wide cache holds now."""
    return _SHARED_CACHE.nbytes


# --------------------------------------------------------------------------- files and lazy tensors


class ImageFiles:
    """Files decoded to one format on demand, several at a time, through a cache."""

    def __init__(self, paths: Sequence[str], fmt: ImageFormat, cache: Optional[ImageCache] = None):
        self.paths, self.format = list(paths), fmt
        self.cache = cache if cache is not None else image_cache()
        self.slow_files, self._timed = False, (0, 0.0)  # decodes timed in this thread: count, seconds

    def __len__(self) -> int:
        return len(self.paths)

    def __getstate__(self) -> dict:
        """Pickled as paths and format: another process reads the files through its own cache."""
        return {"paths": self.paths, "format": self.format}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["paths"], state["format"])

    def _cached(self, path: str) -> Union[np.ndarray, int, str]:
        """Cached pixels, else the file's modification time (to decode), or ``missing``."""
        try:
            stamp = os.stat(path).st_mtime_ns
        except OSError:
            return "missing"
        pixels = self.cache.get((path, self.format), stamp)
        return stamp if pixels is None else pixels

    def _decoded(self, path: str, stamp: int) -> Union[np.ndarray, str]:
        """Decoded pixels (then cached), or what went wrong (``missing`` / ``corrupt``)."""
        try:
            pixels = decode(path, self.format)
        except FileNotFoundError:
            return "missing"
        except (OSError, ValueError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError):
            return "corrupt"
        self.cache.put((path, self.format), stamp, pixels)
        return pixels

    def _decode_all(self, paths: list[str], stamps: list[int]) -> list:
        """Decode in this thread while files decode fast (small PNGs: threads only add overhead),
        in the decoding threads once one is slow (large JPEGs and PNGs release the GIL)."""
        results = []
        for index, (path, stamp) in enumerate(zip(paths, stamps)):
            if self.slow_files and len(paths) - index > 1:
                return results + list(_POOL.map(self._decoded, paths[index:], stamps[index:]))
            started = time.perf_counter()
            results.append(self._decoded(path, stamp))
            self._timed = (self._timed[0] + 1, self._timed[1] + time.perf_counter() - started)
            self.slow_files = self._timed[0] >= 8 and self._timed[1] / self._timed[0] > SLOW_DECODE_S
        return results

    def read(self, rows: np.ndarray) -> torch.Tensor:
        """uint8 (n, C, H, W) images of ``rows``; a missing or undecodable file is a ``CondensationError``.

        Cache hits are looked up in this thread; only the misses go to the decoding threads."""
        paths = [self.paths[int(i)] for i in rows]
        results = [self._cached(path) for path in paths]
        misses = [i for i, result in enumerate(results) if isinstance(result, int)]
        decoded = self._decode_all([paths[i] for i in misses], [results[i] for i in misses])
        for i, pixels in zip(misses, decoded):
            results[i] = pixels
        failed = {kind: [p for p, r in zip(paths, results) if isinstance(r, str) and r == kind]
                  for kind in ("missing", "corrupt")}
        if failed["missing"]:
            raise CondensationError(f"{len(failed['missing'])} image files are missing, for example {failed['missing'][:3]}. "
                                    "Restore them or exclude those samples from the view.")
        if failed["corrupt"]:
            raise CondensationError(f"{len(failed['corrupt'])} image files cannot be decoded, for example "
                                    f"{failed['corrupt'][:3]}. Replace them or exclude those samples from the view.")
        if not results:
            return torch.empty((0, *self.format.shape), dtype=torch.uint8)
        return torch.from_numpy(np.stack(results))


def _rows(index: Index, length: int) -> np.ndarray:
    if isinstance(index, slice):
        return np.arange(length)[index]
    if isinstance(index, torch.Tensor):
        index = index.detach().cpu().numpy()
    rows = np.asarray(index)
    if rows.dtype == bool:
        return np.flatnonzero(rows)
    return np.atleast_1d(rows).astype(np.int64)


class LazyImages:
    """Float images in [0, 1], (N, C, H, W), read from their files only when indexed.

    It stands in for the tensor of a whole view in the loops that index batches out of one
    (training, prediction, distillation): ``images[rows]`` returns a tensor of those rows on
    ``device`` with the ``map``-ped transforms (a normaliser, a channel conversion) applied.
    """

    def __init__(self, files: ImageFiles, rows: Optional[np.ndarray] = None,
                 transforms: tuple[Callable[[torch.Tensor], torch.Tensor], ...] = (),
                 device: Optional[torch.device] = None, channels: Optional[int] = None):
        self.files, self.transforms, self.device = files, transforms, device
        self.rows = np.arange(len(files)) if rows is None else np.asarray(rows, dtype=np.int64)
        self.channels = channels or files.format.channels

    def _copy(self, **changes) -> "LazyImages":
        values = {"files": self.files, "rows": self.rows, "transforms": self.transforms, "device": self.device,
                  "channels": self.channels, **changes}
        return LazyImages(**values)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.rows), self.channels, *self.files.format.size))

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: Index) -> torch.Tensor:
        pixels = self.files.read(self.rows[_rows(index, len(self.rows))])
        images = pixels.to(self.device or "cpu").float().div_(255.0)
        for transform in self.transforms:
            images = transform(images)
        return images

    def to(self, device: Union[str, torch.device]) -> "LazyImages":
        return self._copy(device=torch.device(device))

    def map(self, transform: Callable[[torch.Tensor], torch.Tensor], channels: Optional[int] = None) -> "LazyImages":
        """These images with ``transform`` applied to every batch read (``channels``: its output's)."""
        return self._copy(transforms=self.transforms + (transform,), channels=channels or self.channels)

    def subset(self, index: Index) -> "LazyImages":
        return self._copy(rows=self.rows[_rows(index, len(self.rows))])

    def batches(self, size: int = 512) -> Iterator[torch.Tensor]:
        for start in range(0, len(self.rows), size):
            yield self[start:start + size]

    def tensor(self) -> torch.Tensor:
        """All rows as one tensor (for sets known to be small)."""
        return self[:]

    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * 4


ImagesLike = Union[torch.Tensor, LazyImages]


def subset(images: ImagesLike, rows: Index) -> ImagesLike:
    """Rows of a tensor or lazy images, staying lazy."""
    return images.subset(rows) if isinstance(images, LazyImages) else images[rows]


def materialised(images: ImagesLike, max_bytes: int) -> ImagesLike:
    """A tensor when the images take at most ``max_bytes`` as floats; else they stay lazy."""
    if isinstance(images, LazyImages) and images.nbytes() <= max_bytes:
        return images.tensor()
    return images

