"""The report's statistics (ntklab.report.stats), against hand computations and textbook
examples: Holm's adjustment, TOST, paired t intervals, delta-method ratio intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ntklab.report.stats import (
    holm,
    log_mean_contrast,
    mean_se,
    paired_stats,
    paired_t,
    ratio_of_means,
    tost,
    tost_paired,
)

# Student t quantiles with 2 degrees of freedom, closed form: (2p - 1) / sqrt(2 p (1 - p))
T975_2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # 4.30265272975
T95_2 = 0.9 / math.sqrt(2 * 0.95 * 0.05)  # 2.91998558035


def _cdf_t2(t: float) -> float:
    """CDF of Student's t with 2 df, in closed form: 1/2 + t / (2 sqrt(2 + t^2))."""
    return 0.5 + t / (2 * math.sqrt(2 + t * t))


# ---- Holm --------------------------------------------------------------------------------------
def test_holm_textbook_example():
    """Four tests, p = (0.01, 0.04, 0.03, 0.005), alpha = 0.05 (the usual textbook example,
    e.g. Wikipedia 'Holm-Bonferroni method'): sorted 0.005, 0.01, 0.03, 0.04 are compared
    with alpha/4, alpha/3, alpha/2, alpha/1; the first two are rejected, then 0.03 > 0.025
    stops. Adjusted: 4*0.005 = 0.02, 3*0.01 = 0.03, 2*0.03 = 0.06, max(0.06, 1*0.04) = 0.06."""
    adj = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adj, [0.03, 0.06, 0.06, 0.02], rtol=1e-15)
    assert list(adj <= 0.05) == [True, False, False, True]


def test_holm_monotone_capped_and_nan():
    # 3 * 0.01 = 0.03; 2 * 0.011 = 0.022 -> raised to 0.03 (step-down monotonicity); 0.5 * 1
    np.testing.assert_allclose(holm([0.011, 0.5, 0.01]), [0.03, 0.5, 0.03], rtol=1e-15)
    # m counts finite p-values only; NaN stays NaN; capped at 1
    adj = holm([0.3, math.nan, 0.4])
    assert math.isnan(adj[1])
    np.testing.assert_allclose(adj[[0, 2]], [0.6, 0.6], rtol=1e-15)
    assert holm([0.9, 0.8]).tolist() == [1.0, 1.0]
    assert holm([]).size == 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([1.5])


# ---- paired t and TOST ---------------------------------------------------------------------------
def test_paired_t_by_hand():
    s = paired_t([0.1, 0.2, 0.3, math.nan])  # the NaN row is dropped
    se = 0.1 / math.sqrt(3)
    assert s["n"] == 3
    assert s["mean"] == pytest.approx(0.2, rel=1e-12)
    assert s["ci_low"] == pytest.approx(0.2 - T975_2 * se, rel=1e-9)
    assert s["ci_high"] == pytest.approx(0.2 + T975_2 * se, rel=1e-9)
    assert s["p"] == pytest.approx(2 * (1 - _cdf_t2(0.2 / se)), rel=1e-9)
    constant = paired_t([0.5, 0.5, 0.5])
    assert constant["ci_low"] == constant["ci_high"] == 0.5 and constant["p"] == 0.0


def test_tost_equivalent_by_hand():
    """d = (0, 0.01, 0.02): mean 0.01, sd 0.01, se = 0.01/sqrt 3, 2 df. Margin 0.05:
    t_lower = (0.01 + 0.05)/se, t_upper = (0.01 - 0.05)/se; p = max of the two one-sided."""
    x = np.array([1.0, 2.01, 3.02])
    y = np.array([1.0, 2.0, 3.0])  # the pairs differ by d; the levels differ a lot
    se = 0.01 / math.sqrt(3)
    res = tost_paired(x, y, 0.05)
    p_lower = 1 - _cdf_t2((0.01 + 0.05) / se)
    p_upper = _cdf_t2((0.01 - 0.05) / se)
    assert res["n"] == 3
    assert res["mean_diff"] == pytest.approx(0.01, rel=1e-9)
    assert res["p_lower"] == pytest.approx(p_lower, rel=1e-9)
    assert res["p_upper"] == pytest.approx(p_upper, rel=1e-9)
    assert res["p_tost"] == pytest.approx(max(p_lower, p_upper), rel=1e-9)
    assert res["p_tost"] == pytest.approx(0.010102051443364, rel=1e-9)  # <= 0.05: equivalent
    # the 1 - 2 alpha = 90 % interval TOST implies lies inside (-0.05, 0.05)
    assert res["ci_tost_low"] == pytest.approx(0.01 - T95_2 * se, rel=1e-9)
    assert res["ci_tost_high"] == pytest.approx(0.01 + T95_2 * se, rel=1e-9)
    assert -0.05 < res["ci_tost_low"] < res["ci_tost_high"] < 0.05
    assert res["ci_low"] == pytest.approx(0.01 - T975_2 * se, rel=1e-9)
    # the ordinary paired t-test says "no difference shown" too, but that is not why
    assert res["p_t"] == pytest.approx(2 * (1 - _cdf_t2(0.01 / se)), rel=1e-9)
    assert res["p_beyond"] == 1.0


