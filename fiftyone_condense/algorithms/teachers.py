"""Embedding models: trained teachers (ConvNet-3, ResNet-18) and pretrained ResNet-18.

An embedding model maps normalised images to penultimate features and class logits; the
two together give gradient embeddings (see :mod:`fiftyone_condense.algorithms.selection.gram`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from .distributed import Parallel
from .images import as_rgb
from .loader import ImagesLike, LazyImages, subset
from .models import bounded_features, build_model
from .progress import ProgressFn, silent
from .training import ConvergenceConfig, TrainConfig, predict, train_classifier, train_to_convergence

EMBEDDING_MODELS = ("convnet3", "resnet18", "imagenet_resnet18")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Normalizer:
    """Per-channel standardisation applied before every network."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, images: ImagesLike, max_images: int = 5000, seed: int = 0, batch: int = 500) -> "Normalizer":
        """Channel mean and std of (a seeded sample of at most ``max_images`` of) ``images``, read in batches."""
        rows = torch.arange(len(images))
        if len(images) > max_images:
            rows = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:max_images]
        if not isinstance(images, LazyImages):
            images = images[rows] if len(rows) < len(images) else images
            flat = images.transpose(0, 1).reshape(images.shape[1], -1).float()
            return cls(tuple(flat.mean(1).tolist()), tuple(flat.std(1).clamp_min(1e-6).tolist()))
        total = torch.zeros(images.shape[1], dtype=torch.float64)
        squares, count = torch.zeros_like(total), 0
        for part in rows.split(batch):
            flat = images[part].transpose(0, 1).reshape(images.shape[1], -1).double()
            total += flat.sum(1)
            squares += flat.square().sum(1)
            count += flat.shape[1]
        mean = total / count
        variance = (squares - count * mean.square()) / max(count - 1, 1)
        return cls(tuple(mean.tolist()), tuple(variance.clamp_min(0).sqrt().clamp_min(1e-6).tolist()))

    @classmethod
    def identity(cls, channels: int) -> "Normalizer":
        return cls((0.0,) * channels, (1.0,) * channels)

    def __call__(self, images: ImagesLike) -> ImagesLike:
        if isinstance(images, LazyImages):
            return images.map(self)
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        return (images - mean) / std

    def inverse(self, normalised: torch.Tensor) -> torch.Tensor:
        """Raw [0, 1] pixels of standardised images."""
        mean = torch.tensor(self.mean, device=normalised.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=normalised.device).view(1, -1, 1, 1)
        return normalised * std + mean


@dataclass(frozen=True)
class TeacherConfig:
    """How an embedding teacher is trained on the source split: no augmentation, the hard
    protocol's SGD and schedule by default, or a constant learning rate (``decay=False``)."""

    arch: str = "convnet3"
    epochs: int = 2
    lr: float = 0.01
    batch_size: int = 256
    decay: bool = True

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, decay=self.decay)


def train_teacher(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    config: TeacherConfig,
    device: torch.device,
    seed: int = 0,
    progress: ProgressFn = silent,
) -> tuple[nn.Module, Normalizer]:
    """Train ``config.arch`` on ``images`` (floats in [0, 1]); returns the net and its normaliser."""
    normalizer = Normalizer.fit(images)
    torch.manual_seed(seed)
    model = build_model(config.arch, images.shape[1], num_classes, tuple(images.shape[-2:]))
    model = train_classifier(model, normalizer(images), labels, config.train_config(), device, seed, progress=progress)
    return model.cpu(), normalizer


