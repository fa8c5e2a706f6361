"""Paired statistics (snnlib.stats): McNemar, Tango interval, TOST, power, trend over levels, seed pooling, Holm.

Known answers are hand-made outcome vectors, published values (Fagerland, Lydersen & Laake, "Statistical Analysis of
Contingency Tables", 2017, as implemented in the R package contingencytables: Cavo et al. 2012 and Ezra et al. 2010
tables), scipy, and brute force (enumeration over binomial outcomes or within-image permutations).
"""
import itertools
import json
import math

import numpy as np
import pytest
import torch
from scipy import optimize
from scipy import stats as sps

from snnlib.stats import (PairedTable, accuracy_from_counts, compare_paired_table, decide_difference,
                          equivalence_from_table, equivalence_tost, holm, images_needed, mde_paired, paired_comparison,
                          paired_table, pooled_paired, tango_interval, trend_test)

Z95 = sps.norm.ppf(0.975)


def outcomes(n: int, correct_idx) -> np.ndarray:
    y = np.zeros(n, dtype=bool)
    y[list(correct_idx)] = True
    return y


def table_vectors(n11, n10, n01, n00):
    """Per-image outcome vectors (a, b) realising a paired table."""
    a = np.array([1] * n11 + [1] * n10 + [0] * n01 + [0] * n00, dtype=bool)
    b = np.array([1] * n11 + [0] * n10 + [1] * n01 + [0] * n00, dtype=bool)
    return a, b


def json_roundtrip(d):
    return json.loads(json.dumps(d, allow_nan=False))


# --------------------------------------------------------------------------------------------- the table
def test_paired_table_counts_hand_example_and_inputs():
    a = np.array([1, 1, 0, 0, 1, 0], dtype=bool)
    b = np.array([1, 0, 1, 0, 0, 0], dtype=bool)
    t = paired_table(a, b)
    assert (t.n11, t.n10, t.n01, t.n00, t.n) == (1, 2, 1, 2, 6)
    assert t.accuracy_a == pytest.approx(3 / 6) and t.accuracy_b == pytest.approx(2 / 6)
    assert t.difference == pytest.approx(1 / 6)
    assert paired_table(torch.from_numpy(a), torch.from_numpy(b)) == t
    assert paired_table(a.astype(int).tolist(), b.astype(np.int64)) == t
    assert PairedTable.from_dict(t.to_dict()) == t


@pytest.mark.parametrize("a,b,match", [
    (np.ones(5, bool), np.ones(4, bool), "same images"),
    (np.ones(5), np.ones(5, bool), "dtype"),
    (np.ones((5, 1), bool), np.ones(5, bool), "shape"),
])
def test_paired_table_bad_inputs(a, b, match):
    with pytest.raises(ValueError, match=match):
        paired_table(a, b)


def test_paired_table_validates_counts():
    with pytest.raises(ValueError, match="n10"):
        PairedTable(1, -1, 0, 0)
    with pytest.raises(ValueError, match="at least one image"):
        PairedTable(0, 0, 0, 0)
    with pytest.raises(ValueError, match="missing"):
        PairedTable.from_dict({"n10": 1, "n01": 0})


# ------------------------------------------------------------------------------------------- McNemar
def test_13_of_100_vs_4_of_100_all_discordant_one_way_is_significant_though_intervals_overlap():
    a, b = outcomes(100, range(13)), outcomes(100, range(4))
    cmp = paired_comparison(a, b)
    assert (cmp.n, cmp.n10, cmp.n01) == (100, 9, 0)
    assert cmp.p_value == pytest.approx(2 * 0.5 ** 9)            # 0.0039
    assert decide_difference(cmp) == "greater"
    acc_a, acc_b = accuracy_from_counts(13, 100), accuracy_from_counts(4, 100)
    assert acc_a.low < acc_b.high                                 # the unpaired intervals overlap
    assert cmp.low > 0                                            # the paired interval excludes 0
    rev = paired_comparison(b, a)
    assert decide_difference(rev) == "less" and rev.p_value == cmp.p_value
    assert (rev.low, rev.high) == pytest.approx((-cmp.high, -cmp.low), abs=1e-9)


