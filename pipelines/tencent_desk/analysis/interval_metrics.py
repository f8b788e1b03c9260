"""Figures over any window from the interval tables (``queue_intervals``,
``agent_intervals``, ``interval_sketches``): what a week, a month or a quarter is read by.

Counts, sums, means, maxima, service level (:mod:`service_level`: answered within T ÷
(answered + abandoned after T), with bounds) and abandonment come from the sums of the
window's 15-minute rows, and equal ``timeline_metrics.event_figures`` of the same window
(each event counts in the interval where it happened). Medians and 90th percentiles come from the
sketch's log buckets: within ``SKETCH_ALPHA`` (1%) of the exact figure. A window is read
in whole intervals: its bounds are rounded out to 15 minutes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import duckdb
import numpy as np
import pandas as pd
from tencent_desk.analysis import service_level
from tencent_desk.core import frames
from tencent_desk.core.settings import DEFAULT_DATASET, NO_GROUP
from tencent_desk.core.spans import union
from tencent_desk.core.sql import ident
from tencent_desk.models import intervals
from tencent_desk.models.intervals import AGENT, QUEUE, SKETCH, WIDTH_S

QUANTILES = {"median": 0.5, "p90": 0.9}


def made_earlier(con: duckdb.DuckDBPyConnection, dataset: str = DEFAULT_DATASET) -> bool:
    """The interval tables a reader sees were made by an earlier version (a snapshot
    published before an upgrade): their figures cannot be read until a publish makes them
    anew."""
    return intervals.outdated({c for (c,) in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
        "AND table_name = ?", [dataset, QUEUE]).fetchall()})


def bounds(since: datetime, until: datetime) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The window in whole intervals (rounded out)."""
    width = pd.Timedelta(seconds=WIDTH_S)
    return (pd.Timestamp(since).tz_convert("UTC").floor(width),
            pd.Timestamp(until).tz_convert("UTC").ceil(width))


def _group(by: str | None) -> str:
    if by is None:
        return "'all'"
    return f"coalesce(CAST({ident(by)} AS VARCHAR), '{NO_GROUP}')"


def totals(con: duckdb.DuckDBPyConnection, since: datetime, until: datetime,
           by: str | None = None, dataset: str = DEFAULT_DATASET) -> pd.DataFrame:
    """The window's ``queue_intervals`` rows summed per group (maxima: the maximum)."""
    names = [c for c in intervals._queue_columns()]
    agg = ", ".join(f"max({c}) AS {c}" if c.endswith("_max_s") or c == "queue_max"
                    else f"sum({c}) AS {c}" for c in names)
    lo, hi = bounds(since, until)
    return frames.frame(con, f"""
        SELECT {_group(by)} AS "group", {agg} FROM {ident(dataset)}.{QUEUE}
        WHERE interval_start >= ? AND interval_start < ? GROUP BY 1 ORDER BY 1""",
                        [lo.to_pydatetime(), hi.to_pydatetime()]).set_index("group")


def quantiles(con: duckdb.DuckDBPyConnection, since: datetime, until: datetime,
              by: str | None = None, dataset: str = DEFAULT_DATASET) -> pd.DataFrame:
    """Median and p90 of the waits answered and the handling times ended in the window,
    from the sketch: per group, columns ``wait_median_s``, ``wait_p90_s``, ... Each is
    within ``SKETCH_ALPHA`` of the value at the same rank (``interpolation="lower"``, as
    ``timeline_metrics``) among the exact spans."""
    lo, hi = bounds(since, until)
    hist = frames.frame(con, f"""
        SELECT {_group(by)} AS "group", span, bucket, sum(n) AS n
        FROM {ident(dataset)}.{SKETCH} WHERE interval_start >= ? AND interval_start < ?
        GROUP BY ALL ORDER BY 1, 2, 3""", [lo.to_pydatetime(), hi.to_pydatetime()])
    out: dict[str, dict[str, float]] = {}
    for (key, span), h in hist.groupby(["group", "span"], sort=True):
        counts = h["n"].to_numpy(dtype=np.int64)
        cum = np.cumsum(counts)
        for stat, q in QUANTILES.items():
            rank = int(np.floor(q * (cum[-1] - 1)))  # 0-based, as "lower" interpolation
            bucket = int(h["bucket"].to_numpy()[np.searchsorted(cum, rank, side="right")])
            out.setdefault(str(key), {})[f"{span}_{stat}_s"] = intervals.bucket_value(bucket)
    return pd.DataFrame.from_dict(out, orient="index").rename_axis("group")


