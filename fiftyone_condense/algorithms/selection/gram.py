"""Gram matrices of feature and last-layer gradient embeddings.

The gradient embedding of a sample (BADGE; used by DC3) is ``[g, e ⊗ g]`` with
``g = softmax(logits) - onehot(label)`` (dL/dlogits of cross-entropy) and ``e`` the
penultimate features, i.e. the gradient of the loss with respect to the last layer's bias
and weights. Its dimension is C·(D+1), but inner products factorise:
``<[g,e⊗g], [h,f⊗h]> = <g,h>·(1 + <e,f>)``, so the Gram costs O(n²·(D+C)) and the
embedding itself never has to be built.
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

LOSSES = ("cross_entropy", "softmax_cross_entropy")


def loss_gradients(logits: np.ndarray, labels: np.ndarray, loss: str = "cross_entropy") -> np.ndarray:
    """dL/dlogits for each row. ``cross_entropy`` (BADGE): ``softmax(z) − onehot``.
    ``softmax_cross_entropy``: cross-entropy applied to ``softmax(z)``, as DC3's reference code
    computes it (``CrossEntropyLoss()(softmax(outputs), targets)``): with ``p = softmax(z)`` and
    ``d = softmax(p) − onehot``, ``p ⊙ d − p·⟨p, d⟩``."""
    if loss not in LOSSES:
        raise ValueError(f"Unknown loss {loss!r}; choose one of {LOSSES}")
    probabilities = F.softmax(torch.as_tensor(logits, dtype=torch.float64), dim=1)
    onehot = F.one_hot(torch.as_tensor(labels, dtype=torch.long), probabilities.shape[1]).double()
    if loss == "cross_entropy":
        return (probabilities - onehot).numpy()
    d = F.softmax(probabilities, dim=1) - onehot
    return (probabilities * d - probabilities * (probabilities * d).sum(1, keepdim=True)).numpy()


def gradient_embeddings(features: np.ndarray, logits: np.ndarray, labels: np.ndarray, loss: str = "cross_entropy") -> np.ndarray:
    """Explicit ``[g, e ⊗ g]`` rows (C·(D+1) wide); use for small sets or for checking."""
    g = loss_gradients(logits, labels, loss)
    outer = np.einsum("nd,nc->ndc", features.astype(np.float64), g).reshape(len(features), -1)
    return np.concatenate([g, outer], axis=1)


def feature_gram(features: np.ndarray) -> np.ndarray:
    """Inner products of the rows of ``features`` (float64 for stable greedy steps)."""
    e = torch.as_tensor(features, dtype=torch.float32)
    return (e @ e.T).double().numpy()


def gradient_gram(features: np.ndarray, logits: np.ndarray, labels: np.ndarray, loss: str = "cross_entropy") -> np.ndarray:
    """Gram of gradient embeddings without building them: ``(G Gᵀ) ∘ (1 + E Eᵀ)``."""
    g = torch.as_tensor(loss_gradients(logits, labels, loss))
    return ((g @ g.T) * (1.0 + torch.as_tensor(feature_gram(features)))).numpy()


class FactoredGram:
    """A class's Gram matrix kept as its factors, rows computed on demand: O(n·d) memory instead of
    O(n²), which is all herding and k-center need (its diagonal, row means and single rows).

    Features ``E`` alone give ``E Eᵀ``; with loss gradients ``G`` it is the gradient-embedding Gram
    ``(G Gᵀ) ∘ (1 + E Eᵀ)``, whose row means are ``G ḡ + diag(G M Eᵀ)`` with ``M = Gᵀ E / n``.
    """

    def __init__(self, features: np.ndarray, gradients: Optional[np.ndarray] = None):
        self.features = torch.as_tensor(np.asarray(features, dtype=np.float32))
        self.gradients = None if gradients is None else torch.as_tensor(np.asarray(gradients, dtype=np.float64))

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> np.ndarray:
        row = (self.features @ self.features[i]).double()
        return (row if self.gradients is None else (self.gradients @ self.gradients[i]) * (1.0 + row)).numpy()

    def diagonal(self) -> np.ndarray:
        norms = self.features.square().sum(1).double()
        return (norms if self.gradients is None else self.gradients.square().sum(1) * (1.0 + norms)).numpy()

    def row_means(self) -> np.ndarray:
        e = self.features
        if self.gradients is None:
            return (e @ e.mean(0)).double().numpy()
        g, e = self.gradients, e.double()
        mixed = g.T @ e / len(e)  # (C, D)
        return (g @ g.mean(0) + ((g @ mixed) * e).sum(1)).numpy()


Gram = Union[np.ndarray, FactoredGram]


def gram_diagonal(gram: Gram) -> np.ndarray:
    return gram.diagonal() if isinstance(gram, FactoredGram) else np.diag(gram).copy()


def gram_row_means(gram: Gram) -> np.ndarray:
    return gram.row_means() if isinstance(gram, FactoredGram) else gram.mean(axis=1)


def similarity_from_gram(gram: np.ndarray) -> np.ndarray:
    """The non-negative similarity ``0.5 + 0.5·cos`` used by the submodular functions."""
    norms = np.sqrt(np.clip(np.diag(gram), 1e-12, None))
    return (0.5 + 0.5 * gram / np.outer(norms, norms)).astype(np.float32)
