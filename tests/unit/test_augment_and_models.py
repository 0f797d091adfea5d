"""DSA augmentation and the network builders."""

import pytest
import torch

from fiftyone_condense.algorithms.augment import DSA, FAMILIES, _Draws
from fiftyone_condense.algorithms.models import bounded_features, build_model


def test_a_shared_seed_gives_every_batch_the_same_transform():
    real, synthetic = torch.rand(5, 3, 16, 16), torch.rand(2, 3, 16, 16)
    both = torch.cat([real, synthetic])
    for seed in range(12):
        augmented = DSA()(both, seed=seed)
        torch.testing.assert_close(augmented[:5], DSA()(real, seed=seed))
        torch.testing.assert_close(augmented[5:], DSA()(synthetic, seed=seed))


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_is_differentiable_and_keeps_the_shape(family):
    images = torch.rand(4, 1, 12, 12, requires_grad=True)
    out = DSA(strategy=family)(images)
    assert out.shape == images.shape
    out.sum().backward()
    assert images.grad is not None and torch.isfinite(images.grad).all()


def test_crop_moves_by_whole_pixels_and_cutout_zeroes_half_the_side():
    image = torch.arange(64.0).view(1, 1, 8, 8) + 1
    shifted = DSA(strategy="crop")(image, seed=1)
    moved = [
        (dy, dx) for dy in range(-1, 2) for dx in range(-1, 2)
        if torch.allclose(shifted[0, 0, 1:-1, 1:-1], image[0, 0, 1 + dy:7 + dy, 1 + dx:7 + dx])
    ]
    assert moved, "crop must be an integer translation"
    cut = DSA(strategy="cutout")(image, seed=2)
    zeros = int((cut == 0).sum())
    assert 0 < zeros <= 16


def test_flip_mirrors_or_keeps_each_image():
    images = torch.rand(16, 1, 6, 6)
    flipped = DSA(strategy="flip")(images)
    for original, out in zip(images, flipped):
        assert torch.equal(out, original) or torch.equal(out, original.flip(2))


@pytest.mark.parametrize("arch, channels, size", [("convnet3", 1, 28), ("convnet3", 3, 32), ("resnet18", 1, 28)])
def test_networks_embed_and_classify(arch, channels, size):
    model = build_model(arch, channels, 10, (size, size)).eval()
    x = torch.rand(2, channels, size, size)
    assert model(x).shape == (2, 10)
    assert model.embed(x).shape == (2, model.embedding_dim)


def test_convnet_pads_grey_28px_input_like_the_reference():
    assert build_model("convnet3", 1, 10, (28, 28)).embedding_dim == 128 * 4 * 4


def test_stored_features_are_pooled_to_at_most_2048_values_at_any_resolution():
    small, large = build_model("convnet3", 1, 10, (28, 28)), build_model("convnet3", 3, 10, (224, 224))
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(bounded_features(small.embed(x), small), small.embed(x))  # 128 × 4 × 4: kept as it is
    features = large.embed(torch.rand(2, 3, 224, 224))
    assert features.shape[1] == 128 * 28 * 28
    pooled = bounded_features(features, large)
    assert pooled.shape == (2, 2048)
    expected = torch.nn.functional.adaptive_avg_pool2d(features.view(2, 128, 28, 28), 4).flatten(1)
    assert torch.allclose(pooled, expected)


def test_dsa_blocks_equal_one_call_per_block_with_each_family_applied_once():
    """Distillation augments each class's block with the class's seed; ``blocks`` gives the same
    images (and gradients) as one call per block, whatever families the blocks drew."""
    sizes, seeds = [7, 3, 5, 1, 4, 6, 2, 8], [11, 12, 40, 41, 97, 98, 300, 301]
    images = torch.rand(sum(sizes), 3, 12, 12, requires_grad=True)
    families = {DSA()._draw(images, 1, _Draws(seed), images.device)[0] for seed in seeds}
    assert len(families) >= 4
    together = DSA().blocks(images, sizes, seeds)
    one_by_one = torch.cat([DSA()(block, seed=seed) for block, seed in zip(torch.split(images, sizes), seeds)])
    torch.testing.assert_close(together, one_by_one)
    weights = torch.rand_like(together)
    grad_together, = torch.autograd.grad((together * weights).sum(), images)
    grad_one_by_one, = torch.autograd.grad((one_by_one * weights).sum(), images)
    torch.testing.assert_close(grad_together, grad_one_by_one)


@pytest.mark.parametrize("arch, channels, size", [("convnet3", 1, 28), ("convnet3", 3, 32), ("resnet18", 3, 32)])
def test_a_network_redrawn_in_place_is_a_fresh_one(arch, channels, size):
    """Distillation re-draws one network each iteration instead of building one: for ConvNet-3
    the very weights a new build draws after the same seed; for ResNet-18 the same distributions."""
    torch.manual_seed(5)
    fresh = build_model(arch, channels, 10, (size, size))
    reused = build_model(arch, channels, 10, (size, size))
    torch.manual_seed(5)
    reused.reset_parameters()
    for (name, a), b in zip(fresh.state_dict().items(), reused.state_dict().values()):
        if arch == "convnet3":
            assert torch.equal(a, b), name
        elif name.endswith("conv1.weight") or name.endswith("conv2.weight"):
            assert abs(a.std() - b.std()) < 0.15 * a.std(), name
