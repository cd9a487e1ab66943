"""Per-example ranking losses on (positive score, negative scores).

Both take ``positive [B]`` and ``negative [B]`` or ``[B, K]`` scores and return a loss per
example ``[B]`` (the training loop sums and divides by the global batch size):

- ``pairwise_hinge_loss``: ``sum_k max(0, margin - (s+ - s-_k))`` (RankSVM-style hinge).
- ``softmax_ranking_loss``: ``-log softmax([s+, s-_1..s-_K])[0]``, i.e. cross-entropy with the
  positive as the target class; with one negative it is the pairwise logistic loss
  ``softplus(s- - s+)`` (RankNet).

Negatives are only the example's own: no in-batch negatives, so a per-example loss does not
depend on how the batch is split across replicas.
"""

from __future__ import annotations

from keras import ops

LOSSES = ("pairwise_hinge", "softmax")


def _as_matrix(negative):
    return negative[:, None] if len(negative.shape) == 1 else negative


def pairwise_hinge_loss(positive, negative, *, margin: float = 1.0):
    """``sum_k max(0, margin - (positive - negative_k))`` per example."""
    negative = _as_matrix(negative)
    return ops.sum(ops.relu(margin - (positive[:, None] - negative)), axis=-1)


def softmax_ranking_loss(positive, negative):
    """``logsumexp([s+, s-...]) - s+`` per example (cross-entropy on the positive)."""
    logits = ops.concatenate([positive[:, None], _as_matrix(negative)], axis=-1)
    return ops.logsumexp(logits, axis=-1) - positive


def ranking_loss(name: str, positive, negative, *, margin: float = 1.0):
    """Dispatches on ``name`` in ``LOSSES``."""
    if name == "pairwise_hinge":
        return pairwise_hinge_loss(positive, negative, margin=margin)
    if name == "softmax":
        return softmax_ranking_loss(positive, negative)
    raise ValueError(f"loss must be one of {LOSSES}. Received: {name!r}")
