"""Synthetic half-hourly arrivals with a known truth, for the forecast's tests and benchmark:
a day profile x a weekday level, each day's volume drawn by a gamma multiplier, Poisson
counts around that; and a rolling-origin evaluation of a forecast method on them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from tencent_desk.planning import forecast as fc

# 48 half-hours: a quiet night, a ramp to a long day-time plateau, an evening decline.
DAY_PROFILE = np.concatenate([np.full(16, 0.05), np.linspace(0.3, 1.0, 6), np.full(12, 1.0),
                              np.linspace(1.0, 0.3, 8), np.full(6, 0.1)])
WEEKDAY = np.array([1.0, 1.0, 0.95, 0.95, 0.9, 0.45, 0.35])  # Monday .. Sunday


def seasonal(weeks: int, peak: float, seed: int, cv: float = 0.1,
             start: str = "2026-01-05") -> tuple[pd.Series, pd.Series]:
    """(counts, the expected rate of each interval before the day's draw: the oracle)."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=weeks * 7 * 48, freq="30min", tz="UTC")
    rate = peak * DAY_PROFILE[np.arange(len(index)) % 48] * WEEKDAY[index.day_of_week]
    shape = 1 / cv**2
    day = np.repeat(rng.gamma(shape, 1 / shape, weeks * 7), 48)
    return pd.Series(rng.poisson(rate * day).astype(float), index), pd.Series(rate, index)


def wape(actual: pd.Series, predicted: pd.Series) -> float:
    return float((actual - predicted).abs().sum() / actual.sum())


@dataclass(frozen=True)
class Scores:
    wape: float  # over busy intervals (expected rate >= 20)
    oracle_wape: float
    naive_wape: float
    bias: float  # (forecast - actual) / actual, summed
    coverage: float  # actuals inside the 80% interval
    floor: float  # the Poisson floor, 0.8 / sqrt(lambda), weighted by lambda
    intraday_wape: float  # the afternoon after a reforecast at 12:00
    oracle_afternoon_wape: float  # the evening-before oracle's, same afternoons


def rolling_origin(counts: pd.Series, oracle: pd.Series, history_weeks: int = 10,
                   days: int = 14, method: str = "profile") -> Scores:
    """Plan each of ``days`` days from the data before it, after ``history_weeks`` weeks."""
    start = counts.index[0] + pd.Timedelta(weeks=history_weeks)
    got, naive, inside, after, afternoon = [], [], [], [], []
    for k in range(days):
        day = start + pd.Timedelta(days=k)
        at = pd.date_range(day, periods=48, freq="30min")
        history = counts[counts.index < day]
        f = fc.forecast(history, at, method)
        got.append(f.forecast)
        naive.append(fc.forecast(history, at, "naive").forecast)
        inside.append((counts[at] >= f.lo) & (counts[at] <= f.hi))
        noon = day + pd.Timedelta(hours=12)
        rest, _ = fc.intraday(f, counts[(counts.index >= day) & (counts.index < noon)],
                              fc.day_variance(history))
        after.append(rest.forecast)
        afternoon.append(rest.index)
    pred = pd.concat(got)
    actual, rate = counts[pred.index], oracle[pred.index]
    busy = rate >= 20
    pm = pd.DatetimeIndex(np.concatenate(afternoon))
    return Scores(
        wape=wape(actual[busy], pred[busy]), oracle_wape=wape(actual[busy], rate[busy]),
        naive_wape=wape(actual[busy], pd.concat(naive)[busy]),
        bias=float((pred[busy] - actual[busy]).sum() / actual[busy].sum()),
        coverage=float(pd.concat(inside)[busy].mean()),
        floor=float((0.8 * np.sqrt(rate[busy])).sum() / rate[busy].sum()),
        intraday_wape=wape(counts[pm], pd.concat(after)),
        oracle_afternoon_wape=wape(counts[pm], oracle[pm]))
