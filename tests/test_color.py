"""Colour compensation's building blocks: combine modes, the classical backend, statistics."""

import numpy as np
import pytest
import torch

from fiftyone_condense.color import combine, color_stats
from fiftyone_condense.color.classical import warm_and_cold
from fiftyone_condense.color.combine import gradient_mask
from fiftyone_condense.color.stats import colorfulness, unique_colors

WARM, COLD = torch.ones(6, 3, 20, 20), torch.zeros(6, 3, 20, 20)


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def test_gradient_takes_each_side_from_one_edit_outside_the_ramp():
    mask = gradient_mask(50, 40, 40, generator(), ramp=0.2)
    out = combine(torch.ones(50, 3, 40, 40), torch.zeros(50, 3, 40, 40), "gradient", generator(), ramp=0.2)
    torch.testing.assert_close(out[:, :1], mask)  # warm = 1, cold = 0: the output is the warm weight
    for weights in mask[:, 0]:
        along_x = not torch.allclose(weights[:, 0], weights[:, -1])
        profile = weights[0] if along_x else weights[:, 0]
        assert profile[0] == 1 and profile[-1] == 0, "one edit at each end"
        blended = ((profile > 0) & (profile < 1)).sum()
        assert blended <= int(0.2 * 40) + 1, "only the ramp is blended"
        assert torch.all(profile[1:] <= profile[:-1]), "a monotone ramp"


def test_random_mode_picks_each_pixel_from_one_edit():
    out = combine(WARM, COLD, "random", generator())
    assert set(out.unique().tolist()) == {0.0, 1.0}
    assert 0.35 < out.mean() < 0.65
    assert torch.equal(out[:, 0], out[:, 1]), "the mask is shared by the channels"


def test_grid_mode_fills_whole_blocks_from_one_edit():
    out = combine(WARM, COLD, "grid", generator(), blocks=4)
    blocks = out[:, 0].reshape(6, 4, 5, 4, 5)
    assert torch.all(blocks.amax(dim=(2, 4)) == blocks.amin(dim=(2, 4)))


def test_fourfold_is_a_two_by_two_mosaic_of_half_size_views():
    warm = torch.rand(2, 3, 16, 16)
    cold = torch.rand(2, 3, 16, 16)
    out = combine(warm, cold, "fourfold", generator())
    half = torch.nn.functional.interpolate(warm, size=(8, 8), mode="bilinear", antialias=True, align_corners=False)
    torch.testing.assert_close(out[..., :8, :8], half)
    torch.testing.assert_close(out[..., 8:, 8:], half)
    assert not torch.allclose(out[..., :8, 8:], half)


def test_unknown_combine_mode_is_refused():
    with pytest.raises(ValueError, match="Unknown combine mode"):
        combine(WARM, COLD, "spiral", generator())


def test_classical_backend_is_deterministic_for_a_seed_and_warm_is_warmer_than_cold():
    images = torch.rand(4, 3, 12, 12)
    first = warm_and_cold(images, generator(7))
    again = warm_and_cold(images, generator(7))
    other = warm_and_cold(images, generator(8))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])
    warm, cold = first
    temperature = lambda x: (x[:, 0] - x[:, 2]).mean()  # noqa: E731 (red minus blue)
    assert temperature(warm) > temperature(images) > temperature(cold)


def test_colorfulness_follows_hasler_and_susstrunk():
    grey = torch.full((1, 3, 4, 4), 0.5)
    assert colorfulness(grey).item() == pytest.approx(0.0)
    red = torch.zeros(1, 3, 4, 4)
    red[:, 0] = 1.0
    # rg = 255, yb = 127.5 everywhere: no spread, so 0.3 · sqrt(255² + 127.5²)
    assert colorfulness(red).item() == pytest.approx(0.3 * np.hypot(255, 127.5), rel=1e-5)


def test_unique_colours_and_kde():
    image = torch.zeros(1, 3, 2, 2)
    image[0, :, 0, 0] = 1.0
    image[0, 0, 1, 1] = 1.0
    assert unique_colors(image).tolist() == [3]
    stats = color_stats(torch.rand(5, 3, 8, 8), points=101)
    assert set(stats["kde"]["density"]) == {"red", "green", "blue"}
    area = np.trapezoid(stats["kde"]["density"]["red"], stats["kde"]["grid"])
    assert 0.8 < area < 1.1  # a density on [0, 1] (a little mass spills past the ends)
    assert stats["unique_colors"]["mean"] == 64
