"""The small-image networks of the dataset-condensation papers' cross-architecture tables.

DC, DSA and DM (VICO-UoE/DatasetCondensation: ``networks.py``, built by ``utils.get_network``)
test a condensed set on an MLP, LeNet, AlexNet, VGG-11 and ResNet-18 besides their ConvNet
(:class:`.models.ConvNet`). These are those networks layer for layer, their layers made in the
same order with PyTorch's default initialisation, so after the same seed they draw the reference's
weights. The reference sizes its classifiers for 28 px grey or 32 px colour inputs; these size
theirs from ``image_size`` and are the reference networks at those two sizes (elsewhere the
reference cannot run). Each has ``embed`` (penultimate features) and ``classifier`` (last linear
layer), so it can also serve where features are read.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

Norm = Callable[[int], nn.Module]


def norm_of(name: str) -> Norm:
    """``instancenorm`` (a GroupNorm with a group per channel, as the reference writes instance
    norm) or ``batchnorm``: a function of the channel count."""
    if name == "instancenorm":
        return lambda width: nn.GroupNorm(width, width, affine=True)
    if name == "batchnorm":
        return nn.BatchNorm2d
    raise ValueError(f"norm must be 'instancenorm' or 'batchnorm', got {name!r}")


def _fits(name: str, image_size: tuple[int, int], *sizes: int) -> None:
    if min(sizes) < 1:
        raise ValueError(f"{name} needs larger images than {tuple(image_size)}")


class _Classifier(nn.Module):
    """``forward`` = ``classifier(embed(x))``."""

    classifier: nn.Linear

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class MLP(_Classifier):
    """Two hidden layers of 128 ReLU units on the flattened image (the reference's input is 28 × 28
    grey or 32 × 32 colour; here any size)."""

    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int], width: int = 128):
        super().__init__()
        height, breadth = image_size
        self.hidden = nn.Sequential(
            nn.Flatten(), nn.Linear(channels * height * breadth, width), nn.ReLU(),
            nn.Linear(width, width), nn.ReLU(),
        )
        self.classifier = nn.Linear(width, num_classes)
        self.embedding_dim = width

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(x)


class LeNet(_Classifier):
    """LeNet-5: conv5 (6) → ReLU → max-pool → conv5 (16) → ReLU → max-pool → 120 → 84 → classes.
    A grey input gets padding 2 in the first conv (28 px → 5 × 5 maps, as 32 px colour does)."""

    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int]):
        super().__init__()
        padding = 2 if channels == 1 else 0
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, kernel_size=5, padding=padding), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
            nn.Conv2d(6, 16, kernel_size=5), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
            nn.Flatten(),
        )
        height, breadth = (((side + 2 * padding - 4) // 2 - 4) // 2 for side in image_size)
        _fits("LeNet", image_size, height, breadth)
        self.hidden = nn.Sequential(nn.Linear(16 * height * breadth, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU())
        self.classifier = nn.Linear(84, num_classes)
        self.embedding_dim = 84

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(self.features(x))


class AlexNet(_Classifier):
    """The reference's small-image AlexNet: conv5 (128) → pool → conv5 (192) → pool → conv3 (256,
    192, 192) → pool, ReLU after each conv (and batch norm before it with ``batch_norm``), then one
    linear layer. A grey input gets padding 4 in the first conv (28 px → 4 × 4 maps)."""

    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int], batch_norm: bool = False):
        super().__init__()
        first_padding = 4 if channels == 1 else 2
        plan = [  # (out channels, kernel, padding, pooled after)
            (128, 5, first_padding, True), (192, 5, 2, True), (256, 3, 1, False), (192, 3, 1, False), (192, 3, 1, True),
        ]
        layers: list[nn.Module] = []
        height, breadth = image_size
        in_channels = channels
        for width, kernel, padding, pooled in plan:
            layers.append(nn.Conv2d(in_channels, width, kernel_size=kernel, padding=padding))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
            height, breadth = height + 2 * padding - kernel + 1, breadth + 2 * padding - kernel + 1
            if pooled:
                layers.append(nn.MaxPool2d(2, 2))
                height, breadth = height // 2, breadth // 2
            _fits("AlexNet", image_size, height, breadth)
            in_channels = width
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.embedding_dim = in_channels * height * breadth
        self.classifier = nn.Linear(self.embedding_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


VGG11_PLAN = (64, "pool", 128, "pool", 256, 256, "pool", 512, 512, "pool", 512, 512, "pool")


class VGG11(_Classifier):
    """VGG-11 for small images: conv3 → norm → ReLU per width of :data:`VGG11_PLAN`, max-pool at
    each ``pool``, then one linear layer on the flattened maps (1 × 1 × 512 at 28 px grey or 32 px
    colour). ``norm``: ``instancenorm`` (the reference's ``VGG11``) or ``batchnorm`` (``VGG11BN``).
    A grey input gets padding 3 in the first conv."""

    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int], norm: str = "instancenorm"):
        super().__init__()
        make_norm = norm_of(norm)
        layers: list[nn.Module] = []
        height, breadth = image_size
        in_channels = channels
        for step in VGG11_PLAN:
            if step == "pool":
                layers.append(nn.MaxPool2d(2, 2))
                height, breadth = height // 2, breadth // 2
                _fits("VGG-11", image_size, height, breadth)
                continue
            padding = 3 if channels == 1 and not layers else 1
            layers += [nn.Conv2d(in_channels, step, kernel_size=3, padding=padding), make_norm(step), nn.ReLU(inplace=True)]
            height, breadth = height + 2 * padding - 2, breadth + 2 * padding - 2
            in_channels = step
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.embedding_dim = in_channels * height * breadth
        self.classifier = nn.Linear(self.embedding_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class ResidualBlock(nn.Module):
    """ResNet's basic block: conv3 → norm → ReLU → conv3 → norm, plus the input (through a 1 × 1
    conv and norm when the shape changes), then ReLU. ``pooled``: a stride-2 block keeps its
    convolutions at stride 1 and halves the map with a 2 × 2 average pool instead (on the main path
    after the first ReLU, on the shortcut after its conv), as the reference's ``_AP`` networks do."""

    def __init__(self, in_planes: int, planes: int, stride: int, norm: Norm, pooled: bool = False):
        super().__init__()
        self.halve = pooled and stride != 1
        conv_stride = 1 if pooled else stride
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=conv_stride, padding=1, bias=False)
        self.norm1 = norm(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.norm2 = norm(planes)
        self.shortcut = nn.Identity()
        if stride != 1 or in_planes != planes:
            projection = [nn.Conv2d(in_planes, planes, kernel_size=1, stride=conv_stride, bias=False)]
            if pooled:
                projection.append(nn.AvgPool2d(2, 2))
            self.shortcut = nn.Sequential(*projection, norm(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        if self.halve:
            out = F.avg_pool2d(out, kernel_size=2, stride=2)
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(_Classifier):
    """The reference's ResNet-18 for small images: a 3 × 3 stride-1 stem (no max-pool), four stages
    of two :class:`ResidualBlock` (64, 128, 256, 512 channels; stride 2 from the second), default
    initialisation. ``norm``: ``instancenorm`` (``ResNet18``) or ``batchnorm`` (``ResNet18BN``).
    The last maps are averaged globally (the reference's 4 × 4 average pool, which is global at
    28 px grey and 32 px colour). ``pooled`` (``ResNet18BN_AP``): stride-2 blocks halve by average
    pooling and the classifier reads the flattened last maps (512 × 3 × 3 at 28 px, × 4 × 4 at 32)."""

    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int], norm: str = "instancenorm",
                 pooled: bool = False):
        super().__init__()
        make_norm = norm_of(norm)
        self.pooled = pooled
        self.stem = nn.Sequential(nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False),
                                  make_norm(64), nn.ReLU(inplace=True))
        stages, in_planes = [], 64
        height, breadth = image_size
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(nn.Sequential(ResidualBlock(in_planes, planes, stride, make_norm, pooled),
                                        ResidualBlock(planes, planes, 1, make_norm, pooled)))
            if stride != 1:  # average pooling floors, a stride-2 convolution rounds up
                height, breadth = (height // 2, breadth // 2) if pooled else ((height + 1) // 2, (breadth + 1) // 2)
            _fits("ResNet-18", image_size, height, breadth)
            in_planes = planes
        self.stages = nn.Sequential(*stages)
        self.embedding_dim = in_planes * height * breadth if pooled else in_planes
        self.classifier = nn.Linear(self.embedding_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.stages(self.stem(x))
        return maps.flatten(1) if self.pooled else F.adaptive_avg_pool2d(maps, 1).flatten(1)
