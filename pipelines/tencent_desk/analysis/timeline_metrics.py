"""Contact-centre figures from ``session_timeline``, for a window and per agent group.

Every figure comes as ``value`` with ``lo``/``hi`` bounds: equal where the times it rests on
are exact (callbacks, records), apart where they come from polls; and with ``exact_share``,
the share of the sessions behind it whose times are all exact. Sessions are taken by when
they began (``began_at`` in ``[since, until)``); a window with no session gives no row, not
a zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
from tencent_desk.analysis import service_level
from tencent_desk.core import frames
from tencent_desk.core.settings import DEFAULT_DATASET, NO_GROUP
from tencent_desk.core.spans import held_at_starts, union
from tencent_desk.core.sql import ident, qualified
from tencent_desk.models.intervals import SPANS_SQL
from tencent_desk.models.timeline import LOOKBACK_DAYS, TABLE

EXACT = ("event", "record")
FIGURE_TIMES = ("began", "queued", "answered", "ended")
LOOKBACK_SPAN = timedelta(days=LOOKBACK_DAYS)


def sessions(con: duckdb.DuckDBPyConnection, since: datetime | None = None,
             until: datetime | None = None, dataset: str = DEFAULT_DATASET,
             columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The timeline rows of the sessions that began in the window, with the derived spans
    (seconds): ``wait`` (queued to answered) and ``handle`` (answered to ended), each with
    its bounds, and ``abandoned`` (queued, never answered, ended). ``columns``: only these
    (of the rows and spans), for a reader of a few over weeks of sessions."""
    where = " AND ".join(c for c in (
        "began_at >= ?" if since else "", "began_at < ?" if until else "") if c) or "TRUE"
    return _select(con, where, [p for p in (since, until) if p], dataset, columns)


def sessions_touching(con: duckdb.DuckDBPyConnection, since: datetime, until: datetime,
                      dataset: str = DEFAULT_DATASET) -> pd.DataFrame:
    """As :func:`sessions`, the sessions any of whose times (began, queued, answered,
    ended) lies in the window: what :func:`event_figures` reads."""
    where = " OR ".join(f"({t}_at >= ? AND {t}_at < ?)"
                        for t in ("began", "queued", "answered", "ended"))
    # a session's times lie within the timeline's lookback of its start (either side: a
    # start bounded by polls may lie after a queue time a callback gave exactly)
    return _select(con, f"began_at >= ? AND began_at < ? AND ({where})",
                   [since - LOOKBACK_SPAN, until + LOOKBACK_SPAN] + [since, until] * 4, dataset)