def test_tost_not_equivalent_and_beyond_by_hand():
    se = 0.01 / math.sqrt(3)
    # same d, margin 0.02: t_upper = -sqrt 3, p = 0.1127 > 0.05: not shown equivalent
    res = tost_paired([0.0, 0.01, 0.02], [0.0, 0.0, 0.0], 0.02)
    assert res["p_tost"] == pytest.approx(_cdf_t2(-0.01 / se), rel=1e-9)
    assert res["p_tost"] == pytest.approx(0.112701665379258, rel=1e-9)
    assert res["ci_tost_high"] > 0.02  # the 90 % interval crosses the margin
    # d = (0.1, 0.11, 0.12), margin 0.02: far beyond; p_beyond = 2 P(T >= (0.11 - 0.02)/se)
    res = tost_paired([0.1, 0.11, 0.12], [0.0, 0.0, 0.0], 0.02)
    assert res["p_tost"] > 0.99
    assert res["p_beyond"] == pytest.approx(2 * (1 - _cdf_t2(0.09 / se)), rel=1e-7)
    assert res["p_beyond"] < 0.05 and res["ci_low"] > 0.02
    # noisy but centred: neither equivalence nor a difference beyond the margin is shown
    res = tost_paired([0.1, -0.1, 0.05], [0.0, 0.0, 0.0], 0.02)
    assert res["p_tost"] > 0.05 and res["p_beyond"] > 0.05


def test_tost_bounds_and_degenerate_cases():
    # an asymmetric interval; se = 0 gives 0/1 p-values
    res = tost(0.3, 0.0, 4, 0.0, 1.0)
    assert (res["p_tost"], res["p_beyond"]) == (0.0, 1.0)
    res = tost(1.3, 0.0, 4, 0.0, 1.0)
    assert (res["p_tost"], res["p_beyond"]) == (1.0, 0.0)
    assert math.isnan(tost(0.3, math.nan, 4, 0.0, 1.0)["p_tost"])
    assert math.isnan(tost_paired([1.0], [0.5], 0.1)["p_tost"])  # one pair: undefined
    with pytest.raises(ValueError, match="lower < upper"):
        tost(0.0, 1.0, 3, 1.0, 1.0)
    with pytest.raises(ValueError, match="positive"):
        tost_paired([1.0, 2.0], [1.0, 2.0], 0.0)


def test_tost_size_at_the_margin():
    """At a true mean difference exactly on the margin (and the other bound far away),
    TOST declares equivalence in alpha of the data sets (Monte Carlo, 4000 data sets, fixed
    seed): its level is exact there, and lower anywhere outside the margin."""
    rng = np.random.default_rng(12345)
    hits = 0
    for _ in range(4000):
        d = 0.02 + rng.normal(0.0, 0.005, size=10)
        hits += tost_paired(d, np.zeros(10), 0.02)["p_tost"] <= 0.05
    rate = hits / 4000
    assert 0.04 <= rate <= 0.06  # binomial SD 0.0034 around 0.05


# ---- ratios -------------------------------------------------------------------------------------
def test_ratio_of_means_delta_method_by_hand():
    a = np.array([2.0, 3.0, 4.5, 3.5])
    b = np.array([1.0, 1.4, 2.0, 1.6])
    r = ratio_of_means(a, b)
    ma, mb = a.mean(), b.mean()
    g = a / ma - b / mb  # influence of each trial on log(mean a / mean b)
    se = g.std(ddof=1) / 2
    t = 3.182446305284263  # t quantile 0.975, 3 df (tables)
    assert r["n"] == 4
    assert r["ratio"] == pytest.approx(ma / mb, rel=1e-12)
    assert r["ci_low"] == pytest.approx(ma / mb * math.exp(-t * se), rel=1e-9)
    assert r["ci_high"] == pytest.approx(ma / mb * math.exp(t * se), rel=1e-9)
    # unpaired trials drop out together: a non-finite b removes the pair
    r2 = ratio_of_means(np.append(a, 9.0), np.append(b, math.inf))
    assert r2["n"] == 4 and r2["ratio"] == pytest.approx(r["ratio"], rel=1e-12)


