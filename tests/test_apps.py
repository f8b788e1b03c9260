"""Several Desk apps in one place: their configuration, one run covering them all (each at
its own limit, one app's refused credentials reported while the others load), ``sdkappid``
on every table, and keys that never mix two apps' sessions.

Real parts: one simulator per app on loopback (each knows its own app and limit), the real
receiver, the job into real DuckDB files, and the real CLI in a child process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from tencent_desk.core import apps
from tencent_desk.core.clock import VirtualClock
from tencent_desk.core.errors import ConfigError
from tencent_desk.intake.receiver import Receiver, ReceiverConfig
from tencent_desk.intake.spool import spool_dir
from tencent_desk.run.runner import RunOptions, run_all
from tencent_desk.simulator import (
    Population,
    PopulationConfig,
    SimulatorApp,
    SimulatorConfig,
    serve_in_thread,
)
from tencent_desk.simulator.callbacks import Knobs, Sender, plan

from .support import cli, harness

ADMIN = "administrator"
APPS = {"eu": (1400000101, "k3y-of-app-eu-0d9c8b7a6f5e4d3c2b1a"),
        "asia": (1400000202, "k3y-of-app-asia-1a2b3c4d5e6f7a8b9c0d")}
ENV = "SOURCES__TENCENT_DESK__APPS__"


def app_env(name: str, url: str, **more: object) -> dict[str, str]:
    sdkappid, key = APPS[name]
    out = {f"{ENV}{name.upper()}__SDKAPPID": str(sdkappid),
           f"{ENV}{name.upper()}__SECRET_KEY": key, f"{ENV}{name.upper()}__API_URL": url}
    out.update({f"{ENV}{name.upper()}__{k.upper()}": str(v) for k, v in more.items()})
    return out


@pytest.fixture
def no_single_app(monkeypatch):
    """The environment of these tests: no single-app settings but the identifier."""
    import os

    for name in list(os.environ):
        if name.startswith("SOURCES__"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SOURCES__TENCENT_DESK__IDENTIFIER", ADMIN)
    return monkeypatch


@contextlib.contextmanager
def desks(pop: Population, clock: VirtualClock, limits: dict[str, float | None]
          ) -> Iterator[dict[str, SimulatorApp | str]]:
    """One simulator per app, all over the same population (so the apps share session ids),
    each with its own credentials and frequency limit: name -> (app, url)."""
    with contextlib.ExitStack() as stack:
        out = {}
        for name, limit in limits.items():
            sdkappid, key = APPS[name]
            sim = SimulatorApp(pop, SimulatorConfig(sdkappid, ADMIN, key, rate_limit=limit),
                               model_clock=clock)
            out[name] = (sim, stack.enter_context(serve_in_thread(sim)))
        yield out


def _q(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


# -- configuration -----------------------------------------------------------------------
def test_named_apps_inherit_the_common_settings_but_not_credentials(no_single_app) -> None:
    env = {**app_env("eu", "http://127.0.0.1:1", max_qps=40),
           **app_env("asia", "http://127.0.0.1:2")}
    for k, v in env.items():
        no_single_app.setenv(k, v)
    no_single_app.setenv("SOURCES__TENCENT_DESK__MAX_QPS", "75")
    no_single_app.setenv("SOURCES__TENCENT_DESK__SECRET_KEY", "the-top-level-key-not-theirs")
    got = {a.name: a for a in apps.resolve()}
    assert list(got) == ["asia", "eu"]
    assert float(got["eu"].values["max_qps"]) == 40 and float(got["asia"].values["max_qps"]) == 75
    assert got["eu"].values["identifier"] == ADMIN  # inherited
    assert got["asia"].values["secret_key"] == APPS["asia"][1]  # its own, never the top one
    assert APPS["eu"][1] not in repr(got)  # no secret in a repr
    assert [a.name for a in apps.resolve({"max_qps": 10}, ["eu"])] == ["eu"]
    assert apps.resolve({"max_qps": 10}, ["eu"])[0].values["max_qps"] == 10  # the CLI wins
    assert apps.legacy_sdkappid(list(got.values())) is None  # several, no top-level one
    no_single_app.setenv("SOURCES__TENCENT_DESK__SDKAPPID", "1400999999")
    assert apps.legacy_sdkappid(list(got.values())) == 1400999999


def test_the_documented_toml_of_several_apps_is_what_the_job_reads(tmp_path) -> None:
    """docs/operations.md's .dlt/config.toml and secrets.toml, as written there, give the
    two apps with their own limits and keys (read by dlt in a child, as a run reads them)."""
    doc = (Path(__file__).parents[1] / "docs" / "operations.md").read_text()
    block = doc.split("**Add an app**", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    config, secrets = block.split("# .dlt/secrets.toml\n")
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text(config)
    (tmp_path / ".dlt" / "secrets.toml").write_text(secrets.replace('"..."', '"k3y-0f-a-test"'))
    env = {"SOURCES__TENCENT_DESK__SDKAPPID": "", "SOURCES__TENCENT_DESK__SECRET_KEY": ""}
    done = cli.run([sys.executable, "-c", "from tencent_desk.core import apps; print(sorted("
                    "(a.name, a.sdkappid, float(a.values['max_qps']), a.values['region']) "
                    "for a in apps.resolve()))"], cwd=tmp_path, **env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str([("asia", 1400000202, 100.0, "singapore"),
                                       ("eu", 1400000101, 40.0, "frankfurt")])


@pytest.mark.parametrize(("env", "message"), [
    ({f"{ENV}EU__SECRET_KEY": "x" * 10}, "app eu has no sdkappid"),
    ({f"{ENV}EU__SDKAPPID": "abc", f"{ENV}EU__SECRET_KEY": "x" * 10}, "must be a number"),
    ({f"{ENV}EU__SDKAPPID": "14"}, "app eu has no secret_key"),
    ({f"{ENV}EU__SDKAPPID": "14", f"{ENV}EU__SECRET_KEY": "x" * 10,
      f"{ENV}ASIA__SDKAPPID": "14", f"{ENV}ASIA__SECRET_KEY": "y" * 10}, "the same sdkappid"),
    ({"SOURCES__TENCENT_DESK__APPS__E-U__SDKAPPID": "14"}, "app name 'e-u'"),
])
def test_a_bad_app_configuration_is_one_clear_line(no_single_app, env, message) -> None:
    for k, v in env.items():
        no_single_app.setenv(k, v)
    with pytest.raises(ConfigError, match=message) as info:
        apps.resolve()
    assert "\n" not in str(info.value)


def test_an_unknown_app_asked_for_is_named(no_single_app) -> None:
    for k, v in app_env("eu", "http://127.0.0.1:1").items():
        no_single_app.setenv(k, v)
    with pytest.raises(ConfigError, match="'mars' is not configured: the apps are eu"):
        apps.resolve(only=["mars"])


# -- one run, several apps ---------------------------------------------------------------
LIMITS = {"eu": 40.0, "asia": 100.0}
SECONDS = 5.0


@contextlib.contextmanager
def two_limits(tmp_path: Path, env, pace: dict[str, VirtualClock] | None = None
               ) -> Iterator[tuple[dict, VirtualClock, Path]]:
    """Apps eu and asia, limited to 40 and 100 calls/s by their simulators (on the apps'
    pace clocks when given), each with a seed of SECONDS at its limit."""
    pop = Population(PopulationConfig(seed=5, sessions_per_day=3000))
    clock = VirtualClock(pop.config.day_start + 11 * 3600)
    sessions = [k.session_id for k in pop.session_keys()]
    with contextlib.ExitStack() as stack:
        sims = {}
        for name, limit in LIMITS.items():
            sdkappid, key = APPS[name]
            sim = SimulatorApp(pop, SimulatorConfig(sdkappid, ADMIN, key, rate_limit=limit),
                               model_clock=clock, limit_clock=(pace or {}).get(name))
            sims[name] = (sim, stack.enter_context(serve_in_thread(sim)))
            seed = harness.write_seed(tmp_path / f"{name}.csv", [
                (s, "", "") for s in sessions[:int(limit * SECONDS)]])
            # on virtual clocks one call at a time: it reaches the server at the virtual
            # instant it was sent, so both count the same windows
            for k, v in app_env(name, sims[name][1], max_qps=limit, seed=seed,
                                max_concurrency=1 if pace else 8).items():
                env(k, v)
        yield sims, clock, tmp_path / "desk.duckdb"


def check_limits(rows: list[dict], sims: dict, wall: bool) -> dict[str, float]:
    """Each app complete, every key once, never above its own limit; on virtual clocks at
    >= 0.95 of it (on the wall clock the share depends on the machine's load: printed, not
    asserted, as speed lives in benchmarks/); on the wall clock, the two polls overlapping.
    Returns each app's share of its limit."""
    by_app = {r["app"]: r for r in rows}
    assert set(by_app) == set(LIMITS)
    shares = {}
    for name, limit in LIMITS.items():
        row, sim = by_app[name], sims[name][0]
        assert row["status"] == "complete" and row["sdkappid"] == APPS[name][0]
        assert row["rows"] == row["keys"] == int(limit * SECONDS) and row["errors"] == 0
        shares[name] = row["calls_per_second"] / limit
        print(f"\n[apps] app {name}: {row['calls']} calls at {row['calls_per_second']:.2f}/s "
              f"= {shares[name]:.3f} of its limit {limit:g}/s, {row['throttled']} throttled")
        assert wall or shares[name] >= 0.95, (name, row["calls_per_second"])
        assert sim.stats.max_in_window() <= limit  # never over its own limit
    if wall:  # one run: neither app waited for the other
        assert max(r["started_at"] for r in rows) < min(r["finished_at"] for r in rows)
    return shares


