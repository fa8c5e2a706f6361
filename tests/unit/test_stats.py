import json

import numpy as np
import pytest
import torch
from scipy import stats as sps

from snnlib.stats import (AboveChance, Accuracy, Interval, above_chance, accuracy_from_counts, accuracy_from_outcomes,
                          clopper_pearson)


@pytest.mark.parametrize("n", [1, 7, 100, 1017])
@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_edges_match_closed_form(n, confidence):
    alpha = 1 - confidence
    lo0, hi0 = clopper_pearson(0, n, confidence)
    assert lo0 == 0.0
    assert hi0 == pytest.approx(1 - (alpha / 2) ** (1 / n), abs=1e-10)
    lon, hin = clopper_pearson(n, n, confidence)
    assert hin == 1.0
    assert lon == pytest.approx((alpha / 2) ** (1 / n), abs=1e-10)


@pytest.mark.parametrize("k,n,ref", [
    (5, 10, (0.1870860, 0.8129140)),        # standard table value
    (682, 925, (0.7076683, 0.7654066)),     # R: binom.test(682, 925)
])
def test_tabulated_values(k, n, ref):
    lo, hi = clopper_pearson(k, n)
    assert lo == pytest.approx(ref[0], abs=1e-6)
    assert hi == pytest.approx(ref[1], abs=1e-6)


@pytest.mark.parametrize("k,n", [(1, 3), (5, 10), (37, 50), (682, 925), (9999, 10000)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_endpoints_solve_the_defining_tail_equations(k, n, confidence):
    # Clopper-Pearson: P(X >= k | p = low) = alpha/2 and P(X <= k | p = high) = alpha/2, X ~ Binomial(n, p)
    alpha = 1 - confidence
    lo, hi = clopper_pearson(k, n, confidence)
    assert sps.binom.sf(k - 1, n, lo) == pytest.approx(alpha / 2, rel=1e-8)
    assert sps.binom.cdf(k, n, hi) == pytest.approx(alpha / 2, rel=1e-8)
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    assert (lo, hi) == pytest.approx((ref.low, ref.high), abs=1e-10)


def test_interval_is_a_tuple_with_a_dict():
    iv = clopper_pearson(5, 10)
    assert isinstance(iv, Interval) and isinstance(iv, tuple) and iv == (iv.low, iv.high)
    assert json.loads(json.dumps(iv.to_dict())) == {"low": iv.low, "high": iv.high}


def test_interval_contains_estimate_and_narrows():
    for k, n in [(1, 3), (37, 50), (713, 1017), (9999, 10000)]:
        lo, hi = clopper_pearson(k, n)
        assert 0 <= lo < k / n < hi <= 1
    widths = [(lambda t: t[1] - t[0])(clopper_pearson(7 * m, 10 * m)) for m in (1, 10, 100, 1000)]
    assert all(a > b for a, b in zip(widths, widths[1:]))
    # higher confidence -> wider
    lo95, hi95 = clopper_pearson(30, 100, 0.95)
    lo99, hi99 = clopper_pearson(30, 100, 0.99)
    assert lo99 < lo95 and hi99 > hi95


@pytest.mark.parametrize("args", [(-1, 10), (11, 10), (0, 0), (1.0, 10), ("1", 10), (True, 10),
                                  (1, 10, 0.0), (1, 10, 1.0), (1, 10, 95)])
def test_bad_inputs(args):
    with pytest.raises(ValueError):
        clopper_pearson(*args)


def test_accuracy_object():
    acc = accuracy_from_counts(725, 1017)
    assert isinstance(acc, Accuracy)
    assert acc.value == pytest.approx(725 / 1017)
    assert str(acc) == "71.3% [68.4, 74.1] (n=1017)"
    d = acc.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["correct"] == 725 and d["total"] == 1017 and d["confidence"] == 0.95
    assert d["low"] < d["value"] < d["high"]
    with pytest.raises(ValueError):
        accuracy_from_counts(5, 3)


def test_accuracy_from_outcomes_matches_counts_for_numpy_torch_and_lists():
    correct = np.array([1, 0, 1, 1, 0, 1, 1], dtype=bool)
    ref = accuracy_from_counts(5, 7)
    assert accuracy_from_outcomes(correct) == ref
    assert accuracy_from_outcomes(torch.from_numpy(correct)) == ref
    assert accuracy_from_outcomes([1, 0, 1, 1, 0, 1, 1]) == ref


@pytest.mark.parametrize("bad,match", [(np.array([0.0, 1.0]), "dtype"), (np.array([0, 2]), "only 0 and 1"),
                                       (np.zeros((2, 2), bool), "shape"), (np.zeros(0, bool), "empty")])
def test_accuracy_from_outcomes_rejects_bad_outcomes(bad, match):
    with pytest.raises(ValueError, match=match):
        accuracy_from_outcomes(bad)


def test_above_chance_is_the_exact_upper_tail():
    for k, n, chance in [(15, 100, 0.1), (20, 100, 0.1), (3, 10, 0.1), (0, 10, 0.1), (130, 1017, 0.1)]:
        res = above_chance(k, n, chance)
        assert isinstance(res, AboveChance)
        # brute force: P(X >= k) by summing the binomial pmf
        tail = sum(sps.binom.pmf(j, n, chance) for j in range(k, n + 1))
        assert res.p_value == pytest.approx(tail, rel=1e-9)
        assert res.above == (tail < 0.05)
    assert not above_chance(15, 100, 0.1).above      # 15 % on 100 images: p = 0.073
    assert above_chance(20, 100, 0.1).above          # 20 %: p = 0.0020
    assert not above_chance(10, 100, 0.1).above      # exactly chance is never above it
    d = above_chance(20, 100, 0.1).to_dict()
    assert json.loads(json.dumps(d)) == d and d["chance"] == 0.1


@pytest.mark.parametrize("args,match", [((5, 3, 0.1), "k must satisfy"), ((1, 10, 0.0), "chance"),
                                        ((1, 10, 1.0), "chance"), ((1, 10, 0.1, 0.0), "alpha"),
                                        ((1.0, 10, 0.1), "k must be an integer")])
def test_above_chance_bad_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        above_chance(*args)
