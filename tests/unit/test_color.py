"""Colour compensation's building blocks: combine modes, the classical backend, statistics."""

import numpy as np
import pytest
import torch

from fiftyone_condense.algorithms.color import color_stats, combine, plan_edits
from fiftyone_condense.algorithms.color.classical import warm_and_cold
from fiftyone_condense.algorithms.color.stats import colorfulness, unique_colors

WARM, COLD = torch.ones(6, 3, 64, 64), torch.zeros(6, 3, 64, 64)


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def test_gradient_is_warm_then_cold_with_a_20_pixel_ramp_at_the_centre():
    out = combine(WARM, COLD, plan_edits(6, "gradient", (64, 64), seed=0))
    for image in out[:, 0]:
        rows_vary = not torch.equal(image[0], image[-1])
        profile = image[:, 0] if rows_vary else image[0]
        assert profile[0] == 1 and profile[-1] == 0, "warm first, cold last"
        assert int(((profile > 0) & (profile < 1)).sum()) == 18, "only the ramp is blended"
        assert torch.all(profile[1:] <= profile[:-1]), "a monotone ramp"
        assert profile[31] > 0.5 > profile[32], "split at the centre"


def test_random_mode_picks_each_pixel_and_channel_from_one_edit():
    out = combine(WARM, COLD, plan_edits(6, "random", (64, 64), seed=0))
    assert set(out.unique().tolist()) == {0.0, 1.0}
    assert 0.35 < out.mean() < 0.65
    assert not torch.equal(out[:, 0], out[:, 1]), "each channel draws its own"


def test_grid_mode_fills_whole_8_pixel_cells_from_one_edit():
    out = combine(WARM, COLD, plan_edits(6, "grid", (64, 64), seed=0))
    cells = out[:, 0].reshape(6, 8, 8, 8, 8)
    assert torch.all(cells.amax(dim=(2, 4)) == cells.amin(dim=(2, 4)))


def test_fourfold_is_a_two_by_two_mosaic_of_half_size_views():
    warm = torch.rand(2, 3, 16, 16)
    cold = torch.rand(2, 3, 16, 16)
    out = combine(warm, cold, plan_edits(2, "fourfold", (16, 16), seed=0))
    half = torch.nn.functional.interpolate(warm, size=(8, 8), mode="bilinear", antialias=True, align_corners=False)
    torch.testing.assert_close(out[..., :8, :8], half)
    torch.testing.assert_close(out[..., 8:, 8:], half)
    assert not torch.allclose(out[..., :8, 8:], half)


def test_a_seed_fixes_styles_and_masks_and_an_unknown_mode_is_refused():
    first, again = plan_edits(4, "grid", (32, 32), seed=3), plan_edits(4, "grid", (32, 32), seed=3)
    assert first.warm == again.warm and first.cold == again.cold
    assert all(torch.equal(a, b) for a, b in zip(first.masks, again.masks))
    with pytest.raises(ValueError, match="Unknown combine mode"):
        plan_edits(1, "spiral", (8, 8), seed=0)


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
