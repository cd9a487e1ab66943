"""capreolus_opt.stats against SciPy and hand computations on hand-made data."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from capreolus_opt import stats

# Per-query scores of two systems (hand-made, ties and a zero difference included).
A = np.array([0.61, 0.40, 0.93, 0.25, 0.77, 0.50, 0.66, 0.31, 0.88, 0.45, 0.52, 0.70])
B = np.array([0.55, 0.42, 0.80, 0.25, 0.70, 0.41, 0.66, 0.20, 0.85, 0.47, 0.40, 0.61])


def test_summary_matches_scipy_t_interval():
    values = [0.812, 0.797, 0.829, 0.805]
    got = stats.summarize(values)
    low, high = sps.t.interval(0.95, df=3, loc=np.mean(values), scale=sps.sem(values))
    assert got.n == 4
    assert got.mean == pytest.approx(np.mean(values), rel=1e-15)
    assert got.std == pytest.approx(np.std(values, ddof=1), rel=1e-14)
    assert (got.ci_low, got.ci_high) == pytest.approx((low, high), rel=1e-13)
    wider = stats.summarize(values, confidence=0.99)
    assert wider.ci_low < got.ci_low and wider.ci_high > got.ci_high


def test_summary_of_one_and_none_and_bad_confidence():
    one = stats.summarize([0.5])
    assert one.n == 1 and one.mean == 0.5 and math.isnan(one.std) and math.isnan(one.ci_low)
    assert stats.summarize([]).n == 0 and math.isnan(stats.summarize([]).mean)
    with pytest.raises(ValueError, match="confidence must be in"):
        stats.summarize([1.0, 2.0], confidence=95)


def test_welch_matches_scipy():
    a, b = [0.81, 0.79, 0.84, 0.80], [0.75, 0.78, 0.74]
    got = stats.welch_test(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert got.pvalue == pytest.approx(ref.pvalue, rel=1e-12)
    assert got.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert got.diff == pytest.approx(np.mean(a) - np.mean(b), rel=1e-14)
    assert got.method == "Welch t-test over runs (4 vs 3)"
    single = stats.welch_test([0.8], b)
    assert math.isnan(single.pvalue) and "needs >= 2" in single.method


def test_paired_t_matches_scipy():
    got = stats.paired_t_test(A, B)
    ref = sps.ttest_rel(A, B)
    assert got.pvalue == pytest.approx(ref.pvalue, rel=1e-12)
    assert got.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert got.n == 12 and got.method == "paired t-test over 12 queries"
    with pytest.raises(ValueError, match="equal lengths"):
        stats.paired_t_test(A, B[:-1])


def _enumerated_p(a, b):
    """Independent exact reference: every sign vector via itertools, |mean| >= |observed|."""
    d = np.asarray(a) - np.asarray(b)
    observed = abs(d.mean())
    hits = total = 0
    for signs in itertools.product((1.0, -1.0), repeat=d.size):
        total += 1
        hits += abs(np.dot(signs, d) / d.size) >= observed - 1e-12
    return hits / total


def test_permutation_exact_on_tiny_case_matches_enumeration_and_scipy():
    a, b = A[:6], B[:6]
    got = stats.permutation_test(a, b, n_resamples=10_000)
    assert "exact, 64 sign flips" in got.method
    assert got.pvalue == _enumerated_p(a, b)
    ref = sps.permutation_test(
        (a, b), lambda x, y: np.mean(x - y), permutation_type="samples", n_resamples=10_000,
        vectorized=False,
    )  # fmt: skip
    assert got.pvalue == pytest.approx(ref.pvalue, rel=1e-12)
    # By hand: d = [.06, -.02, .13, 0, .07, .09], |sum| = .33. Only |sum| = .37 (the -.02 flipped)
    # and .33 reach it: 2 sign patterns x 2 mirror images x 2 signs of the zero = 8 of 64.
    assert got.pvalue == pytest.approx(8 / 64)


def test_permutation_monte_carlo_agrees_with_exact_and_scipy():
    rng = np.random.default_rng(3)
    a = rng.uniform(0.2, 0.9, 40)
    b = a - rng.normal(0.02, 0.08, 40)
    got = stats.permutation_test(a, b, n_resamples=20_000, seed=1)
    assert "20000 sign flips" in got.method
    ref = sps.permutation_test(
        (a, b), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples",
        n_resamples=20_000, vectorized=True, rng=np.random.default_rng(7),
    )  # fmt: skip
    # Two independent Monte-Carlo estimates of one p: within 4 binomial standard errors.
    se = math.sqrt(ref.pvalue * (1 - ref.pvalue) / 20_000)
    assert abs(got.pvalue - ref.pvalue) < 4 * se + 1e-4
    assert stats.permutation_test(a, b, n_resamples=20_000, seed=1).pvalue == got.pvalue
    # Identical systems: nothing is more extreme than 0, so p = 1; never exactly 0.
    assert stats.permutation_test(a, a, n_resamples=500).pvalue == 1.0
    far = stats.permutation_test(a + 1.0, a, n_resamples=999)
    assert far.pvalue == pytest.approx(1 / 1000)


def test_holm_by_hand_and_with_nan():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*.005=.02, 3*.01=.03, 2*.03=.06, 1*.04=.04 -> max-acc
    expected = [0.03, 0.06, 0.06, 0.02]
    assert stats.holm(p) == pytest.approx(expected, rel=1e-14)
    got = stats.holm([0.2, math.nan, 0.6])
    assert got[0] == pytest.approx(0.4) and math.isnan(got[1]) and got[2] == pytest.approx(0.6)
    assert stats.holm([0.9, 0.8]) == [1.0, 1.0]
    assert stats.holm([]) == []


def test_paired_comparison_counts_by_hand_and_p_values_match_scipy():
    # A - B by hand: 8 positive, 2 zero (0.25 - 0.25, 0.66 - 0.66), 2 negative (queries 2, 10).
    d = A - B
    assert (
        stats.win_tie_loss(A, B)
        == (8, 2, 2)
        == (int((d > 1e-9).sum()), int((abs(d) <= 1e-9).sum()), int((d < -1e-9).sum()))
    )
    got = stats.paired_comparison(A, B)
    assert got["p_ttest"] == pytest.approx(sps.ttest_rel(A, B).pvalue, rel=1e-12)
    assert got["diff"] == pytest.approx(np.mean(d), rel=1e-14)
    assert got["p_randomisation"] == stats.permutation_test(A, B).pvalue
    assert (got["wins"], got["ties"], got["losses"]) == (8.0, 2.0, 2.0)