@pytest.mark.parametrize("n10,n01", [(0, 1), (3, 0), (5, 1), (6, 6), (7, 15), (20, 9), (40, 60)])
def test_mcnemar_p_is_the_exact_two_sided_binomial_p_by_enumeration(n10, n01):
    d = n10 + n01
    pmf = [math.comb(d, k) / 2 ** d for k in range(d + 1)]
    # two-sided exact p: total probability of outcomes no more likely than the observed one
    ref = sum(p for p in pmf if p <= pmf[n10] * (1 + 1e-12))
    cmp = compare_paired_table(PairedTable(30, n10, n01, 30))
    assert cmp.p_value == pytest.approx(min(ref, 1.0), rel=1e-10)
    assert cmp.z == pytest.approx((n10 - n01) / math.sqrt(d))


def test_identical_models_are_never_different():
    rng = np.random.default_rng(0)
    for n in (1, 10, 1000):
        a = rng.random(n) < 0.6
        cmp = paired_comparison(a, a.copy())
        assert cmp.p_value == 1.0 and cmp.z == 0.0 and cmp.difference == 0.0
        assert decide_difference(cmp, alpha=0.5) == "undecided"


def test_zero_discordance_interval_is_closed_form_and_narrows_with_n():
    widths = []
    for n in (10, 100, 1000, 10000):
        iv = tango_interval(PairedTable(n // 2, 0, 0, n - n // 2))
        half = Z95 ** 2 / (n + Z95 ** 2)                          # |Z(d)| = z solved with no discordant pairs
        assert iv == pytest.approx((-half, half), abs=1e-9)
        widths.append(iv.high - iv.low)
    assert all(w1 > w2 > 0 for w1, w2 in zip(widths, widths[1:]))


def test_tango_interval_published_value_cavo_2012():
    # Fagerland et al. (2017) / R contingencytables: n = [[59, 6], [16, 80]], Tango 95 % CI -0.1240 to -0.0054,
    # McNemar exact conditional P = 0.052479, asymptotic Z = -2.132
    t = PairedTable(n11=59, n10=6, n01=16, n00=80)
    cmp = compare_paired_table(t)
    assert cmp.difference == pytest.approx(-10 / 161)
    assert cmp.low == pytest.approx(-0.1240, abs=5e-5) and cmp.high == pytest.approx(-0.0054, abs=5e-5)
    assert cmp.p_value == pytest.approx(0.052479, abs=5e-7)
    assert cmp.z == pytest.approx(-2.132, abs=5e-4)
    assert decide_difference(cmp) == "undecided"


def score_statistic_by_numerical_mle(n10, n01, n, delta):
    """Tango's score statistic with the constrained MLE found numerically (not by the closed-form root)."""
    lo, hi = max(0.0, -delta), (1 - delta) / 2                     # q01 >= 0, p10 = q01 + delta >= 0, rest >= 0

    def nll(q):
        p10, p01, rest = q + delta, q, 1 - 2 * q - delta
        terms = [(n10, p10), (n01, p01), (n - n10 - n01, rest)]
        return -sum(k * math.log(max(p, 1e-300)) for k, p in terms if k > 0)
    q = optimize.minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-13}).x
    return (n10 - n01 - n * delta) / math.sqrt(n * (2 * q + delta * (1 - delta)))


@pytest.mark.parametrize("n11,n10,n01,n00", [(59, 6, 16, 80), (10, 9, 0, 81), (794, 150, 86, 570), (3, 1, 4, 2)])
def test_tango_interval_inverts_an_independent_score_test_on_a_grid(n11, n10, n01, n00):
    t = PairedTable(n11, n10, n01, n00)
    iv = tango_interval(t)
    grid = np.linspace(-0.999, 0.999, 3997)
    inside = [d for d in grid if abs(score_statistic_by_numerical_mle(n10, n01, t.n, d)) < Z95]
    step = grid[1] - grid[0]
    assert min(inside) == pytest.approx(iv.low, abs=step) and max(inside) == pytest.approx(iv.high, abs=step)


def test_tango_close_to_wald_with_many_discordant_pairs():
    # Agresti's presidential approval table (n = 1600): Wald 95 % CI 0.04 +- 1.96 * 0.0119
    t = PairedTable(794, 150, 86, 570)
    n, b, c = t.n, t.n10, t.n01
    se = math.sqrt((b + c) / n ** 2 - (b - c) ** 2 / n ** 3)
    iv = tango_interval(t)
    assert iv == pytest.approx((0.04 - Z95 * se, 0.04 + Z95 * se), abs=1e-3)


