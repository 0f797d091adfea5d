"""Gram matrices of feature and last-layer gradient embeddings.

The gradient embedding of a sample (BADGE; used by DC3) is ``[g, e ⊗ g]`` with
``g = softmax(logits) - onehot(label)`` (dL/dlogits of cross-entropy) and ``e`` the
penultimate features, i.e. the gradient of the loss with respect to the last layer's bias
and weights. Its dimension is C·(D+1), but inner products factorise:
``<[g,e⊗g], [h,f⊗h]> = <g,h>·(1 + <e,f>)``, so the Gram costs O(n²·(D+C)) and the
embedding itself never has to be built.
"""

from __future__ import annotations

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


def similarity_from_gram(gram: np.ndarray) -> np.ndarray:
    """The non-negative similarity ``0.5 + 0.5·cos`` used by the submodular functions."""
    norms = np.sqrt(np.clip(np.diag(gram), 1e-12, None))
    return (0.5 + 0.5 * gram / np.outer(norms, norms)).astype(np.float32)
