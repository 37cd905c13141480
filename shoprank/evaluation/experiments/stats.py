"""The statistics an experiment is decided with, on per-shopper sums.

Why per shopper: the arm is assigned per shopper, so shoppers are the independent units. A ratio
such as purchases per request is a ratio of two per-shopper sums, and its variance comes from the
delta method over shoppers. Treating requests as independent would understate the variance of a
heavy shopper's many requests.

Why mSPRT: the hourly evaluation looks at the data every hour and may stop at any look. A fixed-n
test looked at that often rejects far more often than its alpha. The mixture sequential probability
ratio test (Johari, Pekelis & Walsh, "Always valid inference", 2017) gives a p-value that stays
valid under continuous monitoring. `make bench-experiments` measures its A/A false-promotion rate
at many looks. The mixture is normal, N(0, tau^2) on the difference, with tau set from the expected
relative lift times the control's mean. The p-value is the running minimum of 1/Lambda over the
looks, so the caller keeps it between looks (`SequentialState`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats


@dataclass(frozen=True)
class RatioEstimate:
    """sum(numerator) / sum(denominator) over units, with the delta-method variance of that ratio."""

    value: float
    variance: float
    units: int
    numerator: float
    denominator: float

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% fixed-n interval (for display; decisions use the always-valid one)."""
        half = 1.959964 * math.sqrt(max(self.variance, 0.0))
        return self.value - half, self.value + half


def ratio(numerator: Sequence[float] | np.ndarray, denominator: Sequence[float] | np.ndarray) -> RatioEstimate:
    """The ratio of per-unit sums. Var(R) ~ (s_y^2 - 2 R s_yx + R^2 s_x^2) / (n mean_x^2)."""
    y, x = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    n = len(y)
    if n == 0 or x.sum() <= 0:
        return RatioEstimate(float("nan"), float("inf"), n, float(y.sum()), float(x.sum()))
    value = y.sum() / x.sum()
    if n < 2:
        return RatioEstimate(float(value), float("inf"), n, float(y.sum()), float(x.sum()))
    cov = np.cov(np.vstack([y, x]), ddof=1)
    variance = (cov[0, 0] - 2 * value * cov[0, 1] + value ** 2 * cov[1, 1]) / (n * x.mean() ** 2)
    return RatioEstimate(float(value), float(max(variance, 0.0)), n, float(y.sum()), float(x.sum()))


def mixture_likelihood_ratio(difference: float, variance: float, tau2: float) -> float:
    """Lambda of the normal-mixture SPRT for H0: difference = 0, where the estimate ~ N(theta, variance)."""
    if not (variance > 0 and tau2 > 0) or not math.isfinite(difference):
        return 1.0
    exponent = tau2 * difference ** 2 / (2 * variance * (variance + tau2))
    return math.sqrt(variance / (variance + tau2)) * math.exp(min(exponent, 700.0))


def confidence_sequence(difference: float, variance: float, tau2: float, alpha: float) -> tuple[float, float]:
    """The always-valid (1 - alpha) interval for the difference: where Lambda(theta0) < 1/alpha."""
    if not (variance > 0 and tau2 > 0) or not math.isfinite(difference):
        return -math.inf, math.inf
    half = math.sqrt(2 * variance * (variance + tau2) / tau2
                     * (math.log(1 / alpha) + 0.5 * math.log((variance + tau2) / variance)))
    return difference - half, difference + half


@dataclass(frozen=True)
class SequentialLook:
    """One look at a difference: estimate, variance, always-valid p (running minimum) and interval."""

    difference: float
    variance: float
    p_value: float
    interval: tuple[float, float]
    tau2: float


def sequential_look(difference: float, variance: float, scale: float, expected_lift: float, alpha: float,
                    previous_p: float = 1.0) -> SequentialLook:
    """Look once: `scale` is the control's mean (tau = expected_lift x scale); the p-value is the
    minimum of this look's 1/Lambda and `previous_p`."""
    tau2 = (expected_lift * abs(scale)) ** 2 if scale and math.isfinite(scale) else 0.0
    lam = mixture_likelihood_ratio(difference, variance, tau2)
    p = min(previous_p, 1.0 / lam if lam > 0 else 1.0, 1.0)
    return SequentialLook(difference, variance, p, confidence_sequence(difference, variance, tau2, alpha), tau2)


def sample_ratio_p(observed: Sequence[int], shares: Sequence[float]) -> float:
    """Chi-square goodness of fit of the arms' exposed units to their configured shares. A tiny p
    (the check uses 0.001) means assignment or logging is broken: the arms are not comparable."""
    counts = np.asarray(observed, dtype=float)
    total = counts.sum()
    if total <= 0:
        return 1.0
    expected = np.asarray(shares, dtype=float) / np.sum(shares) * total
    return float(scipy_stats.chisquare(counts, expected).pvalue)


def mean_estimate(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """(mean, variance of the mean) of per-unit values."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return (float(v.mean()) if len(v) else float("nan")), float("inf")
    return float(v.mean()), float(v.var(ddof=1) / len(v))
