"""Network builders used for embeddings, distillation and evaluation.

Every network here exposes ``embed(x)`` (the penultimate features), ``classifier`` (the last
linear layer), ``style_layers()`` (the modules whose outputs Decomposed DM matches) and
``reset_parameters()``, so gradient embeddings and feature and style matching work the same on
all of them; :func:`build_model` builds them by name (:data:`ARCHITECTURES`). Evaluation takes
more networks, which need only ``forward`` (:mod:`.architectures`).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torchvision.models.resnet import BasicBlock, ResNet

ARCHITECTURES = ("convnet3", "resnet18")  # what build_model builds: distillation's and embeddings' networks


ACTIVATIONS = {  # name -> a fresh activation module
    "relu": lambda: nn.ReLU(inplace=True),
    "sigmoid": nn.Sigmoid,
    "leakyrelu": lambda: nn.LeakyReLU(negative_slope=0.01),
    "swish": nn.SiLU,  # x · sigmoid(x)
}
NORMS = ("instancenorm", "batchnorm", "layernorm", "groupnorm", "none")
POOLINGS = ("avgpool", "maxpool", "none")


class ConvNet(nn.Module):
    """The ConvNet family of DC/DSA/DM: ``depth`` × [conv3×3 (``width``) → norm → activation → pool 2].

    The defaults are ConvNet-3 (:class:`ConvNet3`); the papers' cross-architecture variants change
    one setting each: ``activation`` (``relu``, ``sigmoid``, ``leakyrelu``, ``swish``), ``norm``
    (``instancenorm``: a GroupNorm with one group per channel; ``batchnorm``; ``layernorm`` over
    channels × height × width; ``groupnorm``: 4 groups; ``none``: no layer) and ``pooling``
    (``avgpool``, ``maxpool``, ``none``). As in the reference, a 1-channel input gets padding 3 in
    the first conv, so 28 px Fashion-MNIST images become 32 px maps. Layers are made in the
    reference's order, so after the same seed the weights are the reference network's.
    """

    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int], depth: int = 3, width: int = 128,
                 activation: str = "relu", norm: str = "instancenorm", pooling: str = "avgpool"):
        super().__init__()
        if activation not in ACTIVATIONS or norm not in NORMS or pooling not in POOLINGS:
            raise ValueError(f"ConvNet: activation must be one of {list(ACTIVATIONS)}, norm one of {list(NORMS)} and "
                             f"pooling one of {list(POOLINGS)}; got {activation!r}, {norm!r}, {pooling!r}")
        layers: list[nn.Module] = []
        height, breadth = image_size
        in_channels = channels
        for level in range(depth):
            padding = 3 if channels == 1 and level == 0 else 1
            height, breadth = height + 2 * padding - 2, breadth + 2 * padding - 2
            layers.append(nn.Conv2d(in_channels, width, kernel_size=3, padding=padding))
            if norm != "none":
                layers.append(_norm_layer(norm, width, height, breadth))
            layers.append(ACTIVATIONS[activation]())
            if pooling != "none":
                layers.append(nn.AvgPool2d(kernel_size=2, stride=2) if pooling == "avgpool"
                              else nn.MaxPool2d(kernel_size=2, stride=2))
                height, breadth = height // 2, breadth // 2
            if min(height, breadth) < 1:
                raise ValueError(f"ConvNet of depth {depth} needs larger images than {tuple(image_size)}")
            in_channels = width
        self.features = nn.Sequential(*layers)
        self.feature_shape = (width, height, breadth)
        self.embedding_dim = width * height * breadth
        self.classifier = nn.Linear(self.embedding_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)

    def reset_parameters(self) -> None:
        """New weights in place: the very draws a new network makes after the same seed (its
        modules re-drawn in construction order), without building one; draws on the weights' device."""
        _reset_children(self)

    def style_layers(self) -> list[nn.Module]:
        """Where Decomposed DM reads style: the activation after each normalisation layer
        (the reference records each GroupNorm's output, which the in-place ReLU then overwrites)."""
        return [m for m in self.features if isinstance(m, (nn.ReLU, nn.Sigmoid, nn.LeakyReLU, nn.SiLU))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


def _norm_layer(norm: str, width: int, height: int, breadth: int) -> nn.Module:
    if norm == "instancenorm":
        return nn.GroupNorm(width, width, affine=True)
    if norm == "batchnorm":
        return nn.BatchNorm2d(width, affine=True)
    if norm == "layernorm":
        return nn.LayerNorm([width, height, breadth], elementwise_affine=True)
    return nn.GroupNorm(4, width, affine=True)


class ConvNet3(ConvNet):
    """The ConvNet of DC/DSA/DM: 3 × [conv3×3 (width 128) → instance norm → ReLU → avg-pool 2].

    As in the reference, a 1-channel input gets padding 3 in the first conv, so 28 px
    Fashion-MNIST images become 32 px maps and end as 128 × 4 × 4 features.
    """

    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int], width: int = 128, depth: int = 3):
        super().__init__(channels, num_classes, image_size, depth=depth, width=width)


class CifarResNet18(ResNet):
    """torchvision's ResNet-18 with the CIFAR stem: 3×3 stride-1 first conv and no max-pool."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
        self.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.maxpool = nn.Identity()
        self.classifier = self.fc
        self.embedding_dim = self.fc.in_features

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def reset_parameters(self) -> None:
        """New weights in place, from the distributions a new build draws them from (torchvision's
        He-normal for the convolutions after the stem, PyTorch's defaults elsewhere)."""
        _reset_children(self)
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and module is not self.conv1:
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def style_layers(self) -> list[nn.Module]:
        """Where Decomposed DM reads style: the stem's activation, ``layer1`` and ``layer2`` (the
        reference's ``ResNet18_style``)."""
        return [self.relu, self.layer1, self.layer2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


def _reset_children(network: nn.Module) -> None:
    """Each sub-module's own ``reset_parameters``, in the order ``modules()`` lists them."""
    for module in network.modules():
        if module is not network and hasattr(module, "reset_parameters"):
            module.reset_parameters()


MAX_FEATURE_WIDTH = 2048  # ConvNet-3's width at 28-32 px (128 × 4 × 4), kept at any resolution


def bounded_features(features: torch.Tensor, model: nn.Module, max_width: int = MAX_FEATURE_WIDTH) -> torch.Tensor:
    """Features of at most ``max_width`` values: a ConvNet's flattened (C, h, w) map average-pooled
    to the largest grid that fits (C × 4 × 4 for width 128), so stored embeddings of a 224 px
    dataset are not 100k floats per sample. Narrow enough features are returned unchanged."""
    shape = getattr(model, "feature_shape", None)
    if features.shape[1] <= max_width or shape is None:
        return features
    channels, height, width = shape
    side = max(1, int((max_width // channels) ** 0.5))
    grid = (min(height, side), min(width, side))
    return nn.functional.adaptive_avg_pool2d(features.view(len(features), *shape), grid).flatten(1)


def build_model(arch: str, channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
    """A freshly initialised network of the named architecture."""
    if arch == "convnet3":
        return ConvNet3(channels, num_classes, image_size)
    if arch == "resnet18":
        return CifarResNet18(channels, num_classes)
    raise ValueError(f"Unknown architecture {arch!r}; choose one of {ARCHITECTURES}")