def test_comparison_to_dict_is_json():
    d = paired_comparison(*table_vectors(10, 5, 2, 3)).to_dict()
    assert json_roundtrip(d) == d and d["n10"] == 5 and "McNemar" in d["test"]


@pytest.mark.parametrize("conf", [0.0, 1.0, 95, True])
def test_bad_confidence(conf):
    with pytest.raises(ValueError, match="confidence"):
        paired_comparison(*table_vectors(1, 1, 1, 1), confidence=conf)


# ----------------------------------------------------------------------------------------------- TOST
def test_identical_models_are_equivalent_once_n_is_large_enough():
    # no discordance: Z(+-m) = -+sqrt(n m / (1 - m)); equivalent iff n m / (1 - m) > z_0.95^2 -> n >= 88 at m = 0.03
    z = sps.norm.ppf(0.95)
    assert 87 * 0.03 / 0.97 < z ** 2 < 88 * 0.03 / 0.97
    a87, a88 = outcomes(87, range(40)), outcomes(88, range(40))
    assert not equivalence_tost(a87, a87, margin=0.03).equivalent
    eq = equivalence_tost(a88, a88, margin=0.03)
    assert eq.equivalent and eq.p_value < 0.05 and eq.p_lower == pytest.approx(eq.p_upper)
    assert equivalence_tost(outcomes(1000, range(700)), outcomes(1000, range(700)), margin=0.03).equivalent


def test_tost_p_agrees_with_its_interval_on_many_tables():
    for n10 in range(0, 30, 3):
        for n01 in range(0, 30, 4):
            t = PairedTable(300, n10, n01, 200)
            for margin in (0.02, 0.05):
                eq = equivalence_from_table(t, margin)
                assert eq.equivalent == (-margin < eq.low and eq.high < margin)
                assert eq.p_value == max(eq.p_lower, eq.p_upper)
                assert (eq.low, eq.high) == tango_interval(t, 0.90)


def test_a_clear_difference_is_not_equivalent():
    eq = equivalence_from_table(PairedTable(400, 60, 5, 535), margin=0.03)   # difference 0.055
    assert not eq.equivalent and eq.p_upper > 0.5 and eq.p_lower < 1e-6
    assert json_roundtrip(eq.to_dict()) == eq.to_dict()


@pytest.mark.parametrize("kw,match", [(dict(margin=0.0), "margin"), (dict(margin=1.5), "margin"),
                                      (dict(margin=0.03, alpha=0.6), "alpha")])
def test_tost_bad_inputs(kw, match):
    a = outcomes(10, range(5))
    with pytest.raises(ValueError, match=match):
        equivalence_tost(a, a, **kw)


# ----------------------------------------------------------------------------------------------- power
def power_of_mcnemar(n, p10, p01, alpha=0.05, exact=False):
    """Power of McNemar's test by enumeration of (discordant count, n10) under the multinomial."""
    psi, total = p10 + p01, 0.0
    for d in range(1, n + 1):
        pd = sps.binom.pmf(d, n, psi)
        if pd < 1e-15:
            continue
        k = np.arange(d + 1)
        pk = sps.binom.pmf(k, d, p10 / psi)
        if exact:
            reject = np.minimum(1, 2 * sps.binom.cdf(np.minimum(k, d - k), d, 0.5)) < alpha
        else:
            reject = np.abs(2 * k - d) / math.sqrt(d) > sps.norm.ppf(1 - alpha / 2)
        total += pd * pk[reject].sum()
    return total


@pytest.mark.parametrize("n,psi", [(1000, 0.2), (500, 0.1), (1017, 0.05), (200, 0.3)])
def test_power_at_the_mde_is_about_80_percent(n, psi):
    m = mde_paired(n, psi).mde
    p10, p01 = (psi + m) / 2, (psi - m) / 2
    assert 0.78 < power_of_mcnemar(n, p10, p01) < 0.83              # the z test the formula assumes
    assert 0.75 < power_of_mcnemar(n, p10, p01, exact=True) < 0.82  # the exact test is a little weaker