def test_two_apps_each_keep_their_own_limit_in_one_run(tmp_path, no_single_app) -> None:
    """40 and 100 calls/s in one run, each app paced on its own virtual clock (as the rate
    limiter's tests are): each keeps >= 0.95 of its own limit, never above it."""
    pace = {name: VirtualClock(0.0) for name in LIMITS}
    with two_limits(tmp_path, no_single_app.setenv, pace) as (sims, clock, db):
        rows = run_all(RunOptions(seed=None, database=db, pipelines_dir=str(tmp_path / "dlt"),
                                  progress=False), clock=clock, pace_clocks=pace)
        shares = check_limits(rows, sims, wall=False)
    assert min(shares.values()) >= 0.97  # on virtual clocks: the limiter's own figure
    got = dict(_q(db, "SELECT sdkappid, count(*) FROM tencent_desk.session_states GROUP BY 1"))
    assert got == {APPS[n][0]: int(limit * SECONDS) for n, limit in LIMITS.items()}
    # the same session ids in two apps stay two keys
    assert _q(db, "SELECT count(*) FROM tencent_desk.session_state_latest") == [
        (sum(int(limit * SECONDS) for limit in LIMITS.values()),)]


@pytest.mark.slow
def test_two_apps_keep_their_own_limit_on_the_wall_clock(tmp_path, no_single_app) -> None:
    """The same with the real CLI in a child process and real time: what a user sees."""
    env: dict[str, str] = {}
    with two_limits(tmp_path, env.__setitem__) as (sims, _clock, db):
        done = cli.run([cli.CLI, "run", "--database", str(db), "--pipelines-dir",
                        str(tmp_path / "dlt"), "--no-progress"], cwd=tmp_path,
                       SOURCES__TENCENT_DESK__SDKAPPID="", **env)
        assert done.returncode == 0, done.stderr
        with duckdb.connect(str(db), read_only=True) as con:
            cur = con.execute("SELECT * FROM tencent_desk.runs")
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        check_limits(rows, sims, wall=True)


