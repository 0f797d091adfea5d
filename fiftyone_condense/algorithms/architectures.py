"""Which network an evaluation trains: an ``arch`` is a name of ours, a name of the DC/DSA/DM code,
a torchvision classifier, or (in the SDK) a function that builds the user's own network.

* Our names (:data:`NAMED_ARCHITECTURES`, what the App's forms offer): ``convnet3`` (the default,
  ConvNet-3 of the DC/DM line of work), ``resnet18`` (RDED's and DC3's small-image ResNet-18:
  torchvision's with a 3 × 3 stride-1 stem, no max-pool, batch norm, torchvision's initialisation),
  and the papers' cross-architecture set as the DC/DSA/DM code defines it: the ConvNet variants
  written ``convnet<depth>[-w<width>][-<activation>][-<norm>][-<pooling>]`` (activation ``relu``,
  ``sigmoid``, ``leakyrelu``, ``swish``; norm ``in`` instance, ``bn``, ``ln``, ``gn``, ``nonorm``;
  pooling ``avgpool``, ``maxpool``, ``nopool``; defaults left out: ``convnet3`` is width 128, ReLU,
  instance norm, average pooling), ``mlp``, ``lenet``, ``alexnet``, ``alexnet-bn``, ``vgg11``
  (instance norm), ``vgg11-bn``, ``resnet18-in`` (the reference's ``ResNet18``, instance norm),
  ``resnet18-bn`` (``ResNet18BN``: ``resnet18``'s layers with PyTorch's default initialisation) and
  ``resnet18-bn-ap`` (``ResNet18BN_AP``).
* The reference's ``get_network`` names (``ConvNet``, ``ConvNetD4``, ``ConvNetW32``, ``ConvNetAS``,
  ``ConvNetBN``, ``ConvNetNP``, ``LeNet``, ``AlexNetBN``, ``VGG11``, ``ResNet18BN_AP``, ...:
  :data:`REFERENCE_NAMES`), which stand for ours and are recorded as ours.
* Names are case-insensitive, except ``resnet18`` (ours, RDED's) and ``ResNet18`` (the
  reference's, instance norm), which differ: any other spelling of either is refused as ambiguous.
* ``torchvision:<model>``: any classification model of ``torchvision.models`` (``torchvision:resnet34``,
  ``torchvision:mobilenet_v3_small``), built with ``num_classes`` and no pretrained weights (nothing
  is downloaded). For grey images its first convolution takes one channel, its kernel the 3-channel
  kernel summed over the channels, so the network computes what the 3-channel one would on the grey
  image repeated to RGB, for a third of that layer's cost. GoogLeNet and Inception-v3 are built
  without their auxiliary heads, which the protocols' losses never read.
* A callable ``(channels, num_classes, (height, width)) -> nn.Module`` that returns a fresh
  network on each call, recorded by its qualified name (``callable:<module>.<name>``).

:func:`build_network` builds any of them; :func:`canonical_arch` checks a value and gives the
name recorded for it. FiftyOne-free.
"""

from __future__ import annotations

import difflib
import functools
import re
import sys
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
import torch.nn as nn

from .models import CifarResNet18, ConvNet, ConvNet3
from .networks import MLP, VGG11, AlexNet, LeNet, ResNet18

NetworkFactory = Callable[[int, int, tuple[int, int]], nn.Module]  # (channels, num_classes, (height, width))
Arch = Union[str, NetworkFactory]

TORCHVISION_PREFIX = "torchvision:"
CALLABLE_PREFIX = "callable:"

CONVNET_ACTIVATIONS = ("relu", "sigmoid", "leakyrelu", "swish")
CONVNET_NORMS = {"in": "instancenorm", "bn": "batchnorm", "ln": "layernorm", "gn": "groupnorm", "nonorm": "none"}
CONVNET_POOLINGS = {"avgpool": "avgpool", "maxpool": "maxpool", "nopool": "none"}

FIXED_NETWORKS: dict[str, NetworkFactory] = {
    "resnet18": lambda channels, num_classes, image_size: CifarResNet18(channels, num_classes),
    "mlp": MLP,
    "lenet": LeNet,
    "alexnet": AlexNet,
    "alexnet-bn": functools.partial(AlexNet, batch_norm=True),
    "vgg11": VGG11,
    "vgg11-bn": functools.partial(VGG11, norm="batchnorm"),
    "resnet18-in": ResNet18,
    "resnet18-bn": functools.partial(ResNet18, norm="batchnorm"),
    "resnet18-bn-ap": functools.partial(ResNet18, norm="batchnorm", pooled=True),
}