def test_mde_shrinks_with_n_and_grows_with_discordance():
    mdes = [mde_paired(n, 0.15).mde for n in (50, 100, 1000, 10000)]
    assert all(x > y for x, y in zip(mdes, mdes[1:]))
    assert mde_paired(1000, 0.05).mde < mde_paired(1000, 0.2).mde
    assert mde_paired(1000, 0.2, power=0.9).mde > mde_paired(1000, 0.2).mde
    # Connor: n = (z_a sqrt(psi) + z_b sqrt(psi - d^2))^2 / d^2 at the mde
    za, zb, d = sps.norm.ppf(0.975), sps.norm.ppf(0.8), mdes[2]
    assert 1000 == pytest.approx((za * math.sqrt(0.15) + zb * math.sqrt(0.15 - d * d)) ** 2 / d ** 2, rel=1e-9)


def test_mde_with_no_observed_discordance_uses_the_floor_psi_equal_difference():
    za, zb = sps.norm.ppf(0.975), sps.norm.ppf(0.8)
    for n in (100, 1017, 10000):
        d = mde_paired(n, 0.0).mde
        assert n * d == pytest.approx((za + zb * math.sqrt(1 - d)) ** 2, rel=1e-9)   # ~ 7.85 / n
    assert mde_paired(3, 0.0).mde is None                          # not even a difference of 1 is detectable
    assert mde_paired(3, 0.0).to_dict()["mde"] is None


def test_images_needed_inverts_the_mde_and_is_not_capped():
    for n, psi in [(100, 0.0), (1017, 0.1), (5000, 0.3)]:
        m = mde_paired(n, psi).mde
        assert images_needed(m, psi).n_needed == n
    need = images_needed(0.01, 0.2, available=1017)
    assert need.n_needed > 10000 and need.enough is False and need.available == 1017
    assert images_needed(-0.05, 0.2).n_needed == images_needed(0.05, 0.2).n_needed
    assert images_needed(0.1, 0.1, available=1017).enough is True


def test_discordance_from_two_accuracies_assumes_independent_errors():
    pa, pb = 0.7, 0.6
    psi = pa * (1 - pb) + pb * (1 - pa)
    assert mde_paired(500, (pa, pb)).discordance == pytest.approx(psi)
    assert images_needed(0.05, (pa, pb)).n_needed == images_needed(0.05, psi).n_needed


@pytest.mark.parametrize("fn,args,match", [
    (mde_paired, (0, 0.1), "n must be at least 1"), (mde_paired, (100, 1.5), "discordance"),
    (mde_paired, (100, (0.5,)), "pair"), (mde_paired, (100, 0.1, 0.05, 1.0), "power"),
    (images_needed, (0.0, 0.1), "difference"), (images_needed, (0.1, 0.1, 0.05, 0.8, 0), "available"),
])
def test_power_bad_inputs(fn, args, match):
    with pytest.raises(ValueError, match=match):
        fn(*args)


# ----------------------------------------------------------------------------------------------- trend
def test_identical_rows_have_no_trend():
    row = np.random.default_rng(1).random(200) < 0.5
    t = trend_test(np.stack([row, row, row]), [8, 16, 32])
    assert (t.z, t.p_value, t.direction, t.slope, t.informative) == (0.0, 1.0, "flat", 0.0, 0)
    assert t.accuracies == pytest.approx([row.mean()] * 3)


def test_monotone_improvement_on_many_images_is_a_significant_rise():
    n = 300
    y = np.stack([outcomes(n, range(100)), outcomes(n, range(130)), outcomes(n, range(160))])   # nested: 33, 43, 53 %
    t = trend_test(y, [1.0, 2.0, 3.0])
    assert t.direction == "rises" and t.z > 0 and t.p_value < 1e-6 and t.slope == pytest.approx(0.1)
    t2 = trend_test(y, [3.0, 2.0, 1.0])                           # the same data against reversed levels
    assert t2.direction == "falls" and t2.z == pytest.approx(-t.z) and t2.p_value == pytest.approx(t.p_value)