def test_refused_credentials_of_one_app_are_reported_while_the_other_loads(
        tmp_path, no_single_app) -> None:
    """The real CLI: app asia's key is wrong (its simulator refuses every UserSig); app eu
    is polled, loaded and complete; the exit code says some apps failed (7)."""
    pop = harness.population(seed=3, sessions=600)
    clock = VirtualClock(pop.config.day_start + 11 * 3600)
    t = clock.time()
    keys = harness.pick_keys(pop, t, live=30, other=20, pairs=6)
    seed = harness.write_seed(tmp_path / "seed.csv", keys.rows)
    with desks(pop, clock, {"eu": None, "asia": None}) as sims:
        env = {**app_env("eu", sims["eu"][1], seed=seed),
               **app_env("asia", sims["asia"][1], seed=seed,
                         secret_key="not-the-key-of-asia-0000")}
        db = tmp_path / "desk.duckdb"
        done = cli.run([cli.CLI, "run", "--database", str(db), "--pipelines-dir",
                        str(tmp_path / "dlt"), "--no-progress"], cwd=tmp_path,
                       SOURCES__TENCENT_DESK__SDKAPPID="", **env)
    assert done.returncode == 7, done.stderr
    (line,) = cli.error_lines(done.stderr)
    assert "app asia:" in line and "refused" in line and "UserSig" in line
    assert "loaded and complete: eu" in line and "app eu:" not in line
    assert "not-the-key-of-asia" not in done.stdout + done.stderr
    assert "(app eu, sdkappid 1400000101)" in done.stdout  # a summary per app
    assert "app asia, sdkappid 1400000202): failed" in done.stdout
    runs = dict(_q(db, "SELECT app, status FROM tencent_desk.runs"))
    assert runs == {"eu": "complete", "asia": "failed"}
    ((error,),) = _q(db, "SELECT error FROM tencent_desk.runs WHERE app = 'asia'")
    assert "refused" in error
    got = _q(db, "SELECT sdkappid, count(*) FROM tencent_desk.session_states GROUP BY 1")
    assert got == [(APPS["eu"][0], len(keys.keys))]
    # eu's rows are what its simulator answered: the true state of every key
    names = ("session_id", "client_user_id", "customer_service_id", "key_type", "state",
             "error_code", "agent_id")
    for values in _q(db, f"SELECT {', '.join(names)} FROM tencent_desk.session_states"):
        row = dict(zip(names, values, strict=True))
        key = harness.key_of_row(row["session_id"], row["client_user_id"],
                                 row["customer_service_id"], row["key_type"])
        harness.check_truth(key, row, pop, t)


