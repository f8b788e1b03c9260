"""Every figure function on one window of a history, to check a change keeps them equal.

Run it under an older checkout's venv (``old``: the module names before the re-layer) and
this one's (``new``) on the same database and window, then ``compare`` the two pickles with
``pandas.testing.assert_frame_equal``::

    OLD/.venv/bin/python benchmarks/figures_equal.py old DB SINCE UNTIL old.pkl
    .venv/bin/python benchmarks/figures_equal.py new DB SINCE UNTIL new.pkl
    .venv/bin/python benchmarks/figures_equal.py compare old.pkl new.pkl
"""
# ruff: noqa: I001 (which modules are imported depends on the mode)

import pickle
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd


def compare(old_path: str, new_path: str) -> int:
    old, new = (pickle.loads(Path(p).read_bytes()) for p in (old_path, new_path))
    bad = 0
    for name, a in old["frames"].items():
        b = new["frames"][name]
        try:
            if isinstance(a, pd.DataFrame):
                pd.testing.assert_frame_equal(a, b)
                rows: object = len(a)
            else:
                assert a == b, (a, b)
                rows = "-"
            print(f"equal  {name:45s} rows {rows}  old {old['took'][name]:.2f} s  "
                  f"new {new['took'][name]:.2f} s")
        except AssertionError as exc:
            bad += 1
            print(f"DIFFER {name}: {str(exc)[:400]}")
    print(f"{len(old['frames']) - bad} of {len(old['frames'])} equal")
    return 1 if bad else 0


if sys.argv[1] == "compare":
    sys.exit(compare(*sys.argv[2:4]))
mode, database, since, until, out = sys.argv[1:6]
lo, hi = datetime.fromisoformat(since), datetime.fromisoformat(until)
if mode == "old":
    from tencent_desk.analysis import metrics as pm
    from tencent_desk.analysis import metrics as em
    from tencent_desk.analysis import record_metrics as rm
    from tencent_desk.analysis import timeline_metrics as tm
    from tencent_desk.job.snapshot import Reader
    outcomes, rec_sessions, rec_aband, tm_aband = (pm.abandonment, rm.sessions, rm.abandonment,
                                                   tm.abandonment)
    tm_level = tm.service_level
else:
    from tencent_desk.analysis import event_metrics as em
    from tencent_desk.analysis import poll_metrics as pm
    from tencent_desk.analysis import record_metrics as rm
    from tencent_desk.analysis import timeline_metrics as tm
    from tencent_desk.readers.snapshot import Reader
    outcomes, rec_sessions, rec_aband, tm_aband = (pm.wait_outcomes, rm.recorded_sessions,
                                                   rm.recorded_abandonment, tm.abandonment_rate)
    tm_level = tm.measured_service_level

con = Reader(Path(database), lo, hi).connection()
frames, took = {}, {}


def put(name, f, *a, **k):
    t = time.perf_counter()
    frames[name] = f(*a, **k)
    took[name] = time.perf_counter() - t


put("poll.complete_runs", pm.complete_runs, con)
put("poll.incomplete_runs", pm.incomplete_runs, con)
put("poll.poll_interval_s", pm.poll_interval_s, con)
put("poll.queue_per_poll", pm.queue_per_poll, con)
put("poll.waiting_per_poll", pm.waiting_per_poll, con)
put("poll.queue_per_interval.15min", pm.queue_per_interval, con, interval="15min")
put("poll.queue_per_interval.1h", pm.queue_per_interval, con, interval="1h")
put("poll.waits", pm.waits, con)
put("poll.wait_stats", pm.wait_stats, frames["poll.waits"])
put("poll.wait_outcomes", outcomes, con)
put("poll.agent_concurrency_per_poll", pm.agent_concurrency_per_poll, con)
put("poll.agent_occupancy.1h", pm.agent_occupancy, con, interval="1h")
put("poll.agent_occupancy.15min.cap2", pm.agent_occupancy, con, interval="15min",
    chats_per_agent=2)
put("poll.load_per_interval.1h", pm.load_per_interval, con, interval="1h")
put("poll.demand_per_interval.1h", pm.demand_per_interval, con, interval="1h")
put("poll.demand_per_interval.15min", pm.demand_per_interval, con, interval="15min")
put("events.events_per_interval", em.events_per_interval, con, interval="1h")
HAS_REC = rm.has_records(con, "tencent_desk")
if HAS_REC:
  put("records.sessions", rec_sessions, con)
  put("records.end_status_mix", rm.end_status_mix, con)
  put("records.end_status_mix.group", rm.end_status_mix, con, by="agent_group_name")
  put("records.ratings.agent", rm.ratings, con)
  put("records.ratings.group", rm.ratings, con, by="agent_group_name")
  put("records.abandonment", rec_aband, con)
  put("records.abandonment.group", rec_aband, con, by="agent_group_name")
  put("records.arrivals_per_interval", rm.arrivals_per_interval, con)
  put("records.arrivals_per_interval.group", rm.arrivals_per_interval, con, by="agent_group_name")
  put("records.handling_times", rm.handling_times, con)
  put("records.handling_time_from_load", rm.handling_time_from_load, con)
put("timeline.sessions", tm.sessions, con, lo, hi)
df = frames["timeline.sessions"]
at = [lo + timedelta(minutes=15 * i) for i in range(96)]
for by in [b for b in (None, "agent_group_id", "agent_id") if b is None or b in df.columns]:
    put(f"timeline.speed_of_answer.{by}", tm.speed_of_answer, df, by=by)
    put(f"timeline.handling_time.{by}", tm.handling_time, df, by=by)
    put(f"timeline.service_level.{by}", tm_level, df, 60.0, by)
    put(f"timeline.abandonment_rate.{by}", tm_aband, df, by=by)
    put(f"timeline.arrivals.{by}", tm.arrivals, df, "1h", by=by)
    put(f"timeline.queue_length.{by}", tm.queue_length, df, at, by=by)
    lw = "agent_group_name" if by == "agent_group_id" else by  # what it keeps
    put(f"timeline.longest_wait.{lw}", tm.longest_wait, df, "15min", by=lw)
    put(f"timeline.demand.{by}", tm.demand, df, "1h", by=by)
for by in [b for b in ("agent_id", "agent_group_id") if b in df.columns]:
    put(f"timeline.agent_concurrency.{by}", tm.agent_concurrency, df, at, by=by)
    put(f"timeline.occupancy.{by}", tm.occupancy, df, lo, hi, by=by)
    put(f"timeline.occupancy_per_interval.{by}", tm.occupancy_per_interval, df, lo, hi, by=by)
put("timeline.key_figures", tm.key_figures, df)
put("timeline.compare_apps", tm.compare_apps, df)
with open(out, "wb") as f:
    pickle.dump({"frames": frames, "took": took}, f)
print(f"{mode}: {len(frames)} figures, {len(df)} sessions, "
      f"{sum(took.values()):.1f} s")
