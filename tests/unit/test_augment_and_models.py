"""DSA augmentation and the network builders."""

import pytest
import torch

from fiftyone_condense.augment import DSA, FAMILIES
from fiftyone_condense.models import bounded_features, build_model


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
