"""Forecasts of each interval's demand from past sessions: arrivals (sessions asking for a
human) with an 80% prediction interval, handling time, and patience.

Methods (compared in benchmarks/, chosen in docs/planning.md):

- ``naive``: seasonal naive, the same interval a week before (the latest such day with data).
- ``profile``: the weekday's level (its mean daily volume over the last ``weeks`` weeks with
  data) times its day type's shape (each interval's share of the day, pooled over weekdays,
  or over Saturdays, or Sundays, of those weeks). Taylor (Management Science 54, 2008)
  found that beyond a day or two ahead "a simplistic historical average is difficult to
  beat"; pooling the shape over a day type makes it less noisy than one weekday's mean.

Every interval is forecast from the data before the forecast's origin (its first day): the
weeks before each later day would hold less data the further the day, none at all beyond
``weeks`` weeks, so a day in the fifth week of a plan is its weekday's in the first.

Intervals: an interval's arrivals are Poisson around a rate that the day scales (a day's
volume is drawn around its level: a multiplier with variance ``cv2``), and the profile's
mean is itself uncertain (the variance of its ``weeks`` values over their number). The
actual is then negative binomial with mean mu and variance mu + mu^2 cv2 + var(mean); the
interval is its 10% and 90% quantiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tencent_desk.planning.choices import METHODS

LEVEL = 0.8  # the prediction interval's coverage
MIN_DAYS = 14  # two of every weekday: the profile's spread and the day-to-day variance
WEEKS = 8  # how far back the profile looks


def day_variance(counts: pd.Series) -> float:
    """cv^2 of a day's volume beyond Poisson: from the daily totals of each weekday,
    (variance - mean) / mean^2, pooled over the weekdays; 0 when no more than Poisson."""
    totals = counts.groupby(counts.index.normalize()).sum(min_count=1).dropna()
    totals = totals[totals > 0]
    if totals.empty:
        return 0.0
    parts = []
    for _, t in totals.groupby(totals.index.day_of_week):
        if len(t) >= 2:
            parts.append((float(t.var(ddof=1)) - float(t.mean())) / float(t.mean()) ** 2)
    return max(0.0, float(np.mean(parts))) if parts else 0.0


def day_type(weekday: int) -> int:
    """Weekdays share a day's shape; Saturday and Sunday each have their own."""
    return min(weekday, 5) if weekday >= 5 else 0


def _profile(counts: pd.Series, origin: pd.Timestamp, weekday: int, weeks: int
             ) -> tuple[pd.Series, float, float, int]:
    """For ``weekday`` (0: Monday), from the ``weeks`` weeks before ``origin``: its day
    type's shape (share of the day per interval of the day, pooled over that type's days),
    its level (mean daily total of those weeks' such weekdays), the variance of that mean,
    and how many days the shape pools."""
    days = counts.groupby(counts.index.normalize())
    totals = days.sum(min_count=1).dropna()
    totals = totals[(totals.index < origin)
                    & (totals.index >= origin - pd.Timedelta(weeks=weeks))]
    same = totals[totals.index.day_of_week == weekday]
    kind = totals[[day_type(d) == day_type(weekday) for d in totals.index.day_of_week]]
    if same.empty or kind.sum() <= 0:
        return pd.Series(dtype=float), math.nan, math.nan, 0
    pooled = counts[counts.index.normalize().isin(kind.index)]
    slot = pooled.index - pooled.index.normalize()
    shape = pooled.groupby(slot).sum() / float(kind.sum())
    level_var = float(same.var(ddof=1)) / len(same) if len(same) > 1 else float(same.mean())
    return shape, float(same.mean()), level_var, len(kind)


def share_after(counts: pd.Series, end: pd.Timestamp, length: pd.Timedelta) -> float:
    """The share of ``end``'s day's arrivals expected from ``end`` on (the interval it falls
    in included: seen in part), by the shape of its day type pooled over the days of
    ``counts`` (arrivals per interval of ``length``, NaN on days without data); NaN
    without such days."""
    day = end.normalize()
    counts = counts.dropna()
    kind = counts[[day_type(d) == day_type(day.day_of_week)
                   for d in counts.index.day_of_week]]
    total = float(kind.sum())
    if total <= 0:
        return math.nan
    slot = kind.index - kind.index.normalize()
    return float(kind[slot + length > end - day].sum()) / total


