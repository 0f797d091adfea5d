"""AutoPalette's evaluation: experts stepped by GSAM, soft labels from their logits, SoftCrossEntropy."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fiftyone_condense.algorithms.experts import (
    ExpertConfig, GradientFn, gsam_update, soft_label_logits, train_experts,
)
from fiftyone_condense.algorithms.protocols import AutoPaletteProtocol, HardProtocol, evaluate_images

CPU = torch.device("cpu")

# Three steps of AutoPalette's GSAM (buffer/gsam/gsam.py: base SGD lr 0.01, no momentum,
# ρ = 2 through ProportionScheduler, α = 0.4, adaptive) on the problem below, run with the
# authors' classes: the first four values of each parameter tensor afterwards.
GSAM_GOLDEN = [-0.006409851138, 0.267254592063, -0.40882376106, -0.363285907494, 0.178015717772, 0.413427775802,
               -0.10041160233, 0.370018107359, 0.043097749227, 0.405488697118, -0.415098266447, -0.281842987631,
               0.022996255485, -0.226979295709, 0.073885364156]


def test_gsam_steps_match_the_authors_optimizer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    x, labels = torch.randn(6, 4).double(), torch.tensor([0, 1, 2, 0, 1, 2])
    params = list(model.parameters())
    for p in params:
        p.grad = torch.zeros_like(p)
    sgd = torch.optim.SGD(params, lr=0.01, momentum=0.0)
    for _ in range(3):
        gsam_update(params, GradientFn(model, x, labels, CPU), rho=2.0, alpha=0.4, adaptive=True)
        sgd.step()
    values = [v for p in params for v in p.detach().flatten()[:4].tolist()]
    assert values == pytest.approx(GSAM_GOLDEN, abs=1e-10)


def test_soft_labels_follow_the_initialisation_rule():
    """dm_quant.py: one expert labels every image (init real/graphcut), or each image takes the
    mean logits of the experts that classify it correctly (init medcut_graphcut)."""
    logits = torch.tensor([[[3.0, 0.0], [2.0, 1.0], [1.0, 0.0]],     # expert 0: right, wrong, wrong
                           [[1.0, 2.0], [0.0, 5.0], [4.0, 0.0]],     # expert 1: wrong, right, wrong
                           [[5.0, 1.0], [1.0, 3.0], [3.0, 2.0]]])    # expert 2: right, right, wrong
    labels = torch.tensor([0, 1, 1])
    assert torch.equal(soft_label_logits(logits, labels, "one_expert"), logits[0])
    correct = soft_label_logits(logits, labels, "correct_experts")
    assert torch.equal(correct[0], torch.tensor([4.0, 0.5]))  # experts 0 and 2
    assert torch.equal(correct[1], torch.tensor([0.5, 4.0]))  # experts 1 and 2
    assert torch.allclose(correct[2], logits[:, 2].mean(0))   # none is right: all experts (theirs: 0/0)
    with pytest.raises(ValueError, match="one_expert"):
        soft_label_logits(logits, labels, "best")


def test_soft_targets_train_with_the_authors_soft_cross_entropy():
    """Training on softmax(logits) with cross-entropy is their SoftCrossEntropy of the logits."""
    outputs, targets = torch.randn(7, 4), torch.randn(7, 4)
    theirs = torch.sum(-F.log_softmax(outputs, dim=1) * F.softmax(targets, dim=1)) / 7
    assert torch.allclose(F.cross_entropy(outputs, targets.softmax(1)), theirs)


def test_autopalette_protocol_trains_on_expert_labels_together_or_one_by_one():
    """End to end on a tiny problem: experts trained once, the models on their soft labels; the
    stacked pass gives the one-by-one accuracies; the defaults are the authors'."""
    generator = torch.Generator().manual_seed(0)
    train, test = torch.rand(24, 1, 8, 8, generator=generator), torch.rand(15, 1, 8, 8, generator=generator)
    labels, test_labels = torch.arange(24) % 3, torch.arange(15) % 3
    experts = train_experts(train, labels, 3, ExpertConfig(num_experts=2, epochs=1, batch_size=8), CPU)
    assert len(experts.models) == 2 and experts.logits(train[:5], CPU).shape == (2, 5, 3)
    protocol = AutoPaletteProtocol(epochs=2, num_models=2, soft_labels="correct_experts")
    results = [evaluate_images(train[:9], labels[:9], test, test_labels, 3, protocol, CPU, seed=1, experts=experts,
                               together=flag) for flag in (False, True)]
    assert results[0].accuracies == results[1].accuracies
    assert results[0].protocol["name"] == "autopalette"
    with pytest.raises(ValueError, match="experts"):
        evaluate_images(train[:9], labels[:9], test, test_labels, 3, protocol, CPU)
    default = AutoPaletteProtocol()
    assert (default.epochs, default.lr, default.batch_size, default.soft_labels, default.expert_epochs) == (
        1000, 0.01, 128, "one_expert", 50)
    assert default.expert_config().num_experts == 1 and protocol.expert_config().num_experts == 10
    assert default.train_config() == HardProtocol(epochs=1000).train_config().__class__(
        epochs=1000, lr=0.01, momentum=0.9, weight_decay=5e-4, batch_size=128)
    expert = ExpertConfig()
    assert (expert.lr, expert.rho, expert.alpha, expert.adaptive, expert.batch_size) == (0.01, 2.0, 0.4, True, 256)