def test_two_apps_with_the_same_session_ids_never_mix(tmp_path, no_single_app) -> None:
    """Both apps' callbacks (the same session ids and RequestIDs) come to one receiver; one
    run without seed polls each app's open sessions and loads its records: every table has
    sdkappid, and each app keeps its own rows, records, events and timeline."""
    pop = Population(PopulationConfig(seed=3, sessions_per_day=800, agents=5))
    day = pop.config.day_start
    clock = VirtualClock(day + 11 * 3600)
    db = tmp_path / "desk.duckdb"
    receiver = Receiver(ReceiverConfig(APPS["eu"][0], spool_dir(db), seal_after_s=0.05,
                                       more_apps={APPS["asia"][0]: None}))
    due = [c for c in plan(pop, Knobs(seed=2)) if c.send_at <= clock.time()]
    with desks(pop, clock, {"eu": None, "asia": None}) as sims, \
            serve_in_thread(receiver) as listener:
        for name in APPS:
            asyncio.run(Sender(listener + "/cb", APPS[name][0]).send(due))
            for k, v in app_env(name, sims[name][1], records="true").items():
                no_single_app.setenv(k, v)
        asyncio.run(Sender(listener + "/cb", 1400000303).send(due[:3]))  # no app of ours
        while any(spool_dir(db).glob("active-*")):
            time.sleep(0.02)
        rows = run_all(RunOptions(seed=None, database=db, pipelines_dir=str(tmp_path / "dlt"),
                                  progress=False), clock=clock)
    assert receiver.counts["accepted"] == 2 * len(due) and receiver.counts["rejected:app"] == 3
    assert {r["status"] for r in rows} == {"complete"} and all(r["rows"] for r in rows)
    assert all(r["records"] for r in rows)
    ids = sorted(a for a, _ in APPS.values())
    tables = [t for (t,) in _q(db, "SELECT table_name FROM information_schema.tables WHERE "
                                   "table_schema = 'tencent_desk' AND table_type = 'BASE TABLE' "
                                   "AND table_name NOT LIKE '\\_%' ESCAPE '\\'")]
    assert {"session_states", "runs", "session_records", "session_events",
            "session_timeline"} <= set(tables)
    for table in tables:
        got = [a for (a,) in _q(db, f"SELECT DISTINCT sdkappid FROM tencent_desk.{table} "
                                    "ORDER BY 1")]
        assert got == ids, table
    # the same session in both apps: one row per app wherever a table has one per session
    for table, key in (("session_records", "session_id"), ("session_timeline", "session_id"),
                       ("session_events", "request_id"), ("session_state_latest",
                                                          "session_id")):
        ((per_app, both),) = _q(db, f"SELECT count(*), count(DISTINCT {key}) FROM "
                                    f"tencent_desk.{table}")
        assert per_app == 2 * both, table
    assert len(_q(db, "SELECT * FROM tencent_desk.session_events")) == 2 * len(due)


def _events_by_app(con: duckdb.DuckDBPyConnection) -> dict[int, int]:
    return dict(con.execute("SELECT sdkappid, count(*) FROM tencent_desk.session_events "
                            "GROUP BY 1").fetchall())


def _fused(con: duckdb.DuckDBPyConnection) -> dict[int, int]:
    """Per app, the sessions with events whose timeline row has its start from them."""
    return dict(con.execute(
        "SELECT e.sdkappid, count(*) FROM (SELECT DISTINCT sdkappid, session_id FROM "
        "tencent_desk.session_events) e JOIN tencent_desk.session_timeline t ON "
        "t.sdkappid = e.sdkappid AND t.session_id = e.session_id WHERE t.began_source = "
        "'event' GROUP BY 1").fetchall())