def _week_before(counts: pd.Series, at: pd.Timestamp, origin: pd.Timestamp) -> float:
    """The value at ``at`` minus the fewest whole weeks that land before ``origin`` (or a
    week more, two, ... where that day had none)."""
    first = max(0, (at - origin) // pd.Timedelta(weeks=1)) + 1
    values = counts.reindex([at - pd.Timedelta(weeks=k)
                             for k in range(first, first + 59)]).dropna()
    return float(values.iloc[0]) if len(values) else math.nan


def forecast(counts: pd.Series, at: pd.DatetimeIndex, method: str = "profile",
             weeks: int = WEEKS, cv2: float | None = None,
             origin: pd.Timestamp | None = None) -> pd.DataFrame:
    """One group's forecast for the intervals ``at`` from ``counts`` (its history) before
    ``origin`` (a midnight; by default the first interval's): ``forecast``, ``lo`` and
    ``hi`` (the 80% interval), ``sd``, and ``mean_var`` (the variance of the forecast's own
    estimate)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    cv2 = day_variance(counts) if cv2 is None else cv2
    origin = at.min().normalize() if origin is None and len(at) else origin
    rows = []
    profiles: dict[int, tuple[pd.Series, float, float, int]] = {}
    for t in at:
        day = t.normalize()
        if method == "naive":
            mu = _week_before(counts, t, origin)
            # one noisy day: the estimate's error variance is the actual's
            spread = mu * (1 + mu * cv2)
        else:
            if day.day_of_week not in profiles:
                profiles[day.day_of_week] = _profile(counts, origin, day.day_of_week, weeks)
            shape, level, level_var, n_days = profiles[day.day_of_week]
            share = float(shape.get(t - day, 0.0)) if len(shape) else math.nan
            mu = share * level
            spread = share * share * level_var + (mu / n_days if n_days else math.nan)
        if math.isnan(mu):
            rows.append((math.nan, math.nan, math.nan, math.nan, math.nan))
            continue
        var = mu + mu * mu * cv2 + spread
        lo, hi = nb_interval(mu, var)
        rows.append((mu, lo, hi, math.sqrt(var), spread))
    return pd.DataFrame(rows, index=at, columns=["forecast", "lo", "hi", "sd", "mean_var"])


def nb_interval(mean: float, var: float, level: float = LEVEL) -> tuple[float, float]:
    """The central ``level`` interval of a count with this mean and variance: negative
    binomial when over-dispersed, else Poisson (pmf summed in log space; no scipy here)."""
    if mean <= 0:
        return 0.0, 0.0
    top = int(mean + 12 * math.sqrt(max(var, mean)) + 20)
    k = np.arange(top + 1, dtype=float)
    lgamma = np.vectorize(math.lgamma)
    if var > mean * (1 + 1e-9):
        p = mean / var
        r = mean * mean / (var - mean)
        log_pmf = (lgamma(k + r) - math.lgamma(r) - lgamma(k + 1) + r * math.log(p)
                   + k * math.log1p(-p))
    else:
        log_pmf = k * math.log(mean) - mean - lgamma(k + 1)
    cdf = np.cumsum(np.exp(log_pmf))
    tail = (1 - level) / 2
    # Whole bounds whose tails are the nearest to 10% each, not at most 10%: the latter
    # covers 83-87% at the 10-30 arrivals of a busy half hour (Poisson(10): 85%).
    below = np.concatenate(([0.0], cdf[:-1]))  # P(X < k)
    return (float(np.argmin(np.abs(below - tail))),
            float(np.argmin(np.abs(cdf - (1 - tail)))))


def intraday(fc: pd.DataFrame, observed: pd.Series, cv2: float,
             covered: pd.Series | None = None) -> tuple[pd.DataFrame, float]:
    """Update the rest of a day from its arrivals so far. The day's multiplier G has prior
    Gamma(a, a), a = 1 / cv2 (mean 1, variance cv2); after X arrivals where E were
    expected, its posterior has mean (a + X) / (a + E) and variance (a + X) / (a + E)^2.
    ``fc``: the day's forecast; ``observed``: the intervals past (counts); ``covered``: the
    share of each of them the data covers (the last one, where the data ends, in part;
    all of each by default). Returns the forecast of the intervals not in ``observed``,
    and the multiplier."""
    seen = fc.index.isin(observed.index)
    share = 1.0 if covered is None else covered.reindex(fc.index[seen]).to_numpy()
    expected, got = float((fc.forecast[seen] * share).sum()), float(observed.sum())
    if cv2 <= 0:
        return fc[~seen], 1.0
    a = 1.0 / cv2
    g, g_var = (a + got) / (a + expected), (a + got) / (a + expected) ** 2
    rest = fc[~seen].copy()
    base = rest.forecast
    rest["forecast"] = base * g
    var = rest.forecast + base * base * g_var + rest.mean_var * g * g
    bounds = [nb_interval(m, v) for m, v in zip(rest.forecast, var, strict=True)]
    rest["lo"] = [b[0] for b in bounds]
    rest["hi"] = [b[1] for b in bounds]
    rest["sd"] = np.sqrt(var)
    return rest, g


@dataclass(frozen=True)
class Patience:
    mean_s: float  # inf when nobody abandoned
    abandoned: float  # a fraction where sessions without a group were shared (ungrouped.py)
    waited_s: float  # total time waited by everyone who queued (the exposure)


def patience(waited_s: float, abandoned: float) -> Patience:
    """Exponential patience by maximum likelihood, with the waits of the answered as
    censored observations (their patience was at least that long): abandonments / total
    time waited (``waited_s``, everyone's, the answered's included), inverted."""
    return Patience(waited_s / abandoned if abandoned else math.inf, abandoned, waited_s)
