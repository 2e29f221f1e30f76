"""The in-control GLMs of the CUSUM-type detectors: R's glm.fit (IRLS) and MASS::glm.nb, step for step.

Both fit a log-linear model of the weekly counts on the weeks before the monitored run, with
columns 1, [t], and harmonics cos(2πst/52), sin(2πst/52) (`design`):

* `irls` is R's glm.fit for a log link, Poisson or negative binomial with a known theta,
  started and stopped as R does: `monitor.detectors.cusum` fits its Poisson expected count
  m(t) with it (surveillance::cusum, m = "glm");
* `glm_nb` is MASS::glm.nb, alternating `irls` with the maximum-likelihood theta:
  `monitor.detectors.glrnb` fits its negative-binomial in-control mean mu0(t) and dispersion
  with it (surveillance::glrnb).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import digamma, gammaln, polygamma

PERIOD = 52  # weeks per year in the harmonic terms (R: the sts frequency)


def design(t: np.ndarray, *, harmonics: int, trend: bool) -> np.ndarray:
    """Columns 1, [t], cos(2πst/52), sin(2πst/52) for s = 1..harmonics; `t` 1-based week numbers."""
    t = np.asarray(t, dtype=float)
    cols = [np.ones_like(t)]
    if trend:
        cols.append(t)
    for s in range(1, harmonics + 1):
        cols += [np.cos(2 * s * np.pi / PERIOD * t), np.sin(2 * s * np.pi / PERIOD * t)]
    return np.column_stack(cols)


def _poisson_dev(y: np.ndarray, mu: np.ndarray) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        ylogy = np.where(y > 0, y * np.log(y / mu), 0.0)
    return float(np.sum(2 * (ylogy - (y - mu))))


def _nb_dev(y: np.ndarray, mu: np.ndarray, theta: float) -> float:
    return float(np.sum(2 * (y * np.log(np.maximum(1.0, y) / mu) - (y + theta) * np.log((y + theta) / (mu + theta)))))


def irls(X: np.ndarray, y: np.ndarray, eta: np.ndarray, theta: float | None, *, maxit: int = 25, epsilon: float = 1e-8):
    """R's glm.fit for a log link: Poisson (theta None) or NB(theta); returns (coef, mu)."""
    mu = np.exp(eta)
    deviance = (lambda m: _poisson_dev(y, m)) if theta is None else (lambda m: _nb_dev(y, m, theta))
    dev_old = deviance(mu)
    coef = np.full(X.shape[1], np.nan)
    for _ in range(maxit):
        var = mu if theta is None else mu + mu**2 / theta
        z = eta + (y - mu) / mu
        w = np.sqrt(mu**2 / var)
        coef = np.linalg.lstsq(X * w[:, None], z * w, rcond=None)[0]
        eta = X @ coef
        mu = np.exp(eta)
        dev = deviance(mu)
        if not math.isfinite(dev):
            raise FloatingPointError("the GLM deviance is not finite")
        if abs(dev - dev_old) / (abs(dev) + 0.1) < epsilon:
            break
        dev_old = dev
    return coef, mu


def _theta_ml(y: np.ndarray, mu: np.ndarray, *, limit: int = 25) -> float:
    """MASS::theta.ml: Newton-Raphson for the NB size parameter with mu fixed."""
    n = len(y)
    eps = np.finfo(float).eps ** 0.25
    t0 = n / np.sum((y / mu - 1) ** 2)
    it, delta = 0, 1.0
    while (it := it + 1) < limit and abs(delta) > eps:
        t0 = abs(t0)
        score = np.sum(digamma(t0 + y) - digamma(t0) + np.log(t0) + 1 - np.log(t0 + mu) - (y + t0) / (mu + t0))
        info = np.sum(-polygamma(1, t0 + y) + polygamma(1, t0) - 1 / t0 + 2 / (mu + t0) - (y + t0) / (mu + t0) ** 2)
        delta = score / info
        t0 = t0 + delta
    return max(float(t0), 0.0)


def _nb_loglik(theta: float, mu: np.ndarray, y: np.ndarray) -> float:
    return float(
        np.sum(
            gammaln(theta + y) - gammaln(theta) - gammaln(y + 1) + theta * np.log(theta)
            + y * np.log(mu + (y == 0)) - (theta + y) * np.log(theta + mu)
        )
    )  # fmt: skip


def glm_nb(X: np.ndarray, y: np.ndarray, *, maxit: int = 25, epsilon: float = 1e-8) -> tuple[np.ndarray, float]:
    """MASS::glm.nb (log link, no weights): (coefficients, theta); variance mu + mu²/theta."""
    y = np.asarray(y, dtype=float)
    coef, mu = irls(X, y, np.log(y + 0.1), None, maxit=maxit, epsilon=epsilon)
    theta = _theta_ml(y, mu, limit=maxit)
    d1 = math.sqrt(2 * max(1, len(y) - np.linalg.matrix_rank(X)))
    d2 = delta = 1.0
    lm = _nb_loglik(theta, mu, y)
    lm0 = lm + 2 * d1
    it = 0
    while (it := it + 1) <= maxit and (abs(lm0 - lm) / d1 + abs(delta) / d2) > epsilon:
        coef, mu_new = irls(X, y, np.log(mu), theta, maxit=maxit, epsilon=epsilon)
        t0 = theta
        theta = _theta_ml(y, mu, limit=maxit)  # R uses the previous fit's mu here
        mu = mu_new
        delta = t0 - theta
        lm0 = lm
        lm = _nb_loglik(theta, mu, y)
    return coef, theta
