"""The distillation losses on inputs with known answers, and the engine's guarantees."""

import math

import numpy as np
import pytest
import torch

from fiftyone_condense.algorithms.distillation import AutoPalette, distill, losses, settings_for
from fiftyone_condense.algorithms.distillation.autopalette import PaletteNetwork, hard_quantize, soft_quantize
from fiftyone_condense.algorithms.distillation.palette import median_cut


def test_moments_and_gram_of_a_constant_map():
    constant = torch.full((3, 4, 5, 6), 2.0)
    mean, std = losses.map_moments(constant)
    torch.testing.assert_close(mean, torch.full((3, 4), 2.0))
    torch.testing.assert_close(std, torch.full((3, 4), 1e-5 ** 0.5))  # sqrt(var + 1e-5), as the reference
    # every entry of F Fᵀ is Σ 2·2 over H·W pixels, divided by C·H·W: 4 / C
    torch.testing.assert_close(losses.gram(constant), torch.full((3, 4, 4), 4.0 / 4))
    assert losses.moments_distance(constant, constant.clone()).tolist() == [0.0] * 3
    # means differ by 2 in every channel, stds not at all: (MSE 4 + 0) / 2 per class
    assert losses.moments_distance(constant, 2 * constant).tolist() == pytest.approx([2.0] * 3)
    assert losses.gram_distance(losses.gram(constant), losses.gram(2 * constant)).tolist() == pytest.approx([16 * 9.0] * 3)


def test_dm_loss_is_the_squared_distance_of_class_means():
    real, synthetic = torch.tensor([[1.0, 0.0], [3.0, 2.0]]), torch.tensor([[0.0, 0.0]])
    assert losses.mean_embedding_loss(real, synthetic).item() == pytest.approx(2.0**2 + 1.0**2)


def test_diversity_kl_of_identical_distributions_is_zero():
    same = torch.ones(5, 7)
    assert losses.diversity_loss(same, k=2).item() == pytest.approx(0.0, abs=1e-7)
    spread = torch.eye(5, 7) * 10
    assert losses.diversity_loss(spread, k=2).item() < -1.0  # distinct samples: positive KL, negative loss
    assert losses.diversity_loss(spread[:1], k=2).item() == 0.0  # a class of one has no neighbours
    assert losses.diversity_loss(spread[:2], k=2).item() < 0  # k shrinks to the class size − 1


def test_colour_losses_of_one_hot_and_uniform_maps():
    indices = torch.arange(16).view(1, 4, 4) % 4  # every one of 4 colours owns pixels outright
    one_hot = torch.nn.functional.one_hot(indices, 4).permute(0, 3, 1, 2).float()
    assert losses.max_color_loss(one_hot).item() == pytest.approx(-1.0)
    assert losses.confidence_loss(one_hot).item() == pytest.approx(0.0, abs=1e-6)
    uniform = torch.full((2, 4, 3, 3), 0.25)
    assert losses.palette_balance_loss(uniform).item() == pytest.approx(-math.log(4), rel=1e-6)
    assert losses.max_color_loss(uniform).item() == pytest.approx(-0.25)
    assert losses.confidence_loss(uniform).item() == pytest.approx(math.log(4), rel=1e-6)
    single = torch.zeros(1, 4, 2, 2)
    single[:, 0] = 1
    assert losses.palette_balance_loss(single).item() == pytest.approx(0.0, abs=1e-6)


def test_alignment_ignores_colour_order():
    reference = torch.tensor([[[0, 0], [1, 2]]])
    permuted = torch.nn.functional.one_hot(torch.tensor([[[2, 2], [0, 1]]]), 3).permute(0, 3, 1, 2).float()
    aligned = losses.pixel_similarity_loss(permuted, reference, np.random.RandomState(0), sample_ratio=1.0)
    assert aligned.item() == pytest.approx(0.0, abs=1e-7)
    merged = torch.nn.functional.one_hot(torch.tensor([[[0, 0], [0, 2]]]), 3).permute(0, 3, 1, 2).float()
    assert losses.pixel_similarity_loss(merged, reference, np.random.RandomState(0), sample_ratio=1.0).item() > 0.1


def test_the_colour_losses_train_the_palette_network_and_leave_the_images_alone():
    """AutoPalette's colour losses see detached images: with or without them, one step moves the
    images identically, and only the palette network's update differs."""
    real, labels, init, init_labels = small_problem()
    images, palettes = [], []
    for colour in (1.0, 0.0):
        settings = settings_for("autopalette", iterations=1, batch_real=16, num_colors=8, max_color_weight=colour,
                                balance_weight=colour, alignment_weight=3 * colour)
        distiller = AutoPalette(real, labels, init, init_labels, 3, settings, torch.device("cpu"), seed=0)
        distiller.step(0)
        images.append(distiller.synthetic.detach().clone())
        palettes.append(distiller.palette.net[0].weight.detach().clone())
    torch.testing.assert_close(images[0], images[1], rtol=0, atol=0)
    assert not torch.allclose(palettes[0], palettes[1])


def test_hard_palette_output_has_at_most_k_colours():
    images = torch.rand(3, 3, 10, 10)
    network = PaletteNetwork(3, 5)
    probabilities = network(images)
    assert probabilities.shape == (3, 5, 10, 10)
    torch.testing.assert_close(probabilities.sum(1), torch.ones(3, 10, 10))
    palettes, indices = hard_quantize(images, probabilities)
    quantised = palettes[torch.arange(3).view(3, 1, 1), indices]  # (3, H, W, 3)
    for image in quantised:
        assert len(torch.unique(image.reshape(-1, 3), dim=0)) <= 5
    assert soft_quantize(images, probabilities).shape == images.shape