# utils.get_network's names (VICO-UoE/DatasetCondensation) -> ours
REFERENCE_NAMES = {
    "ConvNet": "convnet3",
    "ConvNetD1": "convnet1", "ConvNetD2": "convnet2", "ConvNetD3": "convnet3", "ConvNetD4": "convnet4",
    "ConvNetW32": "convnet3-w32", "ConvNetW64": "convnet3-w64", "ConvNetW128": "convnet3", "ConvNetW256": "convnet3-w256",
    "ConvNetAS": "convnet3-sigmoid", "ConvNetAR": "convnet3", "ConvNetAL": "convnet3-leakyrelu",
    "ConvNetASwish": "convnet3-swish", "ConvNetASwishBN": "convnet3-swish-bn",
    "ConvNetNN": "convnet3-nonorm", "ConvNetBN": "convnet3-bn", "ConvNetLN": "convnet3-ln", "ConvNetIN": "convnet3",
    "ConvNetGN": "convnet3-gn",
    "ConvNetNP": "convnet3-nopool", "ConvNetMP": "convnet3-maxpool", "ConvNetAP": "convnet3",
    "MLP": "mlp", "LeNet": "lenet", "AlexNet": "alexnet", "AlexNetBN": "alexnet-bn", "VGG11": "vgg11", "VGG11BN": "vgg11-bn",
    "ResNet18": "resnet18-in", "ResNet18BN": "resnet18-bn", "ResNet18BN_AP": "resnet18-bn-ap",
}
_AMBIGUOUS = "resnet18"  # ours is RDED's; the reference's ResNet18 is another network
_REFERENCE_LOWER = {name.lower(): ours for name, ours in REFERENCE_NAMES.items() if name.lower() != _AMBIGUOUS}

NAMED_ARCHITECTURES: tuple[str, ...] = tuple(dict.fromkeys(["convnet3", "resnet18", *REFERENCE_NAMES.values()]))


