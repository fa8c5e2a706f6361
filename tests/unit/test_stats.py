import json
import math

import pytest

from snnlib.stats import Accuracy, accuracy_from_counts, betainc, clopper_pearson


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


def test_betainc_known_values():
    assert betainc(1, 1, 0.3) == pytest.approx(0.3, abs=1e-14)          # uniform
    assert betainc(2, 3, 0.4) == pytest.approx(0.5248, abs=1e-12)       # 1 - sum binom(4,j) .4^j .6^(4-j), j<2
    assert betainc(3, 2, 0.6) == pytest.approx(1 - betainc(2, 3, 0.4), abs=1e-14)


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