def figures(con: duckdb.DuckDBPyConnection, since: datetime, until: datetime,
            target_s: float = intervals.SERVICE_TARGET_S, by: str | None = None,
            dataset: str = DEFAULT_DATASET) -> pd.DataFrame:
    """The figures of ``timeline_metrics.event_figures``, one row per group, from the
    interval tables. ``target_s`` must be one of ``WAIT_EDGES_S``."""
    if int(target_s) not in intervals.WAIT_EDGES_S or target_s != int(target_s):
        raise ValueError(f"service level within {target_s:g} s: the interval tables count "
                         f"waits within {', '.join(map(str, intervals.WAIT_EDGES_S))} s only")
    t = totals(con, since, until, by, dataset).astype(float)
    # a group whose sessions all moved to another (a late record naming it) keeps zeros
    t = t[t[["began", "queued", "answered", "exits", "handled"]].sum(axis=1) > 0]
    if t.empty:
        return pd.DataFrame()
    e = int(target_s)
    nan = np.nan

    def share(num: str, den: str) -> pd.Series:
        return (t[num] / t[den]).where(t[den] > 0, nan)

    out = pd.DataFrame(index=t.index)
    for name in ("began", "queued", "answered", "exits", "abandoned"):
        out[name] = t[name].astype(int)
    out["waits"], out["handles"] = t["waits"].astype(int), t["handled"].astype(int)
    out["began_exact_share"] = share("began_exact", "began")
    out["queued_exact_share"] = share("queued_exact", "queued")
    for span, n in (("wait", "waits"), ("handle", "handled")):
        out[f"{span}_mean_s"] = share(f"{span}_sum_s", n)
        out[f"{span}_mean_lo_s"] = share(f"{span}_lo_sum_s", n)
        out[f"{span}_mean_hi_s"] = share(f"{span}_hi_sum_s", n).where(
            t[f"{span}_hi_open"] == 0, np.inf).where(t[n] > 0, nan)
        out[f"{span}_exact_share"] = share(f"{n}_exact" if span == "wait" else "handled_exact",
                                           n)
        out[f"{span}_max_s"] = t[f"{span}_max_s"]
    # abandoned after T: the abandons not within it (lo: not surely within; hi: not possibly)
    for name, bound in (("service_level", ""), ("service_level_lo", "_lo"),
                        ("service_level_hi", "_hi")):
        out[name] = service_level.share(t[f"within{bound}_{e}"], t["waits"],
                                        t["abandoned"] - t[f"abandoned_within{bound}_{e}"])
    out["abandonment"] = share("abandoned", "exits")
    out["exits_exact_share"] = share("exits_exact", "exits")
    out["queue_mean"] = t["queue_s"] / (bounds(since, until)[1] - bounds(since, until)[0]
                                        ).total_seconds()
    out["queue_max"] = t["queue_max"].astype(int)
    # every quantile column, NaN where a span has no sample (nothing answered: no waits)
    names = [f"{span}_{stat}_s" for span in ("wait", "handle") for stat in QUANTILES]
    return out.join(quantiles(con, since, until, by, dataset).reindex(columns=names))


