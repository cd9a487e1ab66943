"""Ranking losses against float64 NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
from keras import ops

from capreolus_opt.models.losses import (
    pairwise_hinge_loss,
    ranking_loss,
    softmax_ranking_loss,
)

RNG = np.random.default_rng(0)
POS = RNG.normal(size=6).astype(np.float32)
NEG1 = RNG.normal(size=6).astype(np.float32)
NEGK = RNG.normal(size=(6, 3)).astype(np.float32)


def _np(x):
    return np.asarray(ops.convert_to_numpy(x), np.float64)


def test_hinge_one_and_many_negatives():
    p, n1, nk = POS.astype(np.float64), NEG1.astype(np.float64), NEGK.astype(np.float64)
    np.testing.assert_allclose(
        _np(pairwise_hinge_loss(POS, NEG1, margin=0.5)), np.maximum(0, 0.5 - (p - n1)), atol=1e-6
    )
    ref = np.maximum(0, 1.0 - (p[:, None] - nk)).sum(axis=1)
    np.testing.assert_allclose(_np(pairwise_hinge_loss(POS, NEGK)), ref, atol=1e-6)


def test_softmax_is_cross_entropy_on_the_positive():
    p, nk = POS.astype(np.float64), NEGK.astype(np.float64)
    logits = np.concatenate([p[:, None], nk], axis=1)
    ref = -(p - np.log(np.exp(logits).sum(axis=1)))
    np.testing.assert_allclose(_np(softmax_ranking_loss(POS, NEGK)), ref, atol=1e-6)
    # One negative: RankNet's pairwise logistic loss softplus(s- - s+).
    ref1 = np.log1p(np.exp(NEG1.astype(np.float64) - p))
    np.testing.assert_allclose(_np(softmax_ranking_loss(POS, NEG1)), ref1, atol=1e-6)


def test_dispatch_and_unknown_name():
    np.testing.assert_allclose(
        _np(ranking_loss("softmax", POS, NEG1)), _np(softmax_ranking_loss(POS, NEG1))
    )
    with pytest.raises(ValueError, match="'listwise'"):
        ranking_loss("listwise", POS, NEG1)
