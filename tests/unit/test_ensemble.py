"""Models trained together (``algorithms/ensemble.py``) are the models trained one by one.

Weights are compared in float64, where the two orders of float operations agree to ~1e-13: in
float32 their rounding differs by ~1e-7, which a ReLU now and then amplifies (a value that
rounds to the other side of zero switches a unit), so float32 runs are compared by accuracy.
"""

import pytest
import torch
import torch.nn as nn

from fiftyone_condense.algorithms.augment import DSA, SoftAugment
from fiftyone_condense.algorithms.ensemble import RandomStreams, train_classifiers, train_students
from fiftyone_condense.algorithms.models import ConvNet3
from fiftyone_condense.algorithms.protocols import HardProtocol, SoftProtocol, evaluate_images
from fiftyone_condense.algorithms.training import KDConfig, TrainConfig, accuracy, train_classifier, train_student

CPU = torch.device("cpu")
SEEDS = [5, 6, 7]
SIDE = 8


def problem(dtype=torch.float64):
    """3 classes × 4 training images and 3 × 5 test images, 1 × 8 × 8."""
    generator = torch.Generator().manual_seed(0)
    train = torch.rand(12, 1, SIDE, SIDE, generator=generator, dtype=dtype)
    test = torch.rand(15, 1, SIDE, SIDE, generator=generator, dtype=dtype)
    return train, torch.arange(12) % 3, test, torch.arange(15) % 3


def seeded(build, seeds=SEEDS):
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(build().double())
    return models


def convnet():
    """ConvNet-3 (instance norm), narrow: float64 convolutions are slow."""
    return ConvNet3(1, 3, (SIDE, SIDE), width=16)


def batch_norm_net():
    """A small network with batch norm (running statistics as buffers)."""
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(32, 3))


def assert_same_models(alone, together, tolerance=1e-10):
    for one, other in zip(alone, together):
        for name, value in one.state_dict().items():
            scale = value.abs().max().clamp_min(1e-12) if value.is_floating_point() else 0
            torch.testing.assert_close(other.state_dict()[name], value, rtol=0, atol=tolerance * scale, msg=name)


@pytest.mark.parametrize("build", [convnet, batch_norm_net], ids=["convnet3", "batch_norm"])
def test_hard_protocol_together_equals_one_by_one(build):
    """3 epochs (4 passes, the lr drop and the new SGD after pass 2), 2 batches per pass, DSA:
    the same weights and buffers, and torch's generator left as the loop leaves it."""
    train, labels, *_ = problem()
    config = TrainConfig(epochs=3, batch_size=8)
    alone = [train_classifier(model, train, labels, config, CPU, seed, DSA())
             for model, seed in zip(seeded(build), SEEDS)]
    after_alone = torch.rand(3)
    together = train_classifiers(seeded(build), train, labels, config, CPU, SEEDS, DSA())
    assert_same_models(alone, together)
    assert torch.equal(torch.rand(3), after_alone)
    assert not any(model.training for model in together)


def test_soft_protocol_together_equals_one_by_one():
    """RDED's recipe, 3 epochs of 3 batches (5, 5, 2 images): per-image SoftAugment, CutMix,
    AdamW with its decay groups and the per-epoch schedule; the same validations."""
    train, _, test, test_labels = problem()
    torch.manual_seed(0)
    teacher = convnet().double().eval()
    config = KDConfig(epochs=3, batch_size=5)

    def augments():
        return [SoftAugment((SIDE, SIDE), 2, 1.0, seed) for seed in SEEDS]

    def validate(model):
        return accuracy(model, test, test_labels, CPU)

    alone = [train_student(model, teacher, train, config, CPU, augment, seed, validate=validate)
             for model, augment, seed in zip(seeded(convnet), augments(), SEEDS)]
    together = train_students(seeded(convnet), teacher, train, config, CPU, augments(), SEEDS, validate=validate)
    assert_same_models([model for model, _ in alone], [model for model, _ in together])
    assert [record for _, record in together] == [record for _, record in alone]


@pytest.mark.parametrize("protocol", [HardProtocol(epochs=2, num_models=3),
                                      SoftProtocol(epochs=2, num_models=3, batch_size=5)], ids=["hard", "soft"])
def test_evaluation_together_gives_the_one_by_one_accuracies(protocol):
    """``evaluate_images`` in float32, as it runs: the same accuracy for every model."""
    train, labels, test, test_labels = problem(torch.float32)
    torch.manual_seed(1)
    teacher = convnet().eval()
    results = [evaluate_images(train, labels, test, test_labels, 3, protocol, CPU, seed=4, teacher=teacher,
                               together=flag) for flag in (False, True)]
    assert results[1].accuracies == results[0].accuracies
    assert results[1].per_class == pytest.approx(results[0].per_class, nan_ok=True)
    assert results[1].best_accuracies == results[0].best_accuracies


def seeded_draws(seed, count):
    torch.manual_seed(seed)
    return torch.rand(count)


def test_random_streams_draw_as_each_seed_alone_and_keep_the_callers_state():
    streams = RandomStreams([1, 2], CPU)
    torch.manual_seed(9)
    drawn = [streams.call(0, torch.rand, 2), streams.call(1, torch.rand, 2), streams.call(0, torch.rand, 2)]
    callers = torch.rand(2)
    assert torch.equal(callers, seeded_draws(9, 2))
    assert torch.equal(torch.cat([drawn[0], drawn[2]]), seeded_draws(1, 4))
    assert torch.equal(drawn[1], seeded_draws(2, 2))