def per_interval(con: duckdb.DuckDBPyConnection, since: datetime, until: datetime,
                 every: str = "1D", by: str | None = None,
                 dataset: str = DEFAULT_DATASET,
                 target_s: float = intervals.SERVICE_TARGET_S,
                 gaps: Sequence[tuple[datetime, datetime]] = ()) -> pd.DataFrame:
    """Per ``every`` (a multiple of 15 minutes: "1h", "1D") and group: arrivals (queued),
    answered, abandoned, service level, abandonment and mean handling time; every
    period of the window is there: 0 arrivals where none came, NaN throughout where the
    period lies wholly in ``gaps`` (spans without data: nothing was seen, not nothing came)."""
    lo, hi = bounds(since, until)
    step = int(pd.Timedelta(every).total_seconds())
    e = int(target_s)
    frame = frames.frame(con, f"""
        SELECT {_group(by)} AS "group",
            to_timestamp(epoch(interval_start)::BIGINT // {step} * {step}) AS period_start,
            sum(queued) AS arrivals, sum(answered) AS answered, sum(abandoned) AS abandoned,
            sum(waits) AS waits, sum(within_{e}) AS within, sum(exits) AS exits,
            sum(abandoned - abandoned_within_{e}) AS abandoned_after,
            sum(handled) AS handled, sum(handle_sum_s) AS handle_sum_s
        FROM {ident(dataset)}.{QUEUE} WHERE interval_start >= ? AND interval_start < ?
        GROUP BY ALL ORDER BY 1, 2""", [lo.to_pydatetime(), hi.to_pydatetime()])
    frame["service_level"] = service_level.share(frame["within"], frame["waits"],
                                                 frame["abandoned_after"])
    frame["abandonment"] = (frame["abandoned"] / frame["exits"]).where(frame["exits"] > 0)
    frame["aht_s"] = (frame["handle_sum_s"] / frame["handled"]).where(frame["handled"] > 0)
    periods = pd.date_range(lo.floor(pd.Timedelta(seconds=step)), hi, freq=f"{step}s",
                            inclusive="left")
    seen = ~unseen(periods, pd.Timedelta(seconds=step), gaps)
    counts = ["arrivals", "answered", "abandoned"]
    parts = []
    for key, g in frame.groupby("group", sort=True):
        g = g.set_index("period_start").reindex(periods)
        g[counts] = g[counts].astype("float64")
        g.loc[seen, counts] = g.loc[seen, counts].fillna(0)
        parts.append(g.assign(group=key).rename_axis("period_start").reset_index())
    columns = ["group", "period_start", *counts, "service_level", "abandonment", "aht_s"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(
        columns=columns)


def unseen(starts: pd.DatetimeIndex, width: pd.Timedelta,
           gaps: Sequence[tuple[datetime, datetime]]) -> np.ndarray:
    """Which periods ``[start, start + width)`` lie wholly within ``gaps`` (spans without
    data, in any order; touching spans join)."""
    if not len(gaps) or not len(starts):
        return np.zeros(len(starts), dtype=bool)
    ns = [[pd.Timestamp(t).tz_convert("UTC").as_unit("ns").value for t in span]
          for span in gaps]
    s, e = union(*np.asarray(ns, dtype=np.int64).T)
    lo = starts.as_unit("ns").asi8
    hi = (starts + width).as_unit("ns").asi8
    # the one joined gap that can hold a period: the last to start at or before it
    k = np.searchsorted(s, lo, "right") - 1
    return (k >= 0) & (hi <= e[np.maximum(k, 0)])


def days_without(days: Sequence[date], since: datetime, until: datetime
                 ) -> list[tuple[datetime, datetime]]:
    """The UTC days of ``[since, until)`` not in ``days`` (the days with data), as spans."""
    have = set(days)
    first = pd.Timestamp(since).tz_convert("UTC").floor("D")
    return [(d.to_pydatetime(), (d + pd.Timedelta(days=1)).to_pydatetime())
            for d in pd.date_range(first, pd.Timestamp(until).tz_convert("UTC"), freq="D",
                                   inclusive="left") if d.date() not in have]


def weekday_hour(con: duckdb.DuckDBPyConnection, since: datetime, until: datetime,
                 dataset: str = DEFAULT_DATASET,
                 target_s: float = intervals.SERVICE_TARGET_S,
                 days: Sequence[date] | None = None) -> pd.DataFrame:
    """Per weekday (0 = Monday) and UTC hour over the window: mean arrivals per such hour
    over the days of that weekday with data (``days``; default: those the interval tables
    hold rows on), a day without data being no day of none, and service level."""
    lo, hi = bounds(since, until)
    e = int(target_s)
    frame = frames.frame(con, f"""
        SELECT isodow(interval_start) - 1 AS weekday, hour(interval_start) AS hour,
            sum(queued) AS arrivals, sum(waits) AS waits, sum(within_{e}) AS within,
            sum(abandoned - abandoned_within_{e}) AS abandoned_after
        FROM {ident(dataset)}.{QUEUE} WHERE interval_start >= ? AND interval_start < ?
        GROUP BY ALL""", [lo.to_pydatetime(), hi.to_pydatetime()])
    held = (set(days) if days is not None else
            {date.fromisoformat(d) for d in covered_days(con, since, until, dataset)})
    window = pd.date_range(lo.floor("D"), hi, freq="D", inclusive="left")
    per_weekday = pd.Series([d.weekday() for d in window if d.date() in held],
                            dtype="int64").value_counts()
    frame["arrivals_per_hour"] = frame["arrivals"] / frame["weekday"].map(per_weekday)
    frame["service_level"] = service_level.share(frame["within"], frame["waits"],
                                                 frame["abandoned_after"])
    return frame.sort_values(["weekday", "hour"]).reset_index(drop=True)


def agents(con: duckdb.DuckDBPyConnection, since: datetime, until: datetime,
           dataset: str = DEFAULT_DATASET, by: Sequence[str] = ("agent_id",)) -> pd.DataFrame:
    """Per agent over the window: chats answered and ended, chat-seconds held, the most
    chats held at once and the intervals with a chat; largest load first."""
    lo, hi = bounds(since, until)
    keys = ", ".join(ident(c) for c in by)
    return frames.frame(con, f"""
        SELECT {keys}, sum(answered) AS answered, sum(ended) AS ended, sum(held_s) AS held_s,
            max(max_chats) AS max_chats, count(*) FILTER (WHERE held_s > 0) AS busy_intervals
        FROM {ident(dataset)}.{AGENT} WHERE interval_start >= ? AND interval_start < ?
        GROUP BY ALL ORDER BY held_s DESC, {keys}""", [lo.to_pydatetime(), hi.to_pydatetime()])


def occupancy_per_interval(con: duckdb.DuckDBPyConnection, since: datetime, until: datetime,
                           every: str = "1h", dataset: str = DEFAULT_DATASET) -> pd.DataFrame:
    """Per agent and ``every`` (a multiple of 15 minutes) in which the agent held a chat:
    chat-seconds held (``held_s``); the rows ``timeline_metrics.occupancy_per_interval``
    gives per agent, which ``timeline_metrics.occupancy_over_intervals`` reads. As the
    tables keep it, a chat counts once it has ended (an open one holds nothing yet)."""
    lo, hi = bounds(since, until)
    step = int(pd.Timedelta(every).total_seconds())
    return frames.frame(con, f"""
        SELECT agent_id, sum(held_s) AS held_s, 1 AS agents,
            to_timestamp(epoch(interval_start)::BIGINT // {step} * {step}) AS interval_start
        FROM {ident(dataset)}.{AGENT} WHERE interval_start >= ? AND interval_start < ?
        GROUP BY agent_id, 4 HAVING sum(held_s) > 0 ORDER BY 4, 1""",
                        [lo.to_pydatetime(), hi.to_pydatetime()])


def covered_days(con: duckdb.DuckDBPyConnection, since: datetime, until: datetime,
                 dataset: str = DEFAULT_DATASET) -> list[str]:
    """The UTC days of the window that have interval rows (ISO dates)."""
    lo, hi = bounds(since, until)
    return [d for (d,) in con.execute(
        f"SELECT DISTINCT strftime(interval_start, '%Y-%m-%d') FROM {ident(dataset)}.{QUEUE} "
        "WHERE interval_start >= ? AND interval_start < ? ORDER BY 1",
        [lo.to_pydatetime(), hi.to_pydatetime()]).fetchall()]
