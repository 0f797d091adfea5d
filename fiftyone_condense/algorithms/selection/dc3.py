"""DC3's submodular sampling: encoder bins per class, then GraphCut inside each bin.

Per class: PCA (50 components) and K-means (K = 10) on encoder features split the class into
bins, and GraphCut (λ = 1, similarity 0.5 + 0.5·cos) on gradient embeddings picks inside each
bin, as the reference's ``get_bins.py`` and ``submodular_sampling.py`` do. The reference gives
every bin ``max(1, IPC // K)`` picks and, where that is more than IPC (IPC < K), its validation
step keeps a random IPC of them; so does this, so a class gets exactly IPC. Where the reference
stops with an error we go on: a remainder (IPC > K, not a multiple of K) goes one each to the
largest bins, and a bin smaller than its share passes the excess on to the next largest.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from ..params import Param
from .base import SelectionMethod, register
from .gram import similarity_from_gram
from .submodular import GAIN_HELP, LAMBDA, OPTIMIZER, graph_cut_gains, pick_graph_cut

DEFAULT_VAE = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # DC3 encodes with the SD v1.5 pipeline's VAE


def encoder_bins(encoder: np.ndarray, bins: int = 10, pca_dim: int = 50, seed: int = 0) -> np.ndarray:
    """Bin index of each row: K-means (scikit-learn's defaults) on the first ``pca_dim`` principal components."""
    features = encoder.reshape(len(encoder), -1).astype(np.float64)
    clusters = min(bins, len(features))
    components = min(pca_dim, len(features), features.shape[1])
    if features.shape[1] > components:
        features = PCA(n_components=components, random_state=seed).fit_transform(features)
    return KMeans(n_clusters=clusters, random_state=seed).fit_predict(features)


def allocate(bin_sizes: np.ndarray, budget: int) -> np.ndarray:
    """Picks per bin: ``max(1, budget // K)`` each (the reference's), the remainder one each to
    the largest bins, within bin sizes. The total may exceed ``budget`` when budget < K."""
    if budget > int(bin_sizes.sum()):
        raise ValueError(f"budget {budget} exceeds the {int(bin_sizes.sum())} samples of the class")
    wanted = max(budget, len(bin_sizes))
    shares = np.minimum(bin_sizes, max(1, budget // len(bin_sizes)))
    by_size = np.argsort(-bin_sizes, kind="stable")
    while shares.sum() < wanted:
        for index in by_size:
            if shares.sum() == wanted:
                break
            if shares[index] < bin_sizes[index]:
                shares[index] += 1
    return shares


def pick_dc3(
    n: int, budget: int, rng: np.random.Generator, gram: np.ndarray, encoder: np.ndarray,
    bins: int = 10, pca_dim: int = 50, lambda_: float = 1.0, optimizer: str = "NaiveGreedy",
) -> np.ndarray:
    """DC3 picks for one class: ``gram`` of gradient embeddings, ``encoder`` features for the bins."""
    labels = encoder_bins(encoder, bins, pca_dim, seed=int(rng.integers(2**31 - 1)))
    shares = allocate(np.bincount(labels), budget)
    picks = []
    for label, share in enumerate(shares):
        if share:
            members = np.flatnonzero(labels == label)
            local = pick_graph_cut(len(members), int(share), rng, gram[np.ix_(members, members)], lambda_, optimizer)
            picks.extend(members[local].tolist())
    picks = np.array(picks, dtype=np.int64)
    return picks if len(picks) == budget else picks[np.sort(rng.choice(len(picks), size=budget, replace=False))]


def score_dc3(
    picks: np.ndarray, n: int, rng: np.random.Generator, gram: np.ndarray, encoder: np.ndarray,
    bins: int = 10, pca_dim: int = 50, lambda_: float = 1.0, optimizer: str = "NaiveGreedy",
) -> np.ndarray:
    """GraphCut's gain inside each item's bin (the bins rebuilt from ``rng``'s first draw, as
    :func:`pick_dc3` drew them): a pick's given the picks of its bin before it, any other's given
    all the picks of its bin."""
    labels = encoder_bins(encoder, bins, pca_dim, seed=int(rng.integers(2**31 - 1)))
    scores = np.empty(n)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        local = np.searchsorted(members, [p for p in picks if labels[p] == label])
        scores[members] = graph_cut_gains(similarity_from_gram(gram[np.ix_(members, members)]), local, lambda_)
    return scores


DC3_PARAMS = (
    Param("model", str, "vae", "Features K-means bins: the Stable Diffusion VAE (DC3), or a trained ConvNet-3 / "
          "ResNet-18 (the VAE falls back to ConvNet-3 when missing, recorded on the run)", label="Bin encoder",
          choices=("vae", "convnet3", "resnet18")),
    Param("vae_model", str, DEFAULT_VAE, "VAE hub id (from the local Hugging Face cache offline) or local directory",
          label="VAE weights", when={"model": "vae"}, path="hub"),
    Param("vae_size", int, 512, "Images are resized to this for the VAE (DC3: 512)", label="VAE input size", min=8,
          when={"model": "vae"}),
    Param("bins", int, 10, "K-means clusters per class; each gets max(1, IPC/K) picks", label="Bins (K)", min=1),
    Param("pca_dim", int, 50, "Principal components kept before K-means", label="PCA dimensions", min=1),
    Param("gradient_model", str, "imagenet_resnet18", "Network whose last-layer gradient embeddings GraphCut "
          "compares (DC3: ImageNet ResNet-18, untrained head; a trained ConvNet-3 when its weights are missing)",
          label="Gradient model", choices=("imagenet_resnet18", "convnet3", "resnet18")),
    Param("gradient_loss", str, "softmax_cross_entropy", "Loss of the gradient embeddings (DC3: cross-entropy of "
          "the softmax)", label="Gradient loss", choices=("cross_entropy", "softmax_cross_entropy")),
    Param("weights", str, None, "Local torchvision ImageNet ResNet-18 checkpoint; empty looks in torch's hub cache",
          label="ImageNet ResNet-18 weights (optional)", optional=True, path="local"),
    Param("embeddings_field", str, "condense_embedding", "Sample field for the gradient model's features "
          "(reused when it holds this model's embeddings)", label="Embeddings field"),
    Param("teacher_epochs", int, 2, "Epochs training a ConvNet-3 / ResNet-18 on the source when one is used",
          label="Teacher epochs", min=1),
    LAMBDA, OPTIMIZER,
)
register(SelectionMethod("dc3", pick_dc3, ("gram", "encoder"),
                         "DC3: GraphCut on gradient embeddings inside K-means bins of encoder features", DC3_PARAMS,
                         score_dc3, GAIN_HELP.format(what="representative of its bin and unlike its picks"),
                         needs_labels=True))