# Runs as the job did before a log row of one app of several stood for its run's own id
# (the events' run id): what made the databases the fix must repair.
BEFORE_THE_FIX = """
import runpy, sys
from tencent_desk.models import snapshot
rule = getattr(snapshot, "logged_runs_sql", None)
if rule is not None:
    snapshot.logged_runs_sql = lambda ds, logs, where, with_app: rule(ds, logs, where, ())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_every_apps_received_events_are_published_and_fused_once(tmp_path, no_single_app
                                                                 ) -> None:
    """Both apps' callbacks come to one receiver; the real CLI's `run` and `records` load
    them (stamped with the run's own id, its apps' rows carry "<id>-<app>"): readers'
    snapshot holds every event once, per app, as the job's file does, and the timeline
    takes the sessions' times from them. A database loaded as before the fix (events never
    published, timeline without them) is repaired by `publish --rebuild`."""
    from tencent_desk.models import snapshot

    pop = Population(PopulationConfig(seed=3, sessions_per_day=800, agents=5))
    clock = VirtualClock(pop.config.day_start + 10 * 3600)
    db = tmp_path / "desk.duckdb"
    catalog = snapshot.paths(db)[1]
    receiver = Receiver(ReceiverConfig(APPS["eu"][0], spool_dir(db), seal_after_s=0.05,
                                       more_apps={APPS["asia"][0]: None}))
    calls = plan(pop, Knobs(seed=2))
    seed = harness.write_seed(tmp_path / "seed.csv", [
        (k.session_id, "", "") for k in pop.session_keys()[:20]])
    env: dict[str, str] = {"SOURCES__TENCENT_DESK__SDKAPPID": ""}
    sent: list[int] = []

    def receive(until_s: float) -> None:
        since = clock.time() if sent else float("-inf")  # each callback sent once
        clock.advance(until_s)
        due = [c for c in calls if since < c.send_at <= clock.time()]
        for name in APPS:
            asyncio.run(Sender(listener + "/cb", APPS[name][0]).send(due))
        sent.append(len(due))
        while any(spool_dir(db).glob("active-*")):
            time.sleep(0.02)

    def desk(*argv: str, prefix: list[str] | None = None) -> None:
        done = cli.run([cli.CLI, *argv], cwd=tmp_path, prefix=prefix, **env)
        assert done.returncode == 0, done.stderr

    def published() -> tuple[dict[int, int], dict[int, int], dict[int, int], dict[int, int]]:
        """Events per app and sessions fused from them: the job's file, readers' snapshot."""
        with duckdb.connect(str(db), read_only=True) as job, \
                duckdb.connect(str(catalog), read_only=True) as readers:
            return _events_by_app(job), _events_by_app(readers), _fused(job), _fused(readers)

    with desks(pop, clock, {"eu": None, "asia": None}) as sims, \
            serve_in_thread(receiver) as listener:
        for name in APPS:
            env.update(app_env(name, sims[name][1], seed=seed))
        run = ["run", "--database", str(db), "--pipelines-dir", str(tmp_path / "dlt"),
               "--no-progress"]
        # a database loaded before the fix: events in the job's file, never published
        receive(0)
        wrapper = tmp_path / "before_the_fix.py"
        wrapper.write_text(BEFORE_THE_FIX)
        desk(*run, prefix=[sys.executable, str(wrapper)])
        job, readers, fused_job, fused_readers = published()
        assert job == {a: sent[0] for a, _ in APPS.values()} and sent[0] > 100
        assert readers == {} and fused_job == fused_readers == {}
        desk("publish", "--database", str(db), "--rebuild")  # repairs it
        job, readers, fused_job, fused_readers = published()
        assert readers == job and fused_readers == fused_job
        assert set(fused_job) == set(job) and min(fused_job.values()) > 0
        # then runs and a records load (each app's rows "<id>-<app>") publish them at once
        env["SOURCES__TENCENT_DESK__RECORDS_SINCE"] = "7200"
        for command in (run, ["records", *run[1:]]):
            receive(1800)
            desk(*command)
            job, readers, fused_job, fused_readers = published()
            expected = sum(sent)
            assert job == {a: expected for a, _ in APPS.values()}, command
            assert readers == job and fused_readers == fused_job, command
            log = "record_runs" if command[0] == "records" else "runs"
            assert sorted(a for (a,) in _q(db, f"SELECT app FROM tencent_desk.{log}")) == (
                ["asia", "asia", "eu", "eu"] if log == "runs" else ["asia", "eu"]), command
    # every event once in the snapshot, and one timeline row per app's session
    with duckdb.connect(str(catalog), read_only=True) as readers:
        assert readers.execute("SELECT count(*) - count(DISTINCT (sdkappid, request_id)) FROM "
                               "tencent_desk.session_events").fetchone() == (0,)
        assert readers.execute("SELECT count(*) - count(DISTINCT (sdkappid, session_id)) FROM "
                               "tencent_desk.session_timeline").fetchone() == (0,)
        ((missing,),) = readers.execute(
            "SELECT count(*) FROM (SELECT DISTINCT sdkappid, session_id FROM "
            "tencent_desk.session_events) e ANTI JOIN tencent_desk.session_timeline t "
            "ON t.sdkappid = e.sdkappid AND t.session_id = e.session_id").fetchall()
        assert missing == 0


# -- a database made by the previous version -----------------------------------------------
OLD = Path(__file__).resolve().parent / "fixtures" / "single_app_database"
OLD_APP, OLD_KEY = 1400555000, "k3y-of-the-old-single-app-7c1d"  # see make_single_app_...


def old_database(tmp_path: Path) -> Path:
    """The previous version's database (no sdkappid anywhere) and its unloaded spool."""
    db = tmp_path / "desk.duckdb"
    export = OLD / "export"
    with duckdb.connect(str(db)) as con:
        con.execute((export / "schema.sql").read_text())
        con.execute((export / "load.sql").read_text().replace(" FROM '", f" FROM '{export}/"))
    shutil.copytree(OLD / "spool", spool_dir(db))
    return db


def old_desk(pop_seed: int = 9) -> tuple[Population, VirtualClock]:
    pop = Population(PopulationConfig(seed=pop_seed, sessions_per_day=400, agents=4))
    return pop, VirtualClock(pop.config.day_start + 11.5 * 3600)