def test_trend_is_invariant_to_affine_rescaling_of_levels():
    rng = np.random.default_rng(2)
    y = np.stack([rng.random(150) < p for p in (0.5, 0.55, 0.65, 0.6)])
    t1 = trend_test(y, [0.9, 0.95, 0.99, 1.0])
    t2 = trend_test(y, [10 * v - 3 for v in (0.9, 0.95, 0.99, 1.0)])
    assert t1.z == pytest.approx(t2.z) and t1.p_value == pytest.approx(t2.p_value)
    assert t1.slope == pytest.approx(10 * t2.slope)


def test_two_levels_is_mcnemar():
    a, b = table_vectors(40, 7, 19, 34)
    t = trend_test(np.stack([a, b]), [0, 1])
    cmp = paired_comparison(b, a)                                 # level 1 (b) better than level 0 (a)
    assert t.z == pytest.approx(cmp.z) and t.informative == 26 and t.direction == "rises"


def brute_force_trend(y, x):
    """Every within-image permutation of the outcomes: (observed U, all U's), equally likely under H0."""
    L, N = y.shape
    xc = np.asarray(x, float) - np.mean(x)
    per_image = [[float(np.dot(xc, np.array(p))) for p in itertools.permutations(y[:, i])] for i in range(N)]
    return float((xc[:, None] * y).sum()), np.array([sum(c) for c in itertools.product(*per_image)])


def test_trend_variance_and_p_match_brute_force_permutation_within_images():
    y = np.array([[0, 1, 0, 1, 0, 1],
                  [1, 1, 0, 0, 1, 1],
                  [1, 1, 1, 0, 1, 0]], dtype=bool)
    x = [1.0, 2.0, 4.0]
    u, all_u = brute_force_trend(y, x)                            # 6^6 = 46656 equally likely permutations
    t = trend_test(y, x)
    assert all_u.mean() == pytest.approx(0.0, abs=1e-9)
    assert t.z == pytest.approx(u / all_u.std())                  # the variance formula is the permutation variance
    exact_p = np.mean(np.abs(all_u) >= abs(u) - 1e-9)
    mc = trend_test(y, x, permutations=20000, seed=0)
    assert mc.p_value == pytest.approx(exact_p, abs=4 * math.sqrt(exact_p * (1 - exact_p) / 20000) + 1e-4)
    assert mc.z == t.z and "permutation" in mc.p_method


def test_permutation_p_matches_exact_distribution_on_more_images():
    rng = np.random.default_rng(3)
    y = np.stack([rng.random(40) < p for p in (0.5, 0.6, 0.7)])
    x = [0, 1, 2]
    # exact distribution of U' = sum_l x_l y_li by convolving the images' permutation distributions
    dist = {0: 1.0}
    for i in range(y.shape[1]):
        vals = [sum(x[l] for l in range(3) if p[l]) for p in itertools.permutations(y[:, i])]
        new = {}
        for a, pa in dist.items():
            for v in vals:
                new[a + v] = new.get(a + v, 0.0) + pa / len(vals)
        dist = new
    mean = sum(k * p for k, p in dist.items())
    obs = int(sum(x[l] * y[l].sum() for l in range(3)))
    exact_p = sum(p for k, p in dist.items() if abs(k - mean) >= abs(obs - mean) - 1e-9)
    t_normal = trend_test(y, x)
    t_perm = trend_test(y, x, permutations=20000, seed=1)
    assert t_perm.p_value == pytest.approx(exact_p, abs=4 * math.sqrt(exact_p * (1 - exact_p) / 20000) + 1e-4)
    assert t_normal.p_value == pytest.approx(exact_p, rel=0.35)   # the normal approximation is close, not exact
    assert trend_test(y, x, permutations=2000, seed=5) == trend_test(y, x, permutations=2000, seed=5)


@pytest.mark.parametrize("y,levels,kw,match", [
    (np.ones((3, 5), bool), [1, 2], {}, "one value per row"),
    (np.ones((3, 5), bool), [1, 1, 2], {}, "distinct"),
    (np.ones((1, 5), bool), [1], {}, "at least two"),
    (np.ones(5, bool), [1], {}, "shape"),
    (np.ones((2, 5), bool), [1, float("nan")], {}, "finite"),
    (np.eye(2, 5, dtype=bool), [1, 2], dict(permutations=10), "seed"),
    (np.eye(2, 5, dtype=bool), [1, 2], dict(permutations=-1, seed=0), "permutations"),
])
def test_trend_bad_inputs(y, levels, kw, match):
    with pytest.raises(ValueError, match=match):
        trend_test(y, levels, **kw)


