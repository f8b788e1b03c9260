"""The ``records`` section: a backfill of a simulated day's session records through
``desk-sessions records`` as a user types it, against ``desk-sessions simulate`` in its own
process with a frequency limit. Goals (issue 11): calls/s at least 0.95 of the limit, peak
RSS at most 300 MB, every record loaded once."""

from __future__ import annotations

import asyncio
import shutil
import time

import common
import duckdb
from common import DESK, OUT, Watch, run_child

LIMIT = 200  # calls per second: the simulator's limit and the job's --max-qps
SINCE, UNTIL = "2026-01-05T00:00:00Z", "2026-01-06T05:59:59Z"  # the day and its stragglers


def total_count(url: str, since: str, until: str) -> int:
    """What the server says the span holds: one page's TotalCount."""
    from tencent_desk.api.client import ClientConfig, DeskClient
    from tencent_desk.api.records import RecordsPage, Window
    from tencent_desk.api.usersig import UserSigProvider
    from tencent_desk.core.clock import parse_time

    async def ask() -> int:
        sigs = UserSigProvider(common.SDKAPPID, common.IDENTIFIER,
                               secret_key=common.SECRET_KEY)
        async with DeskClient(ClientConfig(common.SDKAPPID, common.IDENTIFIER, (url,)),
                              sigs) as client:
            span = Window(parse_time(since, "since") or 0, parse_time(until, "until") or 0)
            answer = await client.call(RecordsPage(span, limit=1))
            assert answer.payload is not None, answer
            return int(answer.payload["TotalCount"])

    time.sleep(1.1)  # the server's one-second window forgets the backfill's calls
    return asyncio.run(ask())


def section_records(rep, quick: bool) -> None:  # type: ignore[no-untyped-def]
    """``rep`` is run.Report; a figure per measure, under the section ``records``."""
    from run import load_note

    n = 20_000 if quick else 1_000_000
    cmd = [DESK, "simulate", "--host", "127.0.0.1", "--rate-limit", str(LIMIT),
           "--sessions", str(n), "--start-hour", "30", "--log-level", "WARNING"]
    work = OUT / "records-backfill"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    db = work / "bench.duckdb"
    name = f"desk-sessions records, a day of {n:,} sessions, L={LIMIT}/s"
    with common._server(cmd, "sim-records", None) as sim, Watch(sim) as w:
        run = run_child([DESK, "records", "--database", str(db), "--api-url", sim.url,
                         "--since", SINCE, "--until", UNTIL,
                         "--max-qps", str(LIMIT), "--pipelines-dir", str(work / "dlt"),
                         "--no-progress", "--log-level", "WARNING"],
                        timeout=max(300, 3 * n / 100 / LIMIT), cwd=work)
        expected = total_count(sim.url, SINCE, UNTIL)
    if run.returncode != 0:
        raise RuntimeError(f"desk-sessions records failed ({run.returncode}): "
                           f"{run.stderr[-1500:]}")
    con = duckdb.connect(str(db), read_only=True)
    try:
        runs = con.execute("SELECT records, records_calls, records_calls_per_second, "
                           "records_windows FROM tencent_desk.runs").fetchone()
        rows, distinct = con.execute("SELECT count(*), count(DISTINCT session_id) FROM "
                                     "tencent_desk.session_records").fetchone()
    finally:
        con.close()
    assert runs is not None
    records, calls, cps, windows = runs
    note = load_note(w)
    rep.add("records", name, "calls/s ÷ L (runs.records_calls_per_second)", cps / LIMIT, "%",
            "ratio", ">= 0.95", note)
    rep.add("records", name, "peak RSS (ru_maxrss)", run.maxrss_mb, "MB", "absolute",
            "<= 300", note)
    rep.add("records", name, "rows loaded ÷ TotalCount of the span", rows / expected, "",
            "ratio", ">= 1.0")
    rep.add("records", name, "rows per session id", rows / max(distinct, 1), "", "ratio",
            "<= 1.0")
    rep.add("records", name, "wall seconds", run.wall_s, "s", "absolute")
    rep.add("records", name, "process CPU per record", 1000 * run.cpu_s / max(records, 1),
            "ms", "absolute")
    rep.notes.append(f"`{name}`: {records:,} records in {windows:,} windows, {calls:,} calls "
                     f"({calls - records / 100:,.0f} more than records/100: probes of "
                     "crowded windows and partial last pages)")