def test_median_cut_quantises_to_k_colours():
    quantised, indices = median_cut(torch.rand(2, 3, 16, 16), 8)
    assert quantised.shape == (2, 3, 16, 16) and indices.max() < 8
    for image in quantised:
        assert len(torch.unique(image.reshape(3, -1).T, dim=0)) <= 8


def small_problem():
    generator = torch.Generator().manual_seed(0)
    real = torch.rand(300, 1, 12, 12, generator=generator)
    labels = torch.arange(300) % 3
    real[labels == 1, :, :6] += 0.5  # classes differ so matching has something to learn
    real[labels == 2, :, 6:] += 0.5
    real = real.clamp(0, 1)
    init = torch.rand(6, 1, 12, 12, generator=generator)
    return real, labels, init, torch.tensor([0, 0, 1, 1, 2, 2])


def test_dm_reduces_its_loss_on_a_small_real_problem():
    real, labels, init, init_labels = small_problem()
    result = distill(real, labels, init, init_labels, 3, settings_for("dm", iterations=30, batch_real=64, dsa=False),
                     torch.device("cpu"))
    first, last = sum(result.history[:5]) / 5, sum(result.history[-5:]) / 5
    assert last < 0.5 * first


def test_the_palette_warm_up_fits_the_network_to_the_real_images_before_distilling():
    real, labels, init, init_labels = small_problem()
    settings = settings_for("autopalette", batch_real=16, num_colors=8, palette_warmup=3)
    distiller = AutoPalette(real, labels, init, init_labels, 3, settings, torch.device("cpu"), seed=0)
    probe = distiller.normalizer(real[:64])
    before = distiller._colour_loss(probe, np.random.RandomState(0), confidence=False).item()
    distiller.warm_up()
    assert distiller._colour_loss(probe, np.random.RandomState(0), confidence=False).item() < before


def test_real_images_in_chunks_of_classes_give_the_per_class_result():
    real, labels, init, init_labels = small_problem()
    results = [distill(real, labels, init, init_labels, 3, settings_for("ddm", iterations=3, batch_real=16, real_chunk=chunk),
                       torch.device("cpu"))
               for chunk in (16, 48)]
    assert results[0].history == pytest.approx(results[1].history, rel=1e-4)
    torch.testing.assert_close(results[0].images, results[1].images, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("method", ["dm", "autopalette"])
def test_resuming_after_an_interruption_gives_the_uninterrupted_result(tmp_path, method):
    real, labels, init, init_labels = small_problem()
    colours = {"num_colors": 4} if method == "autopalette" else {}
    settings = settings_for(method, iterations=6, batch_real=16, checkpoint_every=2, **colours)
    straight = distill(real, labels, init, init_labels, 3, settings, torch.device("cpu"), seed=5)

    checkpoint = tmp_path / "checkpoint.pt"

    def interrupt_after_four(fraction, message):
        if fraction >= 4 / 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill(real, labels, init, init_labels, 3, settings, torch.device("cpu"), seed=5, checkpoint=checkpoint,
                progress=interrupt_after_four)
    resumed = distill(real, labels, init, init_labels, 3, settings, torch.device("cpu"), seed=5, checkpoint=checkpoint)
    assert resumed.resumed_from == 4
    assert resumed.history == pytest.approx(straight.history)
    torch.testing.assert_close(resumed.images, straight.images)


def test_a_checkpoint_from_other_settings_is_not_resumed(tmp_path):
    real, labels, init, init_labels = small_problem()
    checkpoint = tmp_path / "checkpoint.pt"
    distill(real, labels, init, init_labels, 3, settings_for("dm", iterations=2, batch_real=8), torch.device("cpu"),
            checkpoint=checkpoint)
    other = distill(real, labels, init, init_labels, 3, settings_for("dm", iterations=2, batch_real=8, lr_img=0.5),
                    torch.device("cpu"), checkpoint=checkpoint)
    assert other.resumed_from == 0 and math.isfinite(other.history[-1])


def test_decomposed_dm_carries_its_style_loss_over_classes_as_the_authors_code():
    # DM_MeanStd_Matching.py / DM_GramMatching.py: style_loss = 0 once, then per class c:
    # style_loss += Σ_layers d[c, l]; style_loss /= L; loss += ratio * style_loss
    distances = torch.rand(4, 3, dtype=torch.float64)  # (classes, layers)
    carried, total = 0.0, 0.0
    for per_layer in distances:
        carried = (carried + per_layer.sum()) / len(per_layer)
        total += carried
    weights = losses.carried_over_weights(torch.arange(4), classes=4, layers=3).double()
    assert float((distances.mean(1) * weights).sum()) == pytest.approx(float(total), rel=1e-6)
    # each class counts 1.3-1.4 times on average at 4-10 classes and 3 style layers; once without carry-over
    for classes, average in ((4, 1.315), (10, 1.425)):
        assert float(losses.carried_over_weights(torch.arange(classes), classes, 3).mean()) == pytest.approx(average, abs=1e-3)
    assert losses.carried_over_weights(torch.arange(1), 1, 3).tolist() == [1.0]