# ------------------------------------------------------------------------------------------- seeds pooled
def test_one_seed_pooled_is_that_seeds_comparison():
    t = PairedTable(59, 6, 16, 80)
    pooled, single = pooled_paired([t]), compare_paired_table(t)
    assert (pooled.difference, pooled.low, pooled.high, pooled.p_value) == \
        (single.difference, single.low, single.high, single.p_value)
    assert pooled.per_seed["0"] == single and pooled.p_heterogeneity is None and pooled.seeds_agree


def test_pooled_sums_the_seeds_and_gives_the_mh_odds_ratio():
    tables = {"seed0": PairedTable(50, 12, 1, 37), "seed1": PairedTable(48, 13, 1, 38)}
    p = pooled_paired(tables)
    assert (p.n, p.n10, p.n01) == (200, 25, 2)
    assert p.difference == pytest.approx(23 / 200) and p.odds_ratio == pytest.approx(12.5)
    # exact conditional interval of the odds ratio: Fagerland et al. (Ezra et al. 2010, 25 vs 2): 3.1169 to 108.8892
    assert p.odds_ratio_low == pytest.approx(3.1169, abs=5e-5)
    assert p.odds_ratio_high == pytest.approx(108.8892, abs=5e-5)
    assert p.p_value == pytest.approx(compare_paired_table(PairedTable(98, 25, 2, 75)).p_value)
    assert p.seeds_agree and p.p_heterogeneity > 0.5
    assert set(p.per_seed) == {"seed0", "seed1"} and p.per_seed["seed1"].n10 == 13
    d = p.to_dict()
    assert json_roundtrip(d) == d and d["per_seed"]["seed0"]["n10"] == 12


def test_seeds_that_disagree_are_flagged():
    p = pooled_paired([PairedTable(50, 20, 2, 28), PairedTable(50, 2, 20, 28)])
    assert p.difference == 0.0 and p.p_value == 1.0 and not p.seeds_agree
    assert p.p_heterogeneity < 1e-4


def test_pooled_with_one_way_discordance_has_an_infinite_odds_ratio_stored_as_null():
    p = pooled_paired([PairedTable(10, 5, 0, 5), PairedTable(10, 4, 0, 6)])
    assert p.odds_ratio == math.inf and p.odds_ratio_high == math.inf and p.odds_ratio_low > 1
    assert p.p_heterogeneity == 1.0
    d = p.to_dict()
    assert d["odds_ratio"] is None and json_roundtrip(d) == d


def test_pooled_bad_inputs():
    with pytest.raises(ValueError, match="empty"):
        pooled_paired([])
    with pytest.raises(ValueError, match="PairedTable"):
        pooled_paired({"s0": (1, 2, 3, 4)})


# ------------------------------------------------------------------------------------------------- Holm
def test_holm_hand_example():
    # sorted: d .005 x4 = .02, a .01 x3 = .03, c .03 x2 = .06, b .04 x1 = .04 -> running max .06
    adj = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005})
    assert list(adj) == ["a", "b", "c", "d"]
    assert adj == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06, "d": 0.02})
    assert holm({"x": 0.3, "y": 0.6}) == pytest.approx({"x": 0.6, "y": 0.6})
    assert holm({"only": 0.04}) == {"only": 0.04} and holm({}) == {}


def test_holm_is_at_least_raw_and_at_most_bonferroni():
    rng = np.random.default_rng(4)
    ps = {f"h{i}": float(p) for i, p in enumerate(rng.random(12) ** 3)}
    adj = holm(ps)
    for k in ps:
        assert ps[k] <= adj[k] <= min(1.0, len(ps) * ps[k]) + 1e-15
    order = sorted(ps, key=ps.get)
    assert all(adj[a] <= adj[b] for a, b in zip(order, order[1:]))


@pytest.mark.parametrize("bad,match", [([0.1, 0.2], "mapping"), ({"a": 1.5}, r"pvalues\['a'\]"),
                                       ({"a": float("nan")}, "p-value"), ({"a": True}, "p-value")])
def test_holm_bad_inputs(bad, match):
    with pytest.raises(ValueError, match=match):
        holm(bad)