def test_ratio_interval_coverage():
    """The delta-method interval covers the true ratio of means about 95 % of the time for
    correlated paired data (Monte Carlo, 3000 data sets of 30 pairs, fixed seed)."""
    rng = np.random.default_rng(7)
    cover = 0
    for _ in range(3000):
        common = rng.normal(0.0, 0.02, size=30)
        a = 0.30 + common + rng.normal(0.0, 0.01, size=30)
        b = 0.10 + common + rng.normal(0.0, 0.01, size=30)
        r = ratio_of_means(a, b)
        cover += r["ci_low"] <= 3.0 <= r["ci_high"]
    assert 0.93 <= cover / 3000 <= 0.97  # binomial SD 0.004 around 0.95


def test_log_contrast_of_four_columns():
    """w = (1, -1, -1, 1): log of (a2/a1) / (b2/b1); its influence values by hand."""
    x = np.array([[1.1, 1.0, 2.0, 2.2], [1.2, 1.1, 2.1, 2.2], [0.9, 1.0, 1.9, 2.0]])
    c = log_mean_contrast(x, [1, -1, -1, 1])
    m = x.mean(axis=0)
    assert c["estimate"] == pytest.approx(math.log(m[0] / m[1]) - math.log(m[2] / m[3]), rel=1e-12)
    g = x[:, 0] / m[0] - x[:, 1] / m[1] - x[:, 2] / m[2] + x[:, 3] / m[3]
    assert c["se"] == pytest.approx(g.std(ddof=1) / math.sqrt(3), rel=1e-12)
    assert c["ci_high"] - c["estimate"] == pytest.approx(T975_2 * c["se"], rel=1e-9)
    with pytest.raises(ValueError, match="one weight per column"):
        log_mean_contrast(x, [1, -1])


# ---- paired_stats, mean_se ---------------------------------------------------------------------
def test_paired_stats_by_hand_and_shared_with_tost_paired():
    """x - y = (1, 2, 4) (a NaN row dropped): mean 7/3, sd sqrt(7/3), t = mean / (sd/sqrt 3),
    two-sided p from the closed-form t(2) CDF; Wilcoxon exact: all 3 differences positive,
    p = 2 / 2^3. tost_paired reports the same n, means, difference and interval."""
    x = np.array([2.0, 5.0, 9.0, np.nan])
    y = np.array([1.0, 3.0, 5.0, 0.0])
    s = paired_stats(x, y)
    mean, sd = 7 / 3, math.sqrt(7 / 3)
    t = mean / (sd / math.sqrt(3))
    assert s["n"] == 3 and s["mean_a"] == pytest.approx(16 / 3) and s["mean_b"] == 3.0
    assert s["mean_diff"] == pytest.approx(mean, rel=1e-15)
    assert s["sd_diff"] == pytest.approx(sd, rel=1e-15)
    assert s["t"] == pytest.approx(t, rel=1e-13)
    assert s["p_t"] == pytest.approx(2 * (1 - _cdf_t2(t)), rel=1e-12)
    half = T975_2 * sd / math.sqrt(3)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((mean - half, mean + half), rel=1e-12)
    assert s["p_wilcoxon"] == pytest.approx(0.25, rel=1e-12)
    tp = tost_paired(x, y, 1.0)
    assert tp["n"] == s["n"] and (tp["mean_x"], tp["mean_y"]) == (s["mean_a"], s["mean_b"])
    for key in ("mean_diff", "ci_low", "ci_high", "p_t"):
        assert tp[key] == s[key]


def test_paired_stats_equal_differences_have_no_test():
    """All differences equal (sd = 0): no t statistic and no p-values, but the mean."""
    s = paired_stats([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])
    assert s["mean_diff"] == pytest.approx(0.5) and s["sd_diff"] == 0
    assert math.isnan(s["t"]) and math.isnan(s["p_t"])
    assert paired_stats([1.0], [0.0])["n"] == 1 and math.isnan(paired_stats([1.0], [0.0])["p_t"])


def test_mean_se_by_hand():
    """(1, 2, 4, inf): n 3, mean 7/3, SE = sqrt(7/3) / sqrt(3); one value has no SE."""
    n, mean, se = mean_se([1.0, 2.0, 4.0, math.inf])
    assert n == 3 and mean == pytest.approx(7 / 3, rel=1e-15)
    assert se == pytest.approx(math.sqrt(7 / 3) / math.sqrt(3), rel=1e-15)
    assert mean_se([5.0])[:2] == (1, 5.0) and math.isnan(mean_se([5.0])[2])
    assert mean_se([])[0] == 0