def _select(con: duckdb.DuckDBPyConnection, where: str, params: list[datetime],
            dataset: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    # the outer select lets the engine skip the columns and spans nobody reads
    wanted = ", ".join(ident(c) for c in columns) if columns else "*"
    return frames.frame(con, f"""
        SELECT {wanted} FROM (SELECT *, {SPANS_SQL}
        FROM {qualified(dataset, TABLE)} WHERE {where})""", params)


def _rows(df: pd.DataFrame, mask: pd.Series, by: str | None, *columns: str) -> pd.DataFrame:
    """The rows of ``mask`` with only the ``columns`` a figure reads (and ``by``): copying
    all 40 columns of a month of sessions to read four took seconds per figure."""
    return df.loc[mask, list(dict.fromkeys([*columns, *([by] if by else [])]))]


def _groups(df: pd.DataFrame, by: str | None) -> list[tuple[str, pd.DataFrame]]:
    if by is None:  # no session: no row (as the docstring says), not a NaN one
        return [("all", df)] if len(df) else []
    return [(str(k), g) for k, g in df.groupby(df[by].fillna(NO_GROUP), sort=True)]


def _stat(values: pd.Series, lo: pd.Series, hi: pd.Series, how: str) -> tuple[float, ...]:
    """A statistic and its bounds: the statistic of the lower and of the upper bounds
    (mean, median and quantiles are monotone); an unbounded upper end gives inf."""
    def f(x: pd.Series) -> float:
        x = x.astype(float).fillna(np.inf)
        if how == "mean":
            return float(x.mean())
        return float(x.quantile(float(how[1:]) / 100 if how.startswith("p") else 0.5,
                                interpolation="lower"))
    return f(values), f(lo.fillna(0)), f(hi)


def _spans(df: pd.DataFrame, span: str, by: str | None,
           stats: Sequence[str]) -> pd.DataFrame:
    """Statistics of a span (``wait`` or ``handle``) over the sessions that have it."""
    rows = []
    spans = _rows(df, df[f"{span}_s"].notna(), by, *(f"{span}_{c}" for c in ("s", "lo_s", "hi_s",
                                                                           "exact")))
    for key, g in _groups(spans, by):
        for how in stats:
            v, lo, hi = _stat(g[f"{span}_s"], g[f"{span}_lo_s"], g[f"{span}_hi_s"], how)
            rows.append({"group": key, "stat": how, "value": v, "lo": lo, "hi": hi,
                         "n": len(g), "exact_share": float(g[f"{span}_exact"].mean())})
    return pd.DataFrame(rows)


def speed_of_answer(df: pd.DataFrame, by: str | None = None,
                    stats: Sequence[str] = ("mean", "median", "p90")) -> pd.DataFrame:
    """Seconds from queued to answered over answered sessions: one row per group and
    statistic (``value``, ``lo``, ``hi``, ``n``, ``exact_share``)."""
    return _spans(df, "wait", by, stats)


def handling_time(df: pd.DataFrame, by: str | None = None,
                  stats: Sequence[str] = ("mean", "median", "p90")) -> pd.DataFrame:
    """Seconds from answered to ended over ended, answered sessions (as speed_of_answer)."""
    return _spans(df, "handle", by, stats)


def measured_service_level(df: pd.DataFrame, threshold_s: float = 60.0,
                           by: str | None = None) -> pd.DataFrame:
    """Service level within ``threshold_s`` as :data:`service_level.DEFINITION` (answered
    within T ÷ (answered + abandoned after T)) over the sessions answered (with a wait) and
    those abandoned. ``lo`` takes the answers surely within T and every abandon that may
    have waited past it; ``hi`` the answers that may be within T and only the abandons
    surely past it: the least and the most the true times allow. ``n``: the sessions it
    rests on (``answered`` + ``abandoned``); ``exact_share``: those whose times are exact."""
    rows = []
    cols = ("wait_s", "wait_lo_s", "wait_hi_s", "wait_exact", "abandoned", "abandon_wait_s",
            "abandon_wait_lo_s", "abandon_wait_hi_s", "abandon_exact")
    counted = _rows(df, df["wait_s"].notna() | df["abandoned"].fillna(False).astype(bool),
                    by, *cols)
    t = threshold_s
    for key, g in _groups(counted, by):
        waits, gone = g[g["wait_s"].notna()], g[g["wait_s"].isna()]
        # an unknown upper bound may be past T; an unknown lower one may be 0
        within = int((waits["wait_s"] <= t).sum())
        within_lo = int((waits["wait_hi_s"].fillna(np.inf) <= t).sum())
        within_hi = int((waits["wait_lo_s"].fillna(0) <= t).sum())
        after = int((gone["abandon_wait_s"] > t).sum())
        after_lo = int((gone["abandon_wait_lo_s"].fillna(0) > t).sum())
        after_hi = int((gone["abandon_wait_hi_s"].fillna(np.inf) > t).sum())
        exact = pd.concat([waits["wait_exact"], gone["abandon_exact"]]).astype(float)
        rows.append({"group": key, "threshold_s": t,
                     "value": service_level.share(float(within), len(waits), after),
                     "lo": service_level.share(float(within_lo), len(waits), after_hi),
                     "hi": service_level.share(float(within_hi), len(waits), after_lo),
                     "answered": len(waits), "within": within, "abandoned": len(gone),
                     "abandoned_after": after, "n": len(g),
                     "exact_share": float(exact.mean())})
    return pd.DataFrame(rows)


def abandonment_rate(df: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Of the sessions that queued and are over, the share that ended unanswered."""
    rows = []
    over = _rows(df, df["queued_at"].notna() & (df["ended_at"].notna()
                                                 | df["answered_at"].notna()),
                 by, "abandoned", "queued_source")
    for key, g in _groups(over, by):
        rows.append({"group": key, "queued": len(g), "abandoned": int(g["abandoned"].sum()),
                     "value": float(g["abandoned"].mean()),
                     "exact_share": float(g["queued_source"].isin(EXACT).mean())})
    return pd.DataFrame(rows)


def arrivals(df: pd.DataFrame, interval: str = "1h", by: str | None = None) -> pd.DataFrame:
    """Sessions begun per interval (``n``), and how many of those times are exact. Intervals
    inside the data's span with no arrival are there with n = 0; none are invented outside."""
    out = []
    for key, g in _groups(_rows(df, df["began_at"].notna(), by, "began_at", "began_source"), by):
        at = pd.to_datetime(g["began_at"], utc=True).dt.floor(interval)
        counts = pd.DataFrame({"n": at.value_counts(),
                               "n_exact": at[g["began_source"].isin(EXACT).to_numpy()
                                             ].value_counts()}).fillna(0).astype(int)
        full = pd.date_range(at.min(), at.max(), freq=interval)
        counts = counts.reindex(full, fill_value=0).rename_axis("interval_start").reset_index()
        counts.insert(0, "group", key)
        out.append(counts)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(
        columns=["group", "interval_start", "n", "n_exact"])


# A session the polls stopped seeing (it left the seed) for more than this many of its
# poll intervals, while others were still polled, no longer counts as waiting.
GONE_AFTER_POLLS = 2


def queue_length(df: pd.DataFrame, at: Sequence[datetime] | pd.DatetimeIndex,
                 by: str | None = None) -> pd.DataFrame:
    """Customers waiting for a human at each instant: ``value`` from the best times, ``lo``
    those surely waiting (queued_hi <= t < answered_lo), ``hi`` those that may be.

    A session still waiting when last polled is surely waiting only until then; if the
    polls stopped seeing it for more than :data:`GONE_AFTER_POLLS` poll intervals while
    they went on seeing others, ``value`` counts it until half an interval after its last
    poll (as the polls' midpoints do); ``hi`` still counts it: it may be waiting yet."""
    instants = pd.DatetimeIndex(pd.to_datetime(list(at), utc=True)).as_unit("ns")
    rows = []
    times = [f"{t}_{k}" for t in ("queued", "answered", "ended") for k in ("at", "lo", "hi")]
    seen = [c for c in ("last_seen_at", "poll_every_s") if c in df.columns]
    last_poll = pd.to_datetime(df["last_seen_at"], utc=True).max() if seen else pd.NaT
    every = df["poll_every_s"].median() if seen else np.nan  # sessions polled once: others'
    for key, g in _groups(_rows(df, df["queued_at"].notna(), by, *times, *seen), by):
        def col(name: str, fill: pd.Timestamp, frame: pd.DataFrame = g) -> np.ndarray:
            # in ns first: the far/near fills are ns Timestamps (pandas 3 reads us)
            s = pd.to_datetime(frame[name], utc=True).astype("datetime64[ns, UTC]")
            return s.fillna(fill).to_numpy(dtype="datetime64[ns]")
        far = pd.Timestamp.max.tz_localize("UTC")
        near = pd.Timestamp.min.tz_localize("UTC")
        out_at = np.minimum(col("answered_at", far), col("ended_at", far))
        # an exit seen by the very first poll has no lower bound: it may be long before
        out_lo = np.minimum(*(np.where(g[f"{x}_hi"].notna().to_numpy(), col(f"{x}_lo", near),
                                       col(f"{x}_lo", far)) for x in ("answered", "ended")))
        out_hi = np.minimum(col("answered_hi", far), col("ended_hi", far))
        q_at, q_lo, q_hi = col("queued_at", far), col("queued_lo", near), col("queued_hi", far)
        if seen:
            out_at, out_lo = _unseen(g, out_at, out_lo, last_poll, every, far)
        t = instants.to_numpy(dtype="datetime64[ns]")
        rows.append(pd.DataFrame({"group": key, "at": instants,
                                  "value": _held(q_at, out_at, t),
                                  "lo": _held(q_hi, out_lo, t),
                                  "hi": _held(q_lo, out_hi, t)}))
    if not rows:
        return pd.DataFrame()
    return pd.concat(rows, ignore_index=True)


def _unseen(g: pd.DataFrame, out_at: np.ndarray, out_lo: np.ndarray,
            last_poll: pd.Timestamp, every_s: float, far: pd.Timestamp
            ) -> tuple[np.ndarray, np.ndarray]:
    """Queue exits (best, lower bound) of the sessions no exit is known of, from when the
    polls last saw them (see :func:`queue_length`)."""
    last = pd.to_datetime(g["last_seen_at"], utc=True)
    gap = g["poll_every_s"].fillna(every_s).to_numpy(dtype=float)
    open_ = (out_at == far.to_datetime64()) & last.notna().to_numpy()
    last_ns = last.to_numpy(dtype="datetime64[ns]")
    out_lo = np.where(open_ & (out_lo == far.to_datetime64()), last_ns, out_lo)
    if pd.isna(last_poll):
        return out_at, out_lo
    unseen_s = (last_poll - last).dt.total_seconds().to_numpy(dtype=float)
    gone = open_ & (unseen_s > GONE_AFTER_POLLS * gap)  # NaN gaps compare False
    half = pd.to_timedelta(np.nan_to_num(gap / 2), unit="s").to_numpy(dtype="timedelta64[ns]")
    return np.where(gone, last_ns + half, out_at), out_lo


def _held(start: np.ndarray, end: np.ndarray, at: np.ndarray,
          owner: np.ndarray | None = None, owners: int = 1) -> np.ndarray:
    """How many spans ``[start, end)`` hold each instant of ``at``; with ``owner`` (each
    span's owner, ``0 .. owners - 1``), per owner: shape ``(owners, len(at))``. Each span
    adds one from the first instant at or after its start to the first at or after its
    end: O((n + k) log k), where testing every span at every instant cost n × k (seconds
    for a month of sessions)."""
    order = np.argsort(at, kind="stable")
    sorted_at = at[order]
    first = np.searchsorted(sorted_at, start, side="left")
    stop = np.searchsorted(sorted_at, end, side="left")
    kept = first < stop
    rows = np.zeros(len(start), dtype=np.int64) if owner is None else owner
    steps = np.zeros((owners, len(at) + 1), dtype=np.int64)
    np.add.at(steps, (rows[kept], first[kept]), 1)
    np.add.at(steps, (rows[kept], stop[kept]), -1)
    held = np.empty((owners, len(at)), dtype=np.int64)
    held[:, order] = steps[:, :-1].cumsum(axis=1)
    return held if owner is not None else held[0]


def compare_apps(df: pd.DataFrame, threshold_s: float = 60.0) -> pd.DataFrame:
    """Several apps side by side (``df``: :func:`sessions` of a database holding them): one
    row per ``sdkappid`` with its sessions, mean speed of answer and handling time (with
    bounds), service level within ``threshold_s`` and abandonment."""
    by = "sdkappid"
    out = pd.DataFrame({"sessions": df.groupby(df[by].fillna(NO_GROUP).astype(str)).size()})
    for name, frame in (("speed_of_answer_s", speed_of_answer(df, by, ("mean",))),
                        ("handling_s", handling_time(df, by, ("mean",))),
                        ("service_level", measured_service_level(df, threshold_s, by))):
        if not frame.empty:
            out = out.join(frame.set_index("group")[["value", "lo", "hi"]].add_prefix(
                f"{name}_").rename(columns={f"{name}_value": name}))
    abandon = abandonment_rate(df, by)
    if not abandon.empty:
        out = out.join(abandon.set_index("group")["value"].rename("abandonment"))
    return out.rename_axis(by).reset_index()


def agent_concurrency(df: pd.DataFrame, at: Sequence[datetime] | pd.DatetimeIndex,
                      by: str = "agent_id") -> pd.DataFrame:
    """Chats each agent (or group: ``by``) held at each instant (answered <= t < ended), from
    the best times; an agent with no chat at an instant has no row."""
    instants = pd.DatetimeIndex(pd.to_datetime(list(at), utc=True)).as_unit("ns")
    served = _rows(df, df["answered_at"].notna() & df["agent_id"].notna(), by,
                   "answered_at", "ended_at")
    far = pd.Timestamp.max.tz_localize("UTC")
    start = pd.to_datetime(served["answered_at"], utc=True).to_numpy(dtype="datetime64[ns]")
    end = pd.to_datetime(served["ended_at"], utc=True).fillna(far).to_numpy(
        dtype="datetime64[ns]")
    names, owner = np.unique(served[by].fillna(NO_GROUP).astype(str).to_numpy(),
                             return_inverse=True)
    chats = _held(start, end, instants.to_numpy(dtype="datetime64[ns]"), owner, len(names))
    when, who = np.nonzero(chats.T > 0)  # instant by instant, agents in name order
    return pd.DataFrame({"at": instants[when], by: names[who], "chats": chats[who, when]},
                        columns=["at", by, "chats"])


def occupancy(df: pd.DataFrame, since: datetime, until: datetime, capacity: int = 3,
              by: str | None = "agent_id") -> pd.DataFrame:
    """Per agent (or group): chat-seconds held within the window ÷ (capacity × window)."""
    served = _rows(df, df["answered_at"].notna() & df["agent_id"].notna(), by,
                   "answered_at", "ended_at", "agent_id")
    lo, hi = pd.Timestamp(since).tz_convert("UTC"), pd.Timestamp(until).tz_convert("UTC")
    start = pd.to_datetime(served["answered_at"], utc=True).clip(lower=lo, upper=hi)
    end = pd.to_datetime(served["ended_at"], utc=True).fillna(hi).clip(lower=lo, upper=hi)
    served["held_s"] = (end - start).dt.total_seconds()
    span = (hi - lo).total_seconds()
    out = served.groupby(served[by].fillna(NO_GROUP))["held_s"].sum().rename("held_s")
    agents = served.groupby(served[by].fillna(NO_GROUP))["agent_id"].nunique()
    return pd.DataFrame({"held_s": out, "agents": agents,
                         "occupancy": out / (agents * capacity * span)}).reset_index()


def occupancy_per_interval(df: pd.DataFrame, since: datetime, until: datetime,
                           interval: str = "1h", capacity: float | pd.Series = 3,
                           by: str = "agent_id") -> pd.DataFrame:
    """``occupancy`` for each interval of ``[since, until)`` (``interval_start`` added),
    counting in a group only the agents with a chat in that interval; an agent (or group)
    with no chat in an interval has no row there. ``capacity``: chats per agent, one for
    all or per value of ``by`` (:func:`chats_per_agent`)."""
    t0, end = pd.Timestamp(since).tz_convert("UTC"), pd.Timestamp(until).tz_convert("UTC")
    starts = pd.date_range(t0, end, freq=interval, inclusive="left")
    width = pd.Timedelta(interval)
    served = _rows(df, df["answered_at"].notna() & df["agent_id"].notna(), by,
                   "answered_at", "ended_at", "agent_id")
    # one row per (chat, interval it overlaps) at once: a loop over intervals is O(n × k)
    w = width.value
    ended = pd.to_datetime(served["ended_at"], utc=True)
    open_ = ended.isna().to_numpy()
    a = (pd.to_datetime(served["answered_at"], utc=True) - t0).to_numpy("timedelta64[ns]")
    a, e = a.astype(np.int64), (ended - t0).fillna(pd.Timedelta(0)).to_numpy(
        "timedelta64[ns]").astype(np.int64)
    first = np.maximum(np.floor_divide(a, w), 0)
    last = np.where(open_, len(starts) - 1,
                    np.minimum(-np.floor_divide(-e, w) - 1, len(starts) - 1))
    count = np.clip(last - first + 1, 0, None)
    row = np.repeat(np.arange(len(served)), count)
    # k: the chat's first interval plus the row's rank among that chat's rows
    k = np.repeat(first - np.cumsum(count) + count, count) + np.arange(count.sum())
    lo = k * w
    hi = np.minimum(lo + w, (end - t0).value)
    held = (np.clip(np.where(open_[row], hi, e[row]), lo, hi) - np.clip(a[row], lo, hi)) / 1e9
    parts = pd.DataFrame({by: served[by].fillna(NO_GROUP).to_numpy()[row], "k": k,
                          "agent_id": served["agent_id"].to_numpy()[row], "held_s": held})
    g = parts.groupby(["k", by], sort=True)
    out = pd.DataFrame({"held_s": g["held_s"].sum(), "agents": g["agent_id"].nunique()}
                       ).reset_index()
    span = (np.minimum(out["k"].to_numpy() * w + w, (end - t0).value)
            - out["k"].to_numpy() * w) / 1e9
    out["occupancy"] = out["held_s"] / (out["agents"] * capacities(out, capacity, by) * span)
    out["interval_start"] = starts[out["k"].to_numpy()] if len(out) else pd.Series(
        [], dtype=starts.dtype)
    out = out[[by, "held_s", "agents", "occupancy", "interval_start"]]
    return out[out["held_s"] > 0].reset_index(drop=True)


# Where no chat says how many an agent holds at once: the notebooks' long-standing default.
DEFAULT_CHATS_PER_AGENT = 3.0
# The planner's rule (planning/summary.py, Summary.handling_by_chats): the 99th percentile,
# not the most, so that one stray overlap (times estimated from polls) does not add a slot.
HELD_QUANTILE = 0.99


def chats_per_agent(chats: pd.DataFrame, by: str = "agent_group_name",
                    override: float | None = None,
                    quantile: float = HELD_QUANTILE) -> pd.Series:
    """Per group (``by``): how many chats its agents hold at once, read from ``chats``
    (rows with agent_id, answered_at, ended_at and ``by``) by the planner's rule: the
    ``quantile`` (lower) of the chats an agent held just after answering one, itself and
    every chat answered at that instant included (a chat not ended is held on); at least
    1. ``override`` (a setting): that for every group instead. Indexed by ``by``
    (no group: ``(none)``)."""
    served = chats[chats["answered_at"].notna() & chats["agent_id"].notna()]
    group = served[by].fillna(NO_GROUP).astype(str).to_numpy()
    names = pd.Index(sorted(set(group)), name=by)
    if override is not None:
        return pd.Series(float(override), index=names, name="chats_per_agent")
    if not len(served):
        return pd.Series([], index=names, dtype=float, name="chats_per_agent")
    # one key per (group, agent), as the planner counts them
    who = pd.factorize(pd.MultiIndex.from_arrays([group, served["agent_id"].astype(str)]))[0]
    start = pd.to_datetime(served["answered_at"], utc=True).to_numpy(
        "datetime64[us]").astype(np.int64)
    ended = pd.to_datetime(served["ended_at"], utc=True)
    # a chat not ended is held on: an end past every start
    end = np.where(ended.isna().to_numpy(), start.max() + 1, ended.fillna(
        pd.Timestamp(0, tz="UTC")).to_numpy("datetime64[us]").astype(np.int64))
    held = held_at_starts(who, start, end)
    per = pd.Series(held, index=group).groupby(level=0).quantile(quantile,
                                                                 interpolation="lower")
    return per.clip(lower=1).astype(float).reindex(names).rename("chats_per_agent")


def agent_chats_per_agent(chats: pd.DataFrame, per_group: pd.Series,
                          by: str = "agent_group_name") -> pd.Series:
    """Per ``agent_id`` of ``chats``: its group's chats per agent (``per_group``:
    :func:`chats_per_agent`); an agent in several groups: the most of theirs."""
    served = chats[chats["agent_id"].notna()]
    group = served[by].fillna(NO_GROUP).astype(str)
    slots = group.map(per_group).fillna(DEFAULT_CHATS_PER_AGENT).astype(float)
    out = slots.groupby(served["agent_id"].to_numpy()).max()
    return out.rename_axis("agent_id").rename("chats_per_agent")


def capacities(rows: pd.DataFrame, capacity: float | pd.Series,
               by: str | None) -> float | np.ndarray:
    """Chats per agent for each of ``rows``: ``capacity`` itself, or a Series looked up by
    the column its index names (else ``by``); a value it lacks: the default."""
    if not isinstance(capacity, pd.Series):
        return float(capacity)
    column = capacity.index.name if capacity.index.name in rows.columns else by
    if column is None:
        raise ValueError("capacity per value needs a column to look it up by")
    return rows[column].map(capacity).fillna(DEFAULT_CHATS_PER_AGENT).to_numpy(float)


def _waits_to_end(df: pd.DataFrame) -> pd.DataFrame:
    """Every wait with an end: queued until answered, or until it ended unanswered (an
    abandon waited too), with its bounds (an open upper end: inf)."""
    w = df[df["queued_at"].notna()]
    answered = w["answered_at"].notna()
    end = {k: w[f"answered_{k}"].where(answered, w[f"ended_{k}"]) for k in ("at", "lo", "hi")}
    out = pd.DataFrame({
        "queued_at": pd.to_datetime(w["queued_at"], utc=True),
        "wait_s": (end["at"] - w["queued_at"]).dt.total_seconds(),
        "lo": (end["lo"] - w["queued_hi"]).dt.total_seconds().clip(lower=0),
        "hi": (end["hi"] - w["queued_lo"]).dt.total_seconds().fillna(np.inf),
        "exact": w["queued_source"].isin(EXACT) & w["answered_source"].where(
            answered, w["ended_source"]).isin(EXACT),
    }, index=w.index)
    for col in ("agent_group_name", "agent_id"):
        out[col] = w[col]
    return out[out["wait_s"].notna()]


def longest_wait(df: pd.DataFrame, interval: str = "15min", by: str | None = None
                 ) -> pd.DataFrame:
    """The longest wait of the sessions that queued in each interval (answered or given
    up), seconds, with bounds: ``lo`` the longest that surely lasted so long, ``hi`` the
    longest any may have lasted. Intervals with no such wait have no row."""
    waits = _waits_to_end(df)
    rows = []
    for key, g in _groups(waits, by):
        for start, h in g.groupby(g["queued_at"].dt.floor(interval)):
            rows.append({"group": key, "interval_start": start, "value": h["wait_s"].max(),
                         "lo": h["lo"].max(), "hi": h["hi"].max(), "n": len(h),
                         "exact_share": float(h["exact"].mean())})
    return pd.DataFrame(rows, columns=["group", "interval_start", "value", "lo", "hi", "n",
                                       "exact_share"])


def demand(df: pd.DataFrame, interval: str = "1h", by: str | None = None,
           until: datetime | None = None) -> pd.DataFrame:
    """What a staffing model needs, per interval: ``arrivals`` (sessions that asked for a
    human then), ``answered`` (chats an agent accepted then) and their mean handling time
    ``aht_s`` with its bounds (``aht_lo_s``, ``aht_hi_s``), ``exact_share`` of those
    handling times and ``interval_s``; the columns ``erlang.staffing_table`` reads. Each
    event counts in the interval where it happened, as in the interval tables and the
    simulator's truth (a chat queued at 0:59 and answered at 1:01 is an arrival of 0:00 and
    a handling time of 1:00). Intervals inside the span with no arrival are there with 0
    arrivals and no aht_s. ``until``: the window's end; the intervals from it on (chats
    queued in the window, answered after it) are left out."""
    width = pd.Timedelta(interval)
    out = []
    spans = _rows(df, df["queued_at"].notna(), by, "queued_at", "answered_at", "handle_s",
                  "handle_lo_s", "handle_hi_s", "handle_exact")
    for key, g in _groups(spans, by):
        at = pd.to_datetime(g["queued_at"], utc=True).dt.floor(width)
        answered_at = pd.to_datetime(g["answered_at"], utc=True).dt.floor(width)
        handled = g[g["handle_s"].notna()].groupby(answered_at)
        frame = pd.DataFrame({
            "arrivals": at.value_counts(),
            "answered": answered_at.value_counts(),
            "aht_s": handled["handle_s"].mean(),
            "aht_lo_s": handled["handle_lo_s"].mean(),
            "aht_hi_s": handled["handle_hi_s"].apply(lambda x: x.fillna(np.inf).mean()),
            "exact_share": handled["handle_exact"].mean(),
        })
        full = pd.date_range(at.min(), max(at.max(), answered_at.max()
                                           if answered_at.notna().any() else at.max()),
                             freq=width)
        if until is not None:
            full = full[full < until]
        frame = frame.reindex(full).rename_axis("interval_start").reset_index()
        frame[["arrivals", "answered"]] = frame[["arrivals", "answered"]].fillna(0).astype(int)
        frame.insert(0, "group", key)
        frame["interval_s"] = width.total_seconds()
        out.append(frame)
    columns = {"group": "object", "interval_start": "datetime64[ns, UTC]", "arrivals": "int64",
               "answered": "int64", "aht_s": "float64", "aht_lo_s": "float64",
               "aht_hi_s": "float64", "exact_share": "float64", "interval_s": "float64"}
    if not out:
        return pd.DataFrame(columns=list(columns)).astype(columns)
    return pd.concat(out, ignore_index=True)[list(columns)]


def key_figures(df: pd.DataFrame, target_s: float = 60.0) -> pd.DataFrame:
    """The figures a desk is judged by, one row each (``value``, ``lo``, ``hi``,
    ``exact_share``), for comparing one window with another: sessions, arrivals (asked for a
    human), speed of answer (mean, median, p90), service level within ``target_s``,
    abandonment, mean handling time. A figure with nothing to rest on is NaN."""
    nan = float("nan")
    rows = [
        {"figure": "sessions", "value": len(df), "lo": len(df), "hi": len(df),
         "exact_share": float(df["began_source"].isin(EXACT).mean()) if len(df) else nan},
    ]
    queued = df[df["queued_at"].notna()]
    rows.append({"figure": "arrivals (asked for a human)", "value": len(queued),
                 "lo": len(queued), "hi": len(queued),
                 "exact_share": float(queued["queued_source"].isin(EXACT).mean())
                 if len(queued) else nan})
    asa = speed_of_answer(df).set_index("stat") if df["wait_s"].notna().any() else None
    for stat in ("mean", "median", "p90"):
        found = asa is not None and stat in asa.index
        rows.append({"figure": f"speed of answer, {stat} (s)",
                     **(asa.loc[stat, ["value", "lo", "hi", "exact_share"]].to_dict()
                        if found else {"value": nan, "lo": nan, "hi": nan, "exact_share": nan})})
    level = measured_service_level(df, target_s)
    aband = abandonment_rate(df)
    handle = handling_time(df, stats=("mean",))
    for name, frame in ((f"service level ({target_s:g} s)", level),
                        ("abandonment", aband), ("handling time, mean (s)", handle)):
        if frame.empty:
            rows.append({"figure": name, "value": nan, "lo": nan, "hi": nan,
                         "exact_share": nan})
            continue
        row = frame.iloc[0]
        rows.append({"figure": name, "value": row["value"],
                     "lo": row.get("lo", row["value"]), "hi": row.get("hi", row["value"]),
                     "exact_share": row["exact_share"]})
    return pd.DataFrame(rows).set_index("figure").astype(float)


def occupancy_over_intervals(per_interval: pd.DataFrame, interval: str = "1h",
                             capacity: float | pd.Series = 3,
                             by: str | None = "agent_id") -> pd.DataFrame:
    """Occupancy over the intervals each agent (group, or the desk with ``by=None``) held at
    least one chat (``per_interval``: :func:`occupancy_per_interval`): intervals with no
    chat at all are left out, since they may be off shift. ``agents``: the most agents with
    a chat in one of those intervals. ``capacity``: chats per agent, one for all or per
    value of a column of ``per_interval`` (its index's name, else ``by``): the desk's from
    its agents' rows with a Series per ``agent_id`` (:func:`agent_chats_per_agent`)."""
    columns = [*([by] if by else []), "held_s", "capacity_s", "intervals", "agents",
               "occupancy"]
    if per_interval.empty:
        return pd.DataFrame(columns=columns)
    width = pd.Timedelta(interval).total_seconds()
    rows = per_interval.assign(
        capacity_s=per_interval["agents"] * capacities(per_interval, capacity, by) * width,
        _all="all")
    out = rows.groupby(by or "_all").agg(
        held_s=("held_s", "sum"), capacity_s=("capacity_s", "sum"),
        intervals=("interval_start", "nunique"), agents=("agents", "max"))
    out["occupancy"] = out["held_s"] / out["capacity_s"]
    return out.reset_index()[columns] if by else out.reset_index(drop=True)[columns]


def ratings(df: pd.DataFrame, by: str | None = "agent_id") -> pd.DataFrame:
    """Per agent (or group; the whole window with ``by=None``): sessions served, how many
    were rated (satisfaction 1-5), the mean rating and the share of low ones (1-2)."""
    served = _rows(df, df["agent_id"].notna(), by, "satisfaction")
    rows = []
    for key, g in _groups(served, by):
        rated = g["satisfaction"].dropna().astype(float)
        rows.append({**({by: key} if by else {}), "served": len(g), "rated": len(rated),
                     "mean_rating": float(rated.mean()) if len(rated) else float("nan"),
                     "low_share": float((rated <= 2).mean()) if len(rated) else float("nan")})
    return pd.DataFrame(rows, columns=[*([by] if by else []), "served", "rated",
                                       "mean_rating", "low_share"])


def all_exact(rows: pd.DataFrame) -> bool:
    """Every time the figures rest on (begun, queued, answered, ended; the offer is only
    the plan's) that each of ``rows`` (:func:`sessions`) has is exact (callbacks, records):
    nothing rests on polls, so a cross-check that follows each session's polls adds
    nothing and the notebooks skip it. False without rows."""
    return bool(len(rows)) and all(
        rows[f"{t}_source"][rows[f"{t}_at"].notna()].isin(EXACT).all() for t in FIGURE_TIMES)


def rostered(chats: pd.DataFrame, roster: pd.DataFrame) -> pd.DataFrame:
    """Per agent of ``roster`` (agent_id, capacity, shift_start, shift_end), over the shift:
    ``busy_share``, the time with at least one chat; ``occupancy``, chat-seconds over
    capacity times the shift; ``shift_h``. From each chat's own times (``chats``: answered
    rows of :func:`sessions`; one not ended yet is held to the shift's end), so exact
    where they are, without sampling."""
    answered = pd.to_datetime(chats.answered_at, utc=True)
    ended = pd.to_datetime(chats.ended_at, utc=True)
    out = []
    for r in roster.itertuples(index=False):
        # a roster's times without a zone are UTC, as every time here
        s0, s1 = (t if t.tzinfo else t.tz_localize("UTC")
                  for t in (pd.Timestamp(r.shift_start), pd.Timestamp(r.shift_end)))
        mine = (chats.agent_id == r.agent_id).to_numpy()
        shift_s = (s1 - s0).total_seconds()
        # seconds into the shift, clipped to it
        start = (answered[mine] - s0).dt.total_seconds().clip(lower=0).to_numpy(float)
        end = (ended[mine].fillna(s1) - s0).dt.total_seconds().clip(upper=shift_s).to_numpy(
            float)
        held = end > start
        start, end = start[held], end[held]
        busy_from, busy_to = union(start, end)  # the chats merged where they overlap
        busy = float((busy_to - busy_from).sum())
        out.append({"agent_id": r.agent_id,
                    "busy_share": busy / shift_s if shift_s > 0 else np.nan,
                    "occupancy": float((end - start).sum()) / (r.capacity * shift_s)
                    if shift_s > 0 else np.nan,
                    "shift_h": shift_s / 3600})
    return pd.DataFrame(out, columns=["agent_id", "busy_share", "occupancy", "shift_h"]
                        ).set_index("agent_id")


POLLS_SKIPPED = ("every time in the window is exact (callbacks, records): the polls' "
                 "cross-check is skipped")


def source_note(exact_share: float) -> str:
    """What a figure rests on, from the share of its sessions with exact times."""
    if pd.isna(exact_share):
        return "no sessions"
    if exact_share >= 1:
        return "exact (callbacks / records)"
    if exact_share <= 0:
        return "bounded by polls"
    return f"{exact_share:.0%} exact, the rest bounded by polls"


# What each figure of a window counts under the event rule (``event_figures``): the time of
# the event that completes it must lie in the window.
EVENT_OF = {"began": "began_at", "queued": "queued_at", "answered": "answered_at",
            "exited": "exit_at"}


def event_figures(df: pd.DataFrame, since: datetime, until: datetime, target_s: float = 60.0,
                  by: str | None = None) -> pd.DataFrame:
    """The window's figures under one rule, the interval tables' (each event counts in the
    interval where it happened): sessions begun, queued (asked for a human) and answered in
    it; speed of answer and handling time over the chats answered in it; service level over
    the chats answered and the sessions abandoned in it; abandonment over the queue exits
    in it (answered, or ended unanswered). ``df``:
    :func:`sessions_touching` of the window. One row per group."""
    lo, hi = pd.Timestamp(since).tz_convert("UTC"), pd.Timestamp(until).tz_convert("UTC")
    frame = df.assign(exit_at=df["answered_at"].where(df["answered_at"].notna(),
                                                      df["ended_at"]).where(
        df["queued_at"].notna()))

    def inside(event: str) -> pd.DataFrame:
        t = pd.to_datetime(frame[EVENT_OF[event]], utc=True)
        return frame[(t >= lo) & (t < hi)]

    began, answered, exited = (inside(e) for e in ("began", "answered", "exited"))
    handled = answered
    queued = inside("queued")
    out: dict[str, dict[str, float]] = {}

    def put(frame_: pd.DataFrame, **columns: str) -> None:
        for row in frame_.to_dict("records"):
            out.setdefault(str(row["group"]), {}).update(
                {name: row[col] for name, col in columns.items()})

    counts = [("began", began), ("queued", queued), ("answered", answered)]
    for name, part in counts:
        for key, g in _groups(part, by):
            out.setdefault(key, {})[name] = len(g)
    for key, g in _groups(began, by):
        out[key]["began_exact_share"] = float(g["began_source"].isin(EXACT).mean())
    for key, g in _groups(queued, by):
        out[key]["queued_exact_share"] = float(g["queued_source"].isin(EXACT).mean())
    for span, frame_ in (("wait", speed_of_answer(answered, by)),
                         ("handle", handling_time(handled, by))):
        if frame_.empty:
            continue
        for stat in ("mean", "median", "p90"):
            rows = frame_[frame_["stat"] == stat]
            if stat == "mean":
                put(rows, **{f"{span}_mean_s": "value", f"{span}_mean_lo_s": "lo",
                             f"{span}_mean_hi_s": "hi", f"{span}s": "n",
                             f"{span}_exact_share": "exact_share"})
            else:
                put(rows, **{f"{span}_{stat}_s": "value"})
    for span, part, column in (("wait", answered, "wait_s"), ("handle", handled, "handle_s")):
        for key, g in _groups(part[part[column].notna()], by):
            out[key][f"{span}_max_s"] = float(g[column].max())
    # each answer counts where it was answered, each abandon where it left: as the tables
    level = measured_service_level(pd.concat([answered, exited[exited["abandoned"]
                                                               .fillna(False).astype(bool)]]),
                                   target_s, by)
    if not level.empty:
        put(level, service_level="value", service_level_lo="lo", service_level_hi="hi")
    aband = abandonment_rate(exited, by)
    if not aband.empty:
        put(aband, exits="queued", abandoned="abandoned", abandonment="value",
            exits_exact_share="exact_share")
    table = pd.DataFrame.from_dict(out, orient="index").rename_axis("group")
    for name in ("began", "queued", "answered", "waits", "handles", "exits", "abandoned"):
        table[name] = table[name].fillna(0).astype(int) if name in table else 0
    return table.sort_index()