def test_the_previous_versions_database_runs_and_its_rows_get_their_app(tmp_path) -> None:
    """The single-app configuration, unchanged, on a database the previous version made:
    the real CLI runs (exit 0), every old row gets the configured app's sdkappid, the
    events it left in the spool too, and the merges do not double what was there."""
    db = old_database(tmp_path)
    before = dict(_q(db, "SELECT 'records', count(*) FROM tencent_desk.session_records UNION "
                         "ALL SELECT 'states', count(*) FROM tencent_desk.session_states"))
    pop, clock = old_desk()
    sim = SimulatorApp(pop, SimulatorConfig(OLD_APP, ADMIN, OLD_KEY), model_clock=clock)
    seed = harness.write_seed(tmp_path / "seed.csv", [
        (k.session_id, "", "") for k in pop.session_keys()
        if pop.state_at(k.session_id, clock.time())][:30])
    with serve_in_thread(sim) as api:
        done = cli.run([cli.CLI, "run", "--seed", str(seed), "--database", str(db),
                        "--api-url", api, "--pipelines-dir", str(tmp_path / "dlt"),
                        "--no-progress", "--records"], cwd=tmp_path,
                       SOURCES__TENCENT_DESK__SDKAPPID=str(OLD_APP),
                       SOURCES__TENCENT_DESK__SECRET_KEY=OLD_KEY,
                       SOURCES__TENCENT_DESK__RECORDS_SINCE=str(4 * 3600))
    assert done.returncode == 0, done.stderr
    assert "upgraded" in done.stderr and f"their rows are app {OLD_APP}" in done.stderr
    tables = [t for (t,) in _q(db, "SELECT table_name FROM information_schema.tables WHERE "
                                   "table_schema = 'tencent_desk' AND table_type = 'BASE TABLE'")
              if not t.startswith("_")]
    assert {"session_states", "runs", "seed_rejects", "session_records", "session_events",
            "session_timeline"} <= set(tables)
    for table in tables:
        assert _q(db, f"SELECT DISTINCT sdkappid FROM tencent_desk.{table}") == [(OLD_APP,)], \
            table
    # the spooled events of the old receiver were loaded, as this app's
    assert _q(db, "SELECT count(*) FROM tencent_desk.session_events WHERE run_id = "
                  "(SELECT max(run_id) FROM tencent_desk.runs)")[0][0] > 0
    # records merged on (sdkappid, session_id): the sessions loaded before are not doubled
    ((rows, sessions),) = _q(db, "SELECT count(*), count(DISTINCT session_id) FROM "
                                 "tencent_desk.session_records")
    assert rows == sessions >= before["records"]
    ((rows, sessions),) = _q(db, "SELECT count(*), count(DISTINCT session_id) FROM "
                                 "tencent_desk.session_timeline")
    assert rows == sessions
    assert _q(db, "SELECT count(*) FROM tencent_desk.session_states")[0][0] > before["states"]
    assert _q(db, "SELECT count(DISTINCT status) FROM tencent_desk.runs") == [(1,)]


def test_an_old_database_with_several_apps_keeps_its_rows_apart(tmp_path, no_single_app
                                                              ) -> None:
    """Named apps only: which app the old rows belong to is not known; they keep NULL (an
    app of their own) and the run of both apps completes."""
    db = old_database(tmp_path)
    pop, clock = old_desk()
    with desks(pop, clock, {"eu": None, "asia": None}) as sims:
        seed = harness.write_seed(tmp_path / "seed.csv", [
            (k.session_id, "", "") for k in pop.session_keys()[:20]])
        for name in APPS:
            for k, v in app_env(name, sims[name][1], seed=seed).items():
                no_single_app.setenv(k, v)
        rows = run_all(RunOptions(seed=None, database=db, pipelines_dir=str(tmp_path / "dlt"),
                                  progress=False), clock=clock)
    assert sorted(r["status"] for r in rows) == ["complete", "complete"]
    got = dict(_q(db, "SELECT coalesce(sdkappid, 0), count(*) FROM tencent_desk.session_states "
                      "GROUP BY 1"))
    assert set(got) == {0, *(a for a, _ in APPS.values())}
    assert got[APPS["eu"][0]] == got[APPS["asia"][0]] == 20


