"""Any architecture evaluates: our names, the DC/DSA/DM code's names, torchvision's classifiers and a
user's own network, each trained through ``evaluate_images``; what is not accepted says what is.
(That our networks are the reference's is in test_reference_parity.py.)"""

import json

import pytest
import torch
import torch.nn as nn

from fiftyone_condense.algorithms.architectures import (
    NAMED_ARCHITECTURES, REFERENCE_NAMES, architecture, build_network, canonical_arch, check_network,
)
from fiftyone_condense.algorithms.errors import CondensationError
from fiftyone_condense.algorithms.params import declared, resolve
from fiftyone_condense.algorithms.protocols import PROTOCOLS, HardProtocol, evaluate_images
from fiftyone_condense.algorithms.training import predict_logits

CPU = torch.device("cpu")
SMALLEST = {"convnet4": 16, "lenet": 16, "vgg11": 32, "vgg11-bn": 32}  # px; the rest take 8 px images


def tiny_network(channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
    """A user's own network (module level, so its name identifies it)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * image_size[0] * image_size[1], num_classes))


def images(channels: int, size: int, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, channels, size, size, generator=generator), torch.arange(count) % 3


def one_epoch(arch, channels: int, size: int, together: bool = False):
    """One model trained one epoch (``epochs + 1`` = 2 passes, DSA) on 6 images, tested on 6."""
    protocol = HardProtocol(arch=arch, epochs=1, num_models=1)
    return evaluate_images(*images(channels, size, 6, 0), *images(channels, size, 6, 1), 3, protocol, CPU,
                           together=together)


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("name", NAMED_ARCHITECTURES)
def test_every_named_architecture_trains_an_epoch(name, channels):
    """Colour images train one by one (the CPU's way), grey ones stacked (an accelerator's)."""
    result = one_epoch(name, channels, SMALLEST.get(name, 8), together=channels == 1)
    assert result.protocol["arch"] == name and result.num_train == 6
    assert len(result.accuracies) == 1 and 0.0 <= result.mean <= 1.0


@pytest.mark.parametrize("channels", [3, 1])
def test_a_torchvision_classifier_and_a_callable_train_an_epoch(channels):
    for arch, name in (("torchvision:resnet18", "torchvision:resnet18"),
                       (tiny_network, f"callable:{__name__}.tiny_network")):
        result = one_epoch(arch, channels, 16)
        assert result.protocol["arch"] == name and 0.0 <= result.mean <= 1.0
        json.dumps(result.as_dict())


def test_a_grey_torchvision_network_computes_what_the_colour_one_does_on_repeated_grey():
    torch.manual_seed(0)
    colour = build_network("torchvision:resnet18", 3, 10, (32, 32)).eval()
    torch.manual_seed(0)
    grey = build_network("torchvision:resnet18", 1, 10, (32, 32)).eval()
    assert grey.conv1.in_channels == 1
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(grey(x), colour(x.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-5)


def test_googlenet_is_built_without_auxiliary_heads_so_training_returns_logits():
    network = build_network("torchvision:googlenet", 1, 5, (32, 32)).train()
    assert network(torch.rand(2, 1, 32, 32)).shape == (2, 5)


def test_names_are_ours_the_references_or_torchvisions_and_are_recorded_in_one_spelling():
    assert all(canonical_arch(name) == name for name in NAMED_ARCHITECTURES)
    assert set(REFERENCE_NAMES.values()) <= set(NAMED_ARCHITECTURES)
    assert canonical_arch("ConvNetD4") == canonical_arch("convnetd4") == "convnet4"
    assert canonical_arch("ConvNetASwishBN") == canonical_arch("convnet3-batchnorm-swish") == "convnet3-swish-bn"
    assert canonical_arch("convnet2-maxpool-w64-layernorm") == "convnet2-w64-ln-maxpool"  # any combination
    assert canonical_arch("convnet3-w128-relu-in-avgpool") == canonical_arch("ConvNet") == "convnet3"
    assert canonical_arch("ResNet18") == "resnet18-in" and canonical_arch("resnet18") == "resnet18"
    assert canonical_arch("vgg11BN") == "vgg11-bn" and canonical_arch(" TorchVision:ResNet34 ") == "torchvision:resnet34"
    assert HardProtocol(arch="AlexNetBN").arch == "alexnet-bn"
    assert canonical_arch(tiny_network) is tiny_network


def test_a_callable_is_recorded_by_name_and_is_cacheable_only_when_that_name_identifies_it():
    def nested(channels, num_classes, image_size):
        return tiny_network(channels, num_classes, image_size)

    assert architecture(tiny_network).identified
    assert not architecture(nested).identified and "<locals>" in architecture(nested).name
    assert not architecture(lambda c, n, s: tiny_network(c, n, s)).identified
    assert HardProtocol(arch=nested).as_dict()["arch"] == architecture(nested).name
    json.dumps(HardProtocol(arch=nested).as_dict())


@pytest.mark.parametrize("arch, message", [
    ("magic", r"must be one of \['convnet3', 'resnet18', .*'resnet18-bn-ap'\], a name of the DC/DSA/DM .*torchvision:<model>"
              r".* a callable .*got 'magic'"),
    ("LeNett", "Did you mean 'LeNet'"),
    ("Resnet18", "must be written exactly 'resnet18' .* or 'ResNet18'"),
    ("torchvision:resnet35", "must name a torchvision classification model .*Did you mean torchvision:resnet"),
    ("torchvision:fasterrcnn_resnet50_fpn", "must name a torchvision classification model"),
    (nn.Linear(3, 3), "not a network"),
    (42, "got 42"),
])
def test_an_unknown_architecture_is_refused_saying_what_is_accepted(arch, message):
    with pytest.raises(ValueError, match=message):
        HardProtocol(arch=arch)
    if isinstance(arch, str):  # the SDK's check of the declared parameter says the same
        for protocol in PROTOCOLS.values():
            with pytest.raises(CondensationError, match=f"the hard protocol: arch (.* )?{message}"):
                resolve("the hard protocol", declared(protocol), {"arch": arch})


def test_arch_is_declared_once_for_every_protocol_and_offers_the_named_set():
    params = [next(p for p in declared(protocol) if p.name == "arch") for protocol in PROTOCOLS.values()]
    assert all(p == params[0] for p in params) and params[0].choices == NAMED_ARCHITECTURES
    assert resolve("m", params[:1], {"arch": "LeNet"}) == {"arch": "lenet"}
    assert resolve("m", params[:1], {"arch": tiny_network}) == {"arch": tiny_network}


def test_a_network_that_cannot_take_the_images_is_refused_before_training():
    with pytest.raises(ValueError, match=r"arch vgg11 could not be built for 3-channel 8×8 images.*needs larger images"):
        check_network("vgg11", 3, 10, (8, 8))
    with pytest.raises(ValueError, match=r"must return logits of shape \(batch, 10\).*returned \(2, 4\)"):
        check_network(lambda c, n, s: tiny_network(c, 4, s), 3, 10, (8, 8))
    with pytest.raises(ValueError, match="returned NoneType, not a torch.nn.Module"):
        check_network(lambda c, n, s: None, 3, 10, (8, 8))
    with pytest.raises(ValueError, match="cannot take 3-channel 8×8 images"):
        one_epoch(lambda c, n, s: nn.Sequential(nn.Flatten(), nn.Linear(5, n)), 3, 8)
    state = torch.get_rng_state()
    check_network("convnet3", 1, 10, (28, 28))
    assert torch.equal(torch.get_rng_state(), state)  # the check draws nothing the seeded models would


def test_logits_come_from_forward_for_networks_without_embed():
    network = tiny_network(1, 3, (8, 8))
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(predict_logits(network, x, CPU, batch_size=2), network(x))
