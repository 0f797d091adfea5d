"""The papers' losses, written here from their reference code's formulas.

* DM (VICO-UoE/DatasetCondensation ``main_DM.py``): squared distance of class-mean embeddings.
* Decomposed DM (SaharR1372/DM_Style_matching ``utils_DM.py``): moments and Gram matching on
  the activation maps after each normalisation layer, intra-class diversity on embeddings.
* AutoPalette (KeViNYuAn0314/AutoPalette ``distill/dm_quant.py``): the palette network's
  maximum-colour, balance, confidence and pixel-similarity (alignment) losses.

``tests/test_reference_parity.py`` holds golden values computed with the reference code.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

STD_EPS = 1e-5  # DDM's calc_mean_std: sqrt(unbiased variance + 1e-5)
ENTROPY_EPS = 1e-16  # AutoPalette's entropy: -x log(x + 1e-16)


def mean_embedding_loss(real: torch.Tensor, synthetic: torch.Tensor) -> torch.Tensor:
    """DM: squared distance between the mean real and mean synthetic embedding of one class."""
    return (real.mean(0) - synthetic.mean(0)).square().sum()


# --------------------------------------------------------------------------- Decomposed DM


def map_moments(mean_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel mean and std (``sqrt(unbiased var + 1e-5)``) of (..., C, H, W) maps: (..., C) each.

    DDM applies it to a class's *batch-averaged* map, not to each sample."""
    flat = mean_map.flatten(-2)
    return flat.mean(-1), (flat.var(-1) + STD_EPS).sqrt()


def moments_distance(real_mean_map: torch.Tensor, syn_mean_map: torch.Tensor) -> torch.Tensor:
    """DDM moments matching of one layer: ``(MSE(μ_s, μ_r) + MSE(σ_s, σ_r)) / 2`` over channels,
    per class for (classes, C, H, W) batch-averaged maps: (classes,)."""
    real_mu, real_sigma = map_moments(real_mean_map)
    syn_mu, syn_sigma = map_moments(syn_mean_map)
    return ((syn_mu - real_mu).square().mean(-1) + (syn_sigma - real_sigma).square().mean(-1)) / 2


def gram(feature_map: torch.Tensor) -> torch.Tensor:
    """Per-sample channel correlation ``F Fᵀ / (C·H·W)`` of (N, C, H, W) maps: (N, C, C)."""
    n, c, h, w = feature_map.shape
    flat = feature_map.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def gram_distance(real_mean_gram: torch.Tensor, syn_mean_gram: torch.Tensor) -> torch.Tensor:
    """DDM correlation matching of one layer: summed squared difference of class-mean Grams: (classes,)."""
    return (real_mean_gram - syn_mean_gram).square().sum((-2, -1))


def carried_over_weights(positions: torch.Tensor, classes: int, layers: int) -> torch.Tensor:
    """How often each class's layer-averaged style distance counts when, as in the DDM authors' code,
    ``style_loss`` is not reset between classes: class c adds s_c = (s_{c−1} + Σ_layers d_c) / L to the
    loss, so the class at ``position`` k of ``classes`` counts Σ_{j=0}^{classes−1−k} L^{−j} times."""
    later = classes - positions.to(torch.float64)  # classes from this one to the last
    decay = 1.0 / layers
    weights = later if layers == 1 else (1 - decay ** later) / (1 - decay)
    return weights.float()


def diversity_loss(embeddings: torch.Tensor, k: int = 2) -> torch.Tensor:
    """DDM intra-class diversity of one class: ``−mean_i KL(softmax(e_i) ‖ softmax(mean of the
    embeddings of i's k nearest neighbours))`` (Euclidean, self excluded).

    Minimising it pushes each synthetic sample away from its nearest intra-class neighbours.
    The reference needs k + 1 samples; here k shrinks to the class size − 1, and a class of one
    gives zero.
    """
    n = embeddings.shape[0]
    if n < 2:
        return embeddings.sum() * 0.0
    k = min(k, n - 1)
    distances = torch.cdist(embeddings.detach(), embeddings.detach())
    neighbours = distances.topk(k + 1, largest=False).indices[:, 1:]  # the nearest is the sample itself
    log_p = F.log_softmax(embeddings, dim=1)
    log_q = F.log_softmax(embeddings[neighbours].mean(1), dim=1)
    return -(log_p.exp() * (log_p - log_q)).sum(1).mean()


# --------------------------------------------------------------------------- AutoPalette


def _entropy(probabilities: torch.Tensor, dim: int = 1) -> torch.Tensor:
    return -(probabilities * torch.log(probabilities + ENTROPY_EPS)).sum(dim)


def max_color_loss(probabilities: torch.Tensor) -> torch.Tensor:
    """Maximum colour loss: −mean over images and colours of the colour's highest pixel
    probability, so every colour should own some pixel outright. (N, K, H, W) → scalar."""
    return -probabilities.flatten(2).amax(2).mean()


def palette_balance_loss(probabilities: torch.Tensor) -> torch.Tensor:
    """Palette balance: −entropy (nats) of each image's mean colour usage, averaged over images."""
    return -_entropy(probabilities.mean((2, 3))).mean()


def confidence_loss(probabilities: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel entropy (nats) of the colour assignment: 0 when every pixel is one-hot."""
    return _entropy(probabilities).mean()


def pixel_similarity_loss(probabilities: torch.Tensor, target: torch.Tensor, rng: np.random.RandomState,
                          sample_ratio: float = 0.3) -> torch.Tensor:
    """AutoPalette's alignment with Median-Cut (``PixelSimLoss``): on ``sample_ratio`` of each
    image's pixels (drawn from ``rng``, image by image), the pixel affinities ``fᵀf`` of the soft
    assignment and of the one-hot Median-Cut one, each column L2-normalised, differ by
    ``‖A_p − A_M‖²_F / n``, averaged over images. ``target``: (N, H, W) colour indices.
    """
    n_images, colours, height, width = probabilities.shape
    count = int(height * width * sample_ratio)
    picks = torch.from_numpy(np.stack([rng.choice(height * width, count, replace=False) for _ in range(n_images)]))
    picks = picks.to(probabilities.device, non_blocking=True).unsqueeze(1).expand(-1, colours, -1)
    target = target.unsqueeze(1).to(probabilities.device, non_blocking=True)
    one_hot = torch.zeros_like(probabilities).scatter_(1, target, 1.0)

    def affinity(assignment: torch.Tensor) -> torch.Tensor:
        sampled = assignment.reshape(n_images, colours, -1).gather(2, picks)
        return F.normalize(sampled.transpose(1, 2) @ sampled, p=2, dim=1)

    return ((affinity(probabilities) - affinity(one_hot)).square().sum((1, 2)) / count).mean()
