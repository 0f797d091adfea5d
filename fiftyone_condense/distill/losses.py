"""The papers' losses, written here: DM, DDM's style and diversity terms, AutoPalette's palette terms."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def mean_embedding_loss(real: torch.Tensor, synthetic: torch.Tensor) -> torch.Tensor:
    """DM: squared distance between the mean real and mean synthetic embedding of one class."""
    return (real.mean(0) - synthetic.mean(0)).square().sum()


def channel_moments(feature_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample channel mean and standard deviation of (N, C, H, W) maps: (N, C) each."""
    flat = feature_map.flatten(2)
    return flat.mean(2), flat.var(2, unbiased=False).add(1e-8).sqrt()


def gram(feature_map: torch.Tensor) -> torch.Tensor:
    """Per-sample channel correlation ``F Fᵀ / (C·H·W)`` of (N, C, H, W) maps: (N, C, C)."""
    n, c, h, w = feature_map.shape
    flat = feature_map.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def moments_loss(real: torch.Tensor, synthetic: torch.Tensor) -> torch.Tensor:
    """DDM moments matching: class-mean channel means and stds of real vs synthetic maps."""
    real_mean, real_std = channel_moments(real)
    syn_mean, syn_std = channel_moments(synthetic)
    return (real_mean.mean(0) - syn_mean.mean(0)).square().sum() + (real_std.mean(0) - syn_std.mean(0)).square().sum()


def correlation_loss(real: torch.Tensor, synthetic: torch.Tensor) -> torch.Tensor:
    """DDM correlation matching: class-mean Gram matrices of real vs synthetic maps."""
    return (gram(real).mean(0) - gram(synthetic).mean(0)).square().sum()


def neighbour_count(ipc: int) -> int:
    """DDM's k for intra-class diversity: round(0.2·IPC), clamped to [1, IPC − 1]."""
    return int(min(max(round(0.2 * ipc), 1), max(ipc - 1, 1)))


def diversity_loss(embeddings: torch.Tensor, k: int) -> torch.Tensor:
    """DDM intra-class diversity for one class: −mean KL(p_i ‖ mean of p over i's k nearest neighbours).

    ``p_i`` is the softmax of sample i's embedding; minimising the loss pushes each synthetic
    sample away from its nearest intra-class neighbours. Zero for a class of one.
    """
    n = embeddings.shape[0]
    if n < 2:
        return embeddings.sum() * 0.0
    k = min(k, n - 1)
    probabilities = F.softmax(embeddings.float(), dim=1)
    distances = torch.cdist(embeddings.detach().float(), embeddings.detach().float())
    distances.fill_diagonal_(float("inf"))
    neighbours = distances.topk(k, largest=False).indices  # (n, k)
    neighbour_mean = probabilities[neighbours].mean(1)
    kl = (probabilities * (probabilities.clamp_min(1e-12).log() - neighbour_mean.clamp_min(1e-12).log())).sum(1)
    return -kl.mean()


def max_color_loss(probabilities: torch.Tensor) -> torch.Tensor:
    """AutoPalette maximum colour loss: 1 − mean over images and colours of the colour's
    highest pixel confidence; 0 when every colour owns at least one pixel outright."""
    return 1.0 - probabilities.flatten(2).amax(2).mean()


def palette_balance_loss(probabilities: torch.Tensor) -> torch.Tensor:
    """AutoPalette palette balance: 1 − entropy of each image's colour usage / log K; 0 when uniform."""
    usage = probabilities.flatten(2).mean(2)  # (N, K)
    entropy = -(usage * usage.clamp_min(1e-12).log()).sum(1)
    return 1.0 - (entropy / math.log(probabilities.shape[1])).mean()


def confidence_loss(probabilities: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel entropy of the colour assignment / log K: 0 when every pixel is one-hot.

    Not in the paper's text but in its reference code (``conf_loss``); it keeps the soft palette
    used in training close to the hard (argmax) palette that is stored."""
    entropy = -(probabilities * probabilities.clamp_min(1e-12).log()).sum(1)
    return entropy.mean() / math.log(probabilities.shape[1])


def alignment_loss(probabilities: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """AutoPalette alignment: ‖P Pᵀ − M Mᵀ‖²_F / (HW)² per image, P the soft and M the Median-Cut
    one-hot assignments (pixels × colours). Pixel co-assignment ignores colour order; the
    K × K form ``‖PᵀP‖² + ‖MᵀM‖² − 2‖PᵀM‖²`` avoids the HW × HW matrices."""
    p = probabilities.flatten(2).float()  # (N, K, HW)
    m = F.one_hot(reference.flatten(1), probabilities.shape[1]).transpose(1, 2).float()  # (N, K, HW)
    pp, mm, pm = p @ p.transpose(1, 2), m @ m.transpose(1, 2), p @ m.transpose(1, 2)
    value = pp.square().sum((1, 2)) + mm.square().sum((1, 2)) - 2 * pm.square().sum((1, 2))
    return (value / p.shape[2] ** 2).mean()