def test_notebooks_choose_an_app_and_compare_them(tmp_path, no_single_app) -> None:
    """DESK_APP (a name or an sdkappid) makes every table the notebooks read show one app;
    ``timeline_metrics.compare_apps`` puts the apps side by side (by="sdkappid")."""
    from tencent_desk import notebook
    from tencent_desk.analysis import timeline_metrics as tm

    pop = Population(PopulationConfig(seed=3, sessions_per_day=800, agents=5))
    clock = VirtualClock(pop.config.day_start + 11 * 3600)
    db = tmp_path / "desk.duckdb"
    live = [(k.session_id, "", "") for k in pop.session_keys()
            if pop.state_at(k.session_id, clock.time())]
    with desks(pop, clock, {"eu": None, "asia": None}) as sims:
        for name, keys in (("eu", live), ("asia", live[: len(live) // 2])):
            seed = harness.write_seed(tmp_path / f"{name}.csv", keys)
            for k, v in app_env(name, sims[name][1], seed=seed, records="true").items():
                no_single_app.setenv(k, v)
        options = RunOptions(seed=None, database=db, pipelines_dir=str(tmp_path / "dlt"),
                             progress=False)
        first = {r["app"]: r for r in run_all(options, clock=clock)}
        clock.advance(3600)
        second = {r["app"]: r for r in run_all(options, clock=clock)}
        clock.advance(3600)  # `desk-sessions records`: each app's records, its record_runs row
        only = run_all(dataclasses.replace(options, poll=False), clock=clock)
    assert sorted((r["app"], r["status"]) for r in only) == [("asia", "complete"),
                                                            ("eu", "complete")]
    assert sorted(_q(db, "SELECT app, sdkappid FROM tencent_desk.record_runs")) == sorted(
        (n, a) for n, (a, _) in APPS.items())
    # each app's records go on from where its own last load ended (its own dlt state)
    for name in APPS:
        assert first[name]["records"] > 0
        assert (second[name]["records_from"] - first[name]["records_until"]).total_seconds() == 1
    no_single_app.setenv("DESK_DUCKDB", str(db))
    whole = notebook.open_desk().con
    counts = dict(whole.execute("SELECT sdkappid, count(*) FROM tencent_desk.session_states "
                                "WHERE run_id IN (SELECT run_id FROM tencent_desk.runs WHERE "
                                "started_at = (SELECT min(started_at) FROM tencent_desk.runs)) "
                                "GROUP BY 1").fetchall())
    assert counts == {APPS["eu"][0]: len(live), APPS["asia"][0]: len(live) // 2}
    for chosen in ("eu", str(APPS["eu"][0])):
        no_single_app.setenv("DESK_APP", chosen)
        desk = notebook.open_desk()
        assert desk.sdkappid == APPS["eu"][0] and f"(app {APPS['eu'][0]})" in notebook.describe(
            desk)
        for table in ("session_states", "runs", "session_timeline", "session_records",
                      "session_state_latest"):
            assert desk.con.execute(f"SELECT DISTINCT sdkappid FROM tencent_desk.{table}"
                                    ).fetchall() == [(APPS["eu"][0],)], table
        assert len(tm.sessions(desk.con)) == len(tm.sessions(whole).query(
            f"sdkappid == {APPS['eu'][0]}"))
    no_single_app.setenv("DESK_APP", "mars")
    with pytest.raises(ValueError, match=r"DESK_APP='mars' is unknown: .* are asia \(\d+\), "
                       r"eu \(\d+\); give a name or an sdkappid of those"):
        notebook.open_desk()
    # side by side: each app's figures are its own sessions' figures
    df = tm.sessions(whole)
    side = tm.compare_apps(df).set_index("sdkappid")
    assert sorted(side.index) == sorted(str(a) for a, _ in APPS.values())
    for name in APPS:
        own = df[df.sdkappid == APPS[name][0]]
        row = side.loc[str(APPS[name][0])]
        assert row["sessions"] == len(own)
        alone = tm.speed_of_answer(own, stats=("mean",)).iloc[0]
        assert row["speed_of_answer_s"] == pytest.approx(alone["value"])
        assert row["abandonment"] == pytest.approx(tm.abandonment_rate(own).iloc[0]["value"])


def test_the_cli_simulates_each_app_and_runs_them_all(tmp_path) -> None:
    """`desk-sessions simulate --app NAME` stands in for one app (its own credentials and
    --rate-limit, one per port); `desk-sessions run` covers both in one run."""
    base = {f"{ENV}{n.upper()}__{k}": v for n, (a, key) in APPS.items()
            for k, v in (("SDKAPPID", str(a)), ("SECRET_KEY", key))}
    base.update(SOURCES__TENCENT_DESK__SDKAPPID="", SOURCES__TENCENT_DESK__SECRET_KEY="")
    servers = []
    try:
        for name, limit in (("eu", "40"), ("asia", "100")):
            seed = tmp_path / f"{name}.csv"
            proc, port = cli.start_server([cli.CLI, "simulate", "--app", name, "--rate-limit",
                                           limit, "--seed-out", str(seed), "--sessions", "80"],
                                          **base)
            servers.append(proc)
            base[f"{ENV}{name.upper()}__API_URL"] = f"http://127.0.0.1:{port}"
            base[f"{ENV}{name.upper()}__MAX_QPS"] = limit
            base[f"{ENV}{name.upper()}__SEED"] = str(seed)
        db = tmp_path / "desk.duckdb"
        done = cli.run([cli.CLI, "run", "--database", str(db), "--pipelines-dir",
                        str(tmp_path / "dlt"), "--no-progress"], cwd=tmp_path, **base)
    finally:
        for proc in servers:
            cli.stop_server(proc)
    assert done.returncode == 0, done.stderr
    got = _q(db, "SELECT app, sdkappid, status, max_qps, throttled, keys = rows FROM "
                 "tencent_desk.runs ORDER BY app")
    assert got == [("asia", APPS["asia"][0], "complete", 100.0, 0, True),
                   ("eu", APPS["eu"][0], "complete", 40.0, 0, True)]


def test_the_receiver_takes_every_apps_callbacks_with_its_own_token(tmp_path, no_single_app
                                                                    ) -> None:
    from tencent_desk.core import redact
    from tencent_desk.core.errors import JobError
    from tencent_desk.intake.listen import receiver_config

    for name in APPS:
        for k, v in app_env(name, "http://127.0.0.1:1").items():
            no_single_app.setenv(k, v)
    no_single_app.setenv(f"{ENV}EU__CALLBACK_TOKEN", "token-of-eu-4b7c9d")
    config = receiver_config(tmp_path / "desk.duckdb", 1.0)
    tokens = {config.sdkappid: config.token, **config.more_apps}
    assert tokens == {APPS["asia"][0]: None, APPS["eu"][0]: "token-of-eu-4b7c9d"}
    assert "token-of-eu" not in repr(config)
    assert redact.redact("x token-of-eu-4b7c9d y") != "x token-of-eu-4b7c9d y"
    # moving to named apps: the top-level sdkappid is also eu's, its token still checked
    no_single_app.setenv("SOURCES__TENCENT_DESK__SDKAPPID", str(APPS["eu"][0]))
    moved = receiver_config(tmp_path / "desk.duckdb", 1.0)
    assert (moved.sdkappid, moved.token) == (APPS["eu"][0], "token-of-eu-4b7c9d")
    assert moved.more_apps == {APPS["asia"][0]: None}
    no_single_app.setenv("SOURCES__TENCENT_DESK__CALLBACK_TOKEN", "another-token-1f2e")
    with pytest.raises(JobError, match="two callback_token values"):
        receiver_config(tmp_path / "desk.duckdb", 1.0)


def test_the_exit_code_of_a_run_of_several_apps() -> None:
    from tencent_desk.run.exits import EXIT_SOME_APPS, apps_alert

    def row(app: str, status: str = "complete", error: str | None = None, errors: int = 0
            ) -> dict:
        return {"app": app, "run_id": f"r-{app}", "status": status, "error": error,
                "rows": 10, "keys": 10, "errors": errors, "not_asked": 0,
                "max_error_share": 0.05}

    assert apps_alert([row("eu"), row("asia")], {}) is None
    refused = row("asia", "failed", "the Desk API refused the run: ...")
    line, code = apps_alert([row("eu"), refused], {"asia": 4})
    assert code == EXIT_SOME_APPS and line.startswith("app asia: the Desk API refused")
    assert line.endswith("(loaded and complete: eu)")
    both = [refused, row("eu", "failed", "the Desk API refused the run: ...")]
    assert apps_alert(both, {"asia": 4, "eu": 4})[1] == 4  # the same problem everywhere
    assert apps_alert([refused, row("eu", errors=5)], {"asia": 4})[1] == EXIT_SOME_APPS
    assert apps_alert([row("eu", errors=5), row("asia", errors=9)], {})[1] == 6


def test_an_app_whose_api_cannot_be_reached_does_not_stop_the_other(tmp_path, no_single_app
                                                                     ) -> None:
    """App asia's API root is a closed port (an outage): its run stops and is loaded as
    `outage`; app eu completes in the same run; the job says so with exit code 7."""
    from tencent_desk.core.errors import JobError

    pop = harness.population(seed=3, sessions=600)
    clock = VirtualClock(pop.config.day_start + 11 * 3600)
    keys = harness.pick_keys(pop, clock.time(), live=30, other=10, pairs=4)
    seed = harness.write_seed(tmp_path / "seed.csv", keys.rows)
    with desks(pop, clock, {"eu": None}) as sims:
        for k, v in {**app_env("eu", sims["eu"][1], seed=seed),
                     **app_env("asia", f"http://127.0.0.1:{harness.closed_port()}",
                               seed=seed)}.items():
            no_single_app.setenv(k, v)
        with pytest.raises(JobError) as info:
            run_all(RunOptions(seed=None, database=tmp_path / "desk.duckdb",
                               pipelines_dir=str(tmp_path / "dlt"), progress=False),
                    clock=clock)
    assert info.value.exit_code == 7
    assert "app asia: the Desk API cannot be reached" in str(info.value)
    assert "loaded and complete: eu" in str(info.value)
    got = {r["app"]: r for r in info.value.rows}
    assert (got["eu"]["status"], got["eu"]["rows"]) == ("complete", len(keys.keys))
    assert got["asia"]["status"] == "outage" and "cannot be reached" in got["asia"]["error"]
    assert got["asia"]["n_error"] == got["asia"]["rows"]  # what it asked, none answered
    assert _q(tmp_path / "desk.duckdb", "SELECT app, status FROM tencent_desk.runs "
                                        "ORDER BY app") == [("asia", "outage"),
                                                            ("eu", "complete")]
