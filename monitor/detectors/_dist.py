"""The few normal and Student-t functions the detectors need, from scipy.special.

They return what `scipy.stats.norm.ppf / isf / sf` and `scipy.stats.t.sf` return (scipy
computes these with the same special functions, argument checks included: a scale or
degrees of freedom that is not positive gives NaN), without importing `scipy.stats`,
which costs most of a second at start-up: `monitor check` must answer within two.
"""

from __future__ import annotations

import numpy as np
from scipy import special


def norm_ppf(q):
    """Quantile of the standard normal (R's qnorm)."""
    return special.ndtri(q)


def norm_isf(q):
    """Upper-tail quantile of the standard normal: norm_ppf(1 - q), accurate for small q."""
    return -special.ndtri(q)


def norm_sf(x, loc=0.0, scale=1.0):
    """Upper tail P(X > x) of N(loc, scale²); NaN where scale is not positive."""
    scale = np.asarray(scale, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (np.asarray(x, dtype=float) - loc) / scale
    out = np.where(scale > 0, special.ndtr(-z), np.nan)
    return out[()] if out.ndim == 0 else out


def t_sf(x, df):
    """Upper tail of Student's t with `df` degrees of freedom; NaN where df is not positive."""
    df = np.asarray(df, dtype=float)
    out = np.where(df > 0, special.stdtr(np.where(df > 0, df, 1.0), -np.asarray(x, dtype=float)), np.nan)
    return out[()] if out.ndim == 0 else out