@dataclass(frozen=True)
class ConvNetSpec:
    """One ConvNet of the family, from and to its name (``convnet4``, ``convnet3-w64-swish-bn``)."""

    depth: int = 3
    width: int = 128
    activation: str = "relu"
    norm: str = "in"
    pooling: str = "avgpool"

    @classmethod
    def parse(cls, name: str) -> Optional["ConvNetSpec"]:
        """The spec a lower-case name writes (qualifiers in any order, each kind once), else None."""
        match = re.fullmatch(r"convnet(\d+)((?:-[a-z0-9]+)*)", name)
        if match is None or int(match.group(1)) < 1:
            return None
        given: dict[str, object] = {"depth": int(match.group(1))}
        for token in filter(None, match.group(2).split("-")):
            kind, value = _qualifier(token)
            if kind is None or kind in given:
                return None
            given[kind] = value
        return cls(**given)

    @property
    def name(self) -> str:
        default = ConvNetSpec()
        qualifiers = [f"w{self.width}" if self.width != default.width else "",
                      *(getattr(self, kind) if getattr(self, kind) != getattr(default, kind) else ""
                        for kind in ("activation", "norm", "pooling"))]
        return "-".join([f"convnet{self.depth}", *filter(None, qualifiers)])

    def build(self, channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
        if self == ConvNetSpec():
            return ConvNet3(channels, num_classes, image_size)
        return ConvNet(channels, num_classes, image_size, depth=self.depth, width=self.width, activation=self.activation,
                       norm=CONVNET_NORMS[self.norm], pooling=CONVNET_POOLINGS[self.pooling])


def _qualifier(token: str) -> tuple[Optional[str], object]:
    """(setting, value) a ConvNet name's qualifier sets, or (None, None)."""
    width = re.fullmatch(r"w(\d+)", token)
    if width:
        return ("width", int(width.group(1))) if int(width.group(1)) > 0 else (None, None)
    if token in CONVNET_ACTIVATIONS:
        return "activation", token
    long_norms = {long: short for short, long in CONVNET_NORMS.items() if long != "none"}
    if token in CONVNET_NORMS or token in long_norms:
        return "norm", long_norms.get(token, token)
    if token in CONVNET_POOLINGS:
        return "pooling", token
    return None, None


@functools.cache
def torchvision_models() -> tuple[str, ...]:
    """The names of torchvision's classification models (not its detection, segmentation or video ones)."""
    import torchvision.models

    return tuple(torchvision.models.list_models(module=torchvision.models))


def accepted() -> str:
    """What ``arch`` accepts, in words (the end of every refusal)."""
    return (f"one of {list(NAMED_ARCHITECTURES)}, a name of the DC/DSA/DM code's get_network (such as 'ConvNetD4', "
            "'VGG11' or 'ResNet18BN'), a ConvNet written 'convnet<depth>[-w<width>][-<activation>][-<norm>][-<pooling>]', "
            "'torchvision:<model>' for a torchvision classifier, or in the SDK a callable "
            "(channels, num_classes, image_size) -> nn.Module")


def canonical_arch(arch: Arch) -> Arch:
    """The name recorded for ``arch`` (a callable is returned as it is), or a ``ValueError`` whose
    message starts with ``must be`` and says what is accepted."""
    if isinstance(arch, str):
        return _canonical_name(arch)
    if isinstance(arch, nn.Module):
        raise ValueError(f"must be a name or a function that builds a fresh network for each model, not a network "
                         f"({type(arch).__name__}); for example lambda channels, num_classes, size: MyNet(...)")
    if callable(arch):
        return arch
    raise ValueError(f"must be {accepted()}; got {arch!r}")


def _canonical_name(name: str) -> str:
    text = name.strip()
    lowered = text.lower()
    if lowered.startswith(TORCHVISION_PREFIX):
        model = lowered[len(TORCHVISION_PREFIX):].strip()
        if model not in torchvision_models():
            close = difflib.get_close_matches(model, torchvision_models(), n=1)
            raise ValueError(f"must name a torchvision classification model after 'torchvision:' "
                             f"({', '.join(torchvision_models())}); got {name!r}"
                             f"{f'. Did you mean torchvision:{close[0]}?' if close else ''}")
        return TORCHVISION_PREFIX + model
    if text in REFERENCE_NAMES:
        return REFERENCE_NAMES[text]
    if text == _AMBIGUOUS:
        return text
    if lowered == _AMBIGUOUS:
        raise ValueError(f"must be written exactly 'resnet18' (ours: RDED's small-image ResNet-18, batch norm) or "
                         f"'ResNet18' (the DC/DSA/DM code's, instance norm, also 'resnet18-in'); got {name!r}")
    if lowered.startswith(CALLABLE_PREFIX):
        raise ValueError(f"must be the callable itself: a recorded {name!r} names a function, it cannot rebuild it")
    if lowered in _REFERENCE_LOWER:
        return _REFERENCE_LOWER[lowered]
    if lowered in FIXED_NETWORKS:
        return lowered
    spec = ConvNetSpec.parse(lowered)
    if spec is not None:
        return spec.name
    close = difflib.get_close_matches(text, [*NAMED_ARCHITECTURES, *REFERENCE_NAMES], n=1)
    raise ValueError(f"must be {accepted()}; got {name!r}{f'. Did you mean {close[0]!r}?' if close else ''}")


@dataclass(frozen=True)
class Architecture:
    """A checked ``arch``: the name recorded for it, where it comes from (``ours``, ``torchvision``
    or ``callable``), whether that name identifies the network in another session (a callable's
    does only when it is importable by that name), and how to build one."""

    name: str
    kind: str
    identified: bool
    factory: NetworkFactory

    def build(self, channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
        network = self.factory(channels, num_classes, tuple(image_size))
        if not isinstance(network, nn.Module):
            raise ValueError(f"arch {self.name} returned {type(network).__name__}, not a torch.nn.Module")
        return network


def architecture(arch: Arch) -> Architecture:
    """``arch`` checked (a ``ValueError`` as :func:`canonical_arch` raises) and resolved."""
    arch = canonical_arch(arch)
    if not isinstance(arch, str):
        name, identified = callable_name(arch)
        return Architecture(name, "callable", identified, arch)
    if arch.startswith(TORCHVISION_PREFIX):
        return Architecture(arch, "torchvision", True,
                            functools.partial(torchvision_network, arch[len(TORCHVISION_PREFIX):]))
    factory = FIXED_NETWORKS.get(arch) or ConvNetSpec.parse(arch).build
    return Architecture(arch, "ours", True, factory)


def architecture_name(arch: Arch) -> str:
    """The name recorded for ``arch`` (JSON-ready): ours, ``torchvision:<model>`` or ``callable:<qualified name>``."""
    return architecture(arch).name


def callable_name(factory: Callable) -> tuple[str, bool]:
    """``callable:<module>.<qualified name>``, and whether that name identifies ``factory``: it is
    importable by that name (a module-level function or class outside ``__main__``). A lambda, a
    nested function, a bound method, a ``functools.partial`` or a script's function is not."""
    module, qualname = getattr(factory, "__module__", None), getattr(factory, "__qualname__", None)
    if qualname is None:  # an instance: name its type
        kind = type(factory)
        return f"{CALLABLE_PREFIX}{kind.__module__}.{kind.__qualname__}()", False
    found = sys.modules.get(module) if module and module != "__main__" and "<" not in qualname else None
    for part in qualname.split(".") if found is not None else ():
        found = getattr(found, part, None)
    return f"{CALLABLE_PREFIX}{module}.{qualname}", found is factory


def build_network(arch: Arch, channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
    """A freshly initialised network of ``arch`` for images of ``channels`` × ``image_size``."""
    return architecture(arch).build(channels, num_classes, image_size)


def torchvision_network(model: str, channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
    """torchvision's ``model`` with ``num_classes`` outputs and random weights, its first
    convolution taking ``channels`` inputs (see the module's docstring)."""
    from torchvision.models import get_model

    extra = {"aux_logits": False, "init_weights": True} if model in ("googlenet", "inception_v3") else {}
    network = get_model(model, weights=None, num_classes=num_classes, **extra)
    if channels != 3:
        adapt_first_convolution(network, channels)
    return network


def adapt_first_convolution(network: nn.Module, channels: int) -> None:
    """Replace the first ``Conv2d`` (3 inputs) by one of ``channels`` inputs whose kernel is the
    original summed over its inputs and shared out evenly: on an image whose channels are all equal
    it computes what the original computes."""
    name, first = next(((name, m) for name, m in network.named_modules() if isinstance(m, nn.Conv2d)), (None, None))
    if first is None or first.in_channels != 3 or first.groups != 1:
        raise ValueError(f"cannot adapt {type(network).__name__} to {channels}-channel images: its first layer is not "
                         "a 3-channel convolution")
    replacement = nn.Conv2d(channels, first.out_channels, first.kernel_size, first.stride, first.padding, first.dilation,
                            bias=first.bias is not None, padding_mode=first.padding_mode)
    with torch.no_grad():
        replacement.weight.copy_(first.weight.sum(1, keepdim=True).expand(-1, channels, -1, -1) / channels)
        if first.bias is not None:
            replacement.bias.copy_(first.bias)
    parent, _, attribute = name.rpartition(".")
    setattr(network.get_submodule(parent), attribute, replacement)


def probe_network(network: nn.Module, name: str, channels: int, num_classes: int, image_size: tuple[int, int]) -> None:
    """Run ``network`` (on its device, in eval mode, without gradients) on two blank images and
    check it returns ``(2, num_classes)`` logits; a ``ValueError`` saying why not."""
    was_training = network.training
    weight = next(network.parameters(), torch.empty(0))
    blank = torch.zeros(2, channels, *image_size, device=weight.device,
                        dtype=weight.dtype if weight.is_floating_point() else torch.float32)
    try:
        with torch.no_grad():
            output = network.eval()(blank)
    except Exception as error:  # noqa: BLE001 - any failure here means the network cannot take these images
        raise ValueError(f"arch {name} cannot take {channels}-channel {image_size[0]}×{image_size[1]} images: "
                         f"{type(error).__name__}: {error}") from error
    finally:
        network.train(was_training)
    if not isinstance(output, torch.Tensor) or tuple(output.shape) != (2, num_classes):
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ValueError(f"arch {name} must return logits of shape (batch, {num_classes}) for "
                         f"{channels}-channel {image_size[0]}×{image_size[1]} images; it returned {shape}")


def check_network(arch: Arch, channels: int, num_classes: int, image_size: tuple[int, int]) -> Architecture:
    """``arch`` resolved, after building one network (leaving torch's random state as it was) and
    probing it on images of this format: a ``ValueError`` before any training if it cannot take them."""
    resolved = architecture(arch)
    with torch.random.fork_rng(devices=[]):
        try:
            network = resolved.build(channels, num_classes, image_size)
        except Exception as error:  # noqa: BLE001 - a network too deep for the images, a user's factory failing
            raise ValueError(f"arch {resolved.name} could not be built for {channels}-channel "
                             f"{image_size[0]}×{image_size[1]} images and {num_classes} classes: "
                             f"{type(error).__name__}: {error}") from error
        probe_network(network, resolved.name, channels, num_classes, image_size)
    return resolved
