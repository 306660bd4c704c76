r"""Statistics of paired trials: t intervals, equivalence by two one-sided tests (TOST),
Holm's step-down adjustment, and ratios of means with delta-method intervals.

Every function works on the trials that all its inputs have (a trial is one data set, so
the methods of a trial are paired); non-finite values drop the whole trial.

* :func:`holm` -- Holm (1979) step-down adjusted p-values.
* :func:`paired_t` -- mean of per-trial values (a difference, a contrast) with its t interval.
* :func:`tost` -- two one-sided t-tests of :math:`\theta \in (\ell, u)` from an estimate and
  its standard error, with the test of the opposite (the estimate beyond the bounds).
* :func:`tost_paired` -- TOST of the paired mean difference at a margin :math:`\pm\delta`.
* :func:`paired_stats` -- the paired difference with its t interval, paired t and Wilcoxon
  signed-rank p-values; :func:`mean_se` -- mean and standard error of one column.
* :func:`log_mean_contrast` -- :math:`\sum_j w_j \log \bar x_j` of paired columns with its
  delta-method standard error; :func:`ratio_of_means` is the case ``w = (1, -1)``.

References
----------
Holm, S. (1979). A simple sequentially rejective multiple test procedure. Scand. J. Statist. 6.
Schuirmann, D. J. (1987). A comparison of the two one-sided tests procedure and the power
approach for assessing the equivalence of average bioavailability. J. Pharmacokin. Biopharm. 15.
Berger, R. L. & Hsu, J. C. (1996). Bioequivalence trials, intersection-union tests and
equivalence confidence sets. Statist. Sci. 11.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "holm",
    "claim_decision",
    "paired_t",
    "tost",
    "tost_paired",
    "log_mean_contrast",
    "ratio_of_means",
    "finite_rows",
    "mean_se",
    "paired_stats",
    "t_side",
]


def holm(pvalues: Any) -> np.ndarray:
    r"""Holm's step-down adjusted p-values (NaN entries stay NaN and are not counted).

    With the m finite p-values sorted, :math:`p_{(1)} \le \dots \le p_{(m)}`:

    .. math:: \tilde p_{(i)} = \min\Bigl(1, \max_{j \le i} (m - j + 1)\, p_{(j)}\Bigr)

    Rejecting every hypothesis with :math:`\tilde p \le \alpha` controls the family-wise
    error rate at :math:`\alpha` under any dependence (Holm 1979).
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    out = np.full(p.shape, math.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def finite_rows(*columns: Any) -> tuple[np.ndarray, ...]:
    """The columns as float arrays, keeping only the rows where every column is finite."""
    arrays = [np.asarray(c, dtype=np.float64).ravel() for c in columns]
    if len({a.size for a in arrays}) > 1:
        raise ValueError("paired columns must have the same length")
    ok = np.ones(arrays[0].size, dtype=bool)
    for a in arrays:
        ok &= np.isfinite(a)
    return tuple(a[ok] for a in arrays)


def paired_t(values: Any, *, confidence: float = 0.95) -> dict[str, float]:
    r"""Mean of per-trial values :math:`v_i` (a paired difference or contrast) with its t
    interval and the two-sided t-test of mean 0.

    .. math:: \bar v \pm t_{n-1,(1+c)/2}\, s_v/\sqrt n

    Returns ``n, mean, sd, se, ci_low, ci_high, t, p`` (NaN where undefined: n < 2; with
    ``sd = 0`` the interval is the point and ``p`` is 0 unless the mean is 0).
    """
    (v,) = finite_rows(values)
    n = int(v.size)
    out = dict.fromkeys(("mean", "sd", "se", "ci_low", "ci_high", "t", "p"), math.nan)
    out["n"] = n
    if n == 0:
        return out
    out["mean"] = float(v.mean())
    if n < 2:
        return out
    sd = float(v.std(ddof=1))
    se = sd / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    out.update(sd=sd, se=se, ci_low=out["mean"] - half, ci_high=out["mean"] + half)
    if se > 0:
        t = out["mean"] / se
        out.update(t=t, p=float(2 * stats.t.sf(abs(t), n - 1)))
    else:
        out["p"] = 1.0 if out["mean"] == 0 else 0.0
    return out


def tost(
    estimate: float,
    se: float,
    df: float,
    lower: float,
    upper: float,
    *,
    alpha: float = 0.05,
) -> dict[str, float]:
    r"""Two one-sided t-tests that :math:`\theta` lies inside ``(lower, upper)``.

    With :math:`t_\ell = (\hat\theta - \ell)/\mathrm{se}` and :math:`t_u = (\hat\theta - u)/\mathrm{se}`
    (Student t with ``df`` degrees of freedom):

    * ``p_lower`` = :math:`P(T \ge t_\ell)` (H0: :math:`\theta \le \ell`),
      ``p_upper`` = :math:`P(T \le t_u)` (H0: :math:`\theta \ge u`),
      ``p_tost`` = max of the two: equivalence is shown at level :math:`\alpha` when
      ``p_tost`` :math:`\le \alpha`, which is the :math:`1 - 2\alpha` interval
      ``ci_tost_low, ci_tost_high`` lying inside the bounds (Schuirmann 1987);
    * ``p_beyond``: the test of the opposite, H0: :math:`\ell \le \theta \le u`, rejected when
      the estimate is far outside on either side,
      :math:`\min(1, 2 \min(P(T \ge t_u), P(T \le t_\ell)))` -- at most :math:`\alpha` exactly
      when the two-sided :math:`1 - \alpha` interval lies entirely outside the bounds.

    ``se = 0`` (all per-trial values equal) gives p-values 0 or 1.
    """
    if not lower < upper:
        raise ValueError(f"need lower < upper; got ({lower}, {upper})")
    keys = ("p_lower", "p_upper", "p_tost", "p_beyond", "ci_tost_low", "ci_tost_high")
    out = dict.fromkeys(keys, math.nan)
    if not (np.isfinite(estimate) and np.isfinite(se) and np.isfinite(df) and df >= 1):
        return out
    if se == 0:
        p_lo = 0.0 if estimate > lower else 1.0
        p_up = 0.0 if estimate < upper else 1.0
        beyond = 0.0 if (estimate > upper or estimate < lower) else 1.0
        out.update(ci_tost_low=estimate, ci_tost_high=estimate)
    else:
        t_lo, t_up = (estimate - lower) / se, (estimate - upper) / se
        p_lo, p_up = float(stats.t.sf(t_lo, df)), float(stats.t.cdf(t_up, df))
        beyond = min(1.0, 2 * min(float(stats.t.sf(t_up, df)), float(stats.t.cdf(t_lo, df))))
        half = float(stats.t.ppf(1 - alpha, df)) * se
        out.update(ci_tost_low=estimate - half, ci_tost_high=estimate + half)
    out.update(p_lower=p_lo, p_upper=p_up, p_tost=max(p_lo, p_up), p_beyond=beyond)
    return out


def tost_paired(
    x: Any, y: Any, margin: float, *, alpha: float = 0.05, confidence: float = 0.95
) -> dict[str, float]:
    r"""TOST of the paired mean difference :math:`\mu_{x-y}` inside :math:`(-\delta, \delta)`.

    Paired t statistics on :math:`d_i = x_i - y_i` with n - 1 degrees of freedom
    (:func:`tost`), the ordinary two-sided paired t-test ``p_t``, and the ``confidence``
    interval ``ci_low, ci_high`` of the mean difference.
    """
    if not (np.isfinite(margin) and margin > 0):
        raise ValueError(f"the equivalence margin must be a positive number; got {margin}")
    x, y, s = _paired(x, y, confidence)
    out = {
        "n": s["n"],
        "mean_x": s["mean_x"],
        "mean_y": s["mean_y"],
        "mean_diff": s["mean"],
        "ci_low": s["ci_low"],
        "ci_high": s["ci_high"],
        "p_t": s["p"],
    }
    out.update(tost(s["mean"], s["se"], s["n"] - 1, -margin, margin, alpha=alpha))
    return out


def _paired(x: Any, y: Any, confidence: float) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """The finite pairs of ``x`` and ``y``, and :func:`paired_t` of ``x - y`` with the two
    means over those pairs (``mean_x``, ``mean_y``)."""
    x, y = finite_rows(x, y)
    s = paired_t(x - y, confidence=confidence)
    s["mean_x"] = float(x.mean()) if x.size else math.nan
    s["mean_y"] = float(y.mean()) if y.size else math.nan
    return x, y, s


def log_mean_contrast(columns: Any, weights: Any, *, confidence: float = 0.95) -> dict[str, float]:
    r"""The log contrast :math:`L = \sum_j w_j \log \bar x_j` of paired columns (trials in
    rows), with a delta-method standard error and t interval.

    Each trial's influence is :math:`g_i = \sum_j w_j x_{ij} / \bar x_j`; then
    :math:`\mathrm{se}(L) = s_g / \sqrt n` (the first-order delta method, which accounts for
    the correlation of the paired columns) and the interval is
    :math:`L \pm t_{n-1,(1+c)/2}\,\mathrm{se}`. For ``w = (1, -1)``, :math:`e^L` is the ratio
    of the two means; for ``w = (1, -1, -1, 1)`` on ``(a2, a1, b2, b1)`` it is the ratio of
    the two families' changes :math:`(\bar a_2/\bar a_1) / (\bar b_2/\bar b_1)`.

    Returns ``n, estimate (L), se, df, ci_low, ci_high`` (NaN with n < 2 or a non-positive
    mean).
    """
    x = np.asarray(columns, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError("columns must be a 2-d array (trials x columns)")
    w = np.asarray(weights, dtype=np.float64).ravel()
    if w.size != x.shape[1]:
        raise ValueError("one weight per column")
    x = x[np.all(np.isfinite(x), axis=1)]
    n = int(x.shape[0])
    out = dict.fromkeys(("estimate", "se", "df", "ci_low", "ci_high"), math.nan)
    out["n"] = n
    if n == 0:
        return out
    means = x.mean(axis=0)
    if np.any(means <= 0):
        return out
    out["estimate"] = float(np.dot(w, np.log(means)))
    if n < 2:
        return out
    g = (x / means) @ w
    se = float(g.std(ddof=1) / math.sqrt(n))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    out.update(
        se=se,
        df=float(n - 1),
        ci_low=out["estimate"] - half,
        ci_high=out["estimate"] + half,
    )
    return out


def ratio_of_means(a: Any, b: Any, *, confidence: float = 0.95) -> dict[str, float]:
    r"""Ratio :math:`R = \bar a / \bar b` over paired trials with a delta-method interval on
    the log scale, :math:`R\, e^{\pm t\, \mathrm{se}(\log R)}` (:func:`log_mean_contrast`).

    Returns ``n, mean_a, mean_b, ratio, ci_low, ci_high, log_se``.
    """
    a, b = finite_rows(a, b)
    c = log_mean_contrast(np.column_stack([a, b]), [1.0, -1.0], confidence=confidence)
    return {
        "n": c["n"],
        "mean_a": float(a.mean()) if a.size else math.nan,
        "mean_b": float(b.mean()) if b.size else math.nan,
        "ratio": math.exp(c["estimate"]) if np.isfinite(c["estimate"]) else math.nan,
        "ci_low": math.exp(c["ci_low"]) if np.isfinite(c["ci_low"]) else math.nan,
        "ci_high": math.exp(c["ci_high"]) if np.isfinite(c["ci_high"]) else math.nan,
        "log_se": c["se"],
    }


def mean_se(x: Any) -> tuple[int, float, float]:
    r"""Number, mean and standard error of the finite values in ``x``.

    .. math:: \mathrm{SE} = s / \sqrt{n}, \qquad s^2 = \frac{1}{n-1} \sum_i (x_i - \bar x)^2

    (NaN for the SE when n < 2).
    """
    a = np.asarray(x, dtype=np.float64)
    a = a[np.isfinite(a)]
    n = a.size
    if n == 0:
        return 0, math.nan, math.nan
    se = float(a.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return n, float(a.mean()), se


def paired_stats(x: Any, y: Any, *, confidence: float = 0.95) -> dict[str, float]:
    r"""Paired comparison of ``x`` and ``y`` (same trials, same order); differences ``x - y``.

    With :math:`d_i = x_i - y_i`, :math:`\bar d`, :math:`s_d` (ddof 1) and n pairs:

    .. math::
        t = \frac{\bar d}{s_d/\sqrt{n}}, \qquad
        \mathrm{CI} = \bar d \pm t_{n-1,\,(1+c)/2}\, s_d/\sqrt{n}

    p-values: two-sided paired t-test (:func:`paired_t`, as :func:`scipy.stats.ttest_rel`) and Wilcoxon
    signed-rank test (:func:`scipy.stats.wilcoxon`, exact for small n, zero differences
    dropped). NaN where undefined (n < 2, all differences equal).
    """
    x, y, s = _paired(x, y, confidence)
    d = x - y
    out = {
        "n": s["n"],
        "mean_a": s["mean_x"],
        "mean_b": s["mean_y"],
        "mean_diff": s["mean"],
        "sd_diff": s["sd"],
        "ci_low": s["ci_low"],
        "ci_high": s["ci_high"],
        "t": math.nan,
        "p_t": math.nan,
        "p_wilcoxon": math.nan,
    }
    if s["n"] < 2:
        return out
    if s["sd"] > 0:  # the paired t-test (scipy.stats.ttest_rel)
        out.update(t=s["t"], p_t=s["p"])
    if np.any(d != 0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out["p_wilcoxon"] = float(stats.wilcoxon(d).pvalue)
            except ValueError:
                pass
    return out


def t_side(estimate: float, se: float, df: float, side: str) -> float:
    """p-value of a t test of 0: ``less`` (H1 < 0), ``greater`` or ``two-sided``."""
    if not (np.isfinite(estimate) and np.isfinite(se) and np.isfinite(df) and df >= 1):
        return math.nan
    if se == 0:
        hit = {"less": estimate < 0, "greater": estimate > 0, "two-sided": estimate != 0}[side]
        return 0.0 if hit else 1.0
    t = estimate / se
    if side == "less":
        return float(stats.t.cdf(t, df))
    if side == "greater":
        return float(stats.t.sf(t, df))
    return float(2 * stats.t.sf(abs(t), df))


def claim_decision(deciding: list[dict[str, Any]], alpha: float) -> str | None:
    """The rule every claim's verdict uses, on its deciding comparisons (each a dict with
    ``p_claim``, the p-value for the claim, and ``p_against``, for its negation):
    ``"reproduced"`` when every comparison shows the claim at ``alpha`` (an intersection-
    union test: no correction needed), ``"not reproduced"`` when at least one shows its
    negation after Holm's correction across them, else ``None`` (cannot tell). Fills each
    comparison's ``p_against_holm``."""
    adj = holm([c["p_against"] for c in deciding])
    for c, a in zip(deciding, adj, strict=True):
        c["p_against_holm"] = float(a)
    p_claim = np.array([c["p_claim"] for c in deciding], dtype=float)
    if len(p_claim) and np.all(np.isfinite(p_claim)) and np.all(p_claim <= alpha):
        return "reproduced"
    if np.any(np.isfinite(adj) & (adj <= alpha)):
        return "not reproduced"
    return None