def train_converged_teacher(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    arch: str,
    config: ConvergenceConfig,
    device: torch.device,
    seed: int = 0,
    progress: ProgressFn = silent,
) -> tuple[nn.Module, Normalizer, dict]:
    """A teacher trained to convergence (the soft protocol's): a random tenth of ``images`` (at
    most 5,000) is held out to decide when to stop, the rest trains it. Returns the network, its
    normaliser and a record of the training (epochs, held-out accuracy)."""
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    held_out, train = order[: min(max(len(images) // 10, 1), 5000)], order[min(max(len(images) // 10, 1), 5000):]
    normalizer = Normalizer.fit(subset(images, train))
    torch.manual_seed(seed)
    model = build_model(arch, images.shape[1], num_classes, tuple(images.shape[-2:]))
    model, record = train_to_convergence(model, normalizer(subset(images, train)), labels[train],
                                         (normalizer(subset(images, held_out)), labels[held_out]), config, device, seed, progress)
    return model.cpu(), normalizer, record


def teacher_checkpoint(model: nn.Module, normalizer: Normalizer, config: TeacherConfig, meta: dict) -> dict:
    return {"state_dict": model.state_dict(), "normalizer": asdict(normalizer), "config": asdict(config), "meta": meta}


def load_teacher(checkpoint: dict) -> tuple[nn.Module, Normalizer]:
    meta = checkpoint["meta"]
    model = build_model(checkpoint["config"]["arch"], meta["channels"], meta["num_classes"], tuple(meta["image_size"]))
    model.load_state_dict(checkpoint["state_dict"])
    normalizer = Normalizer(**{k: tuple(v) for k, v in checkpoint["normalizer"].items()})
    return model.eval(), normalizer


class PretrainedResNet18(nn.Module):
    """torchvision's ImageNet ResNet-18 from a local weights file, with a linear probe head.

    Takes raw [0, 1] images (pair it with :meth:`Normalizer.identity`): grey images are
    repeated to three channels, resized to ``input_size`` and ImageNet-normalised; features are
    the 512-d pooled output. ``classifier`` is fitted on the source split by
    :func:`fit_linear_probe`, so logits (and gradient embeddings) refer to the dataset's classes.
    """

    def __init__(self, weights: str | Path, num_classes: int, input_size: int = 224):
        super().__init__()
        self.backbone = torchvision.models.resnet18()
        self.backbone.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self.backbone.fc = nn.Identity()
        self.classifier = nn.Linear(512, num_classes)
        self.input_size = input_size
        self.imagenet = Normalizer(IMAGENET_MEAN, IMAGENET_STD)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = as_rgb(x)
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return self.backbone(self.imagenet(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class ImageNetResNet18(nn.Module):
    """DC3's gradient model: torchvision's ImageNet ResNet-18 at the images' own size, its
    1000-way head replaced by a freshly initialised (untrained) one for the dataset's classes.

    Takes the dataset-normalised images (grey ones repeated to three channels), in eval mode, as
    the reference's ``ResNet(pretrained=True)`` with ``-se 0`` runs it.
    """

    def __init__(self, state_dict: dict, num_classes: int, seed: int = 0):
        super().__init__()
        self.backbone = torchvision.models.resnet18()
        self.backbone.load_state_dict(state_dict)
        self.backbone.fc = nn.Identity()
        torch.manual_seed(seed)
        self.classifier = nn.Linear(512, num_classes)
        self.eval()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(as_rgb(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


def imagenet_resnet18_weights(weights: Optional[str | Path] = None) -> Optional[dict]:
    """ImageNet ResNet-18 weights from ``weights`` (a local file), else from torch's hub cache
    (where ``torchvision.models.resnet18(weights="IMAGENET1K_V1")`` keeps them); None if absent."""
    if weights is None:
        url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
        weights = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    path = Path(weights)
    return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None


def fit_linear_probe(
    head: nn.Linear, features: torch.Tensor, labels: torch.Tensor, steps: int = 200, seed: int = 0
) -> nn.Linear:
    """Fit ``head`` to ``features`` with full-batch L-BFGS on cross-entropy."""
    torch.manual_seed(seed)
    optimizer = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(head(features), labels) + 1e-4 * head.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return head


def embed_images(
    model: nn.Module,
    normalizer: Normalizer,
    images: torch.Tensor,
    device: torch.device,
    batch_size: int = 1024,
    progress: ProgressFn = silent,
    parallel: Parallel = Parallel(),
) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, logits) of ``images`` (a tensor or lazily read images) in batches; images are
    normalised batch by batch, and features wider than ``MAX_FEATURE_WIDTH`` are pooled (logits
    come from the full features). With ``parallel`` each process embeds its share of the images
    (the same ``model`` on every rank) and every process gets all rows, in order."""
    share = parallel.share(len(images))
    features, logits = predict(_Normalized(model, normalizer), subset(images, slice(share.start, share.stop)), device,
                               batch_size=batch_size, progress=progress,
                               stored_features=lambda features: bounded_features(features, model))
    return parallel.gather_rows(features, len(images)), parallel.gather_rows(logits, len(images))


class _Normalized(nn.Module):
    """Wraps a network so it takes raw [0, 1] images."""

    def __init__(self, model: nn.Module, normalizer: Normalizer):
        super().__init__()
        self.model = model
        self.normalizer = normalizer
        self.classifier = model.classifier

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.embed(self.normalizer(x))


__all__ = [
    "EMBEDDING_MODELS",
    "Normalizer",
    "ImageNetResNet18",
    "PretrainedResNet18",
    "TeacherConfig",
    "embed_images",
    "fit_linear_probe",
    "load_teacher",
    "teacher_checkpoint",
    "imagenet_resnet18_weights",
    "train_converged_teacher",
    "train_teacher",
]


def load_vae(model: str, device: torch.device):
    """A diffusers ``AutoencoderKL`` by hub id or local directory (also a pipeline's ``vae/``),
    in fp16 on a GPU and fp32 on the CPU. The local Hugging Face cache is tried before the hub, so
    weights already there load without a network round trip (and without its retries offline)."""
    from .errors import CondensationError

    try:
        from diffusers import AutoencoderKL
    except ImportError as error:  # diffusers is the optional [diffusion] extra
        raise CondensationError(
            f"The VAE encoder needs diffusers ({error}): pip install \"fiftyone-condense[diffusion]\", "
            "or use model='convnet3'."
        ) from None

    dtype = torch.float16 if device.type == "cuda" else torch.float32
    errors = []
    for local_only, subfolder in ((True, None), (True, "vae"), (False, None), (False, "vae")):
        try:
            return AutoencoderKL.from_pretrained(model, subfolder=subfolder, dtype=dtype,
                                                 local_files_only=local_only).to(device).eval()
        except (OSError, ValueError, EnvironmentError) as error:
            errors.append(str(error))
    raise CondensationError(
        f"Cannot load a VAE from {model!r} ({errors[-1]}). Pass a local directory with an AutoencoderKL "
        "(for example the Stable Diffusion VAE saved with save_pretrained), or use model='convnet3'."
    )


@torch.no_grad()
def vae_latents(
    vae: nn.Module, images: torch.Tensor, normalizer: Normalizer, size: int, device: torch.device, batch_size: int = 32,
    progress: ProgressFn = silent,
) -> torch.Tensor:
    """Flattened latent means of images as DC3's ``get_bins.py`` encodes them: the dataset-normalised
    images (grey ones repeated to three channels), nearest-neighbour resized to ``size`` (512)."""
    dtype = next(vae.parameters()).dtype
    latents = []
    for start in range(0, len(images), batch_size):
        x = normalizer(images[start:start + batch_size])
        x = as_rgb(x)
        x = F.interpolate(x, size=(size, size), mode="nearest")
        posterior = vae.encode(x.to(device=device, dtype=dtype)).latent_dist
        latents.append(posterior.mean.float().flatten(1).cpu())
        progress(min(start + batch_size, len(images)) / len(images), "VAE latents")
    return torch.cat(latents)
