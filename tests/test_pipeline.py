"""The dlt source and the batch job end to end: seed -> simulator over loopback -> DuckDB."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tencent_desk import cli
from tencent_desk.api import states
from tencent_desk.core.errors import JobError
from tencent_desk.run.runner import RunOptions, run

from .conftest import ADMIN, SDKAPPID, SECRET_KEY
from .support import cli as support_cli

BAD_ROWS = [
    ("", "", ""),                       # no key
    ("", "user-x", ""),                 # half a pair
    ("bad\x01id", "", ""),              # control character
    ("x" * 300, "", ""),                # over-long
]


def _options(tmp_path: Path, sim, seed: Path, target=None, **extra) -> RunOptions:
    overrides = {"api_url": sim.url, "sdkappid": SDKAPPID, "identifier": ADMIN,
                 "secret_key": SECRET_KEY, "max_qps": 5000, "max_concurrency": 16}
    where = target.options() if target else {"database": tmp_path / "desk.duckdb"}
    return RunOptions(seed=str(seed), pipelines_dir=str(tmp_path / "dlt"),
                      overrides=overrides, progress=False, **where, **extra)


def _seed_rows(sim, n_live=40, n_done=15, n_pairs=10):
    pop, t = sim.population, sim.clock.time()
    keys = pop.session_keys()
    live = [k for k in keys if pop.state_at(k.session_id, t)][:n_live]
    done = [k for k in keys if pop.ended_at(k.session_id) < t][:n_done]
    rows = [(k.session_id, k.client_user_id, k.customer_service_id) for k in live + done]
    rows += [("", k.client_user_id, k.customer_service_id) for k in live[:n_pairs]]
    rows += [rows[0], rows[1]]  # repeats are asked once
    return rows


def _write_csv(path: Path, rows) -> Path:
    lines = ["session_id,client_user_id,customer_service_id"]
    lines += [",".join(f'"{v}"' if v else "" for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _query(db: Path, sql: str):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_every_valid_key_lands_once_with_the_true_state(tmp_path, simulator, target):
    sim = simulator(spelling="mixed")
    rows = _seed_rows(sim)
    seed = _write_csv(tmp_path / "seed.csv", rows + BAD_ROWS)
    run_row = run(_options(tmp_path, sim, seed, target), clock=sim.clock)

    got = target.query("SELECT key_type, session_id, client_user_id, customer_service_id, "
                       "state, raw_state, agent_id, error_code, polled_at, attempts, "
                       "request_id FROM tencent_desk.session_states")
    valid_keys = {r[0] or (r[1], r[2]) for r in rows}
    assert len(got) == len(valid_keys) == run_row["rows"] == run_row["keys"]
    t, pop = sim.clock.time(), sim.population
    seen = set()
    for kind, sid, user, cs, state, raw, agent, code, polled_at, attempts, rid in got:
        key = sid if kind == "session" else (user, cs)
        assert key not in seen
        seen.add(key)
        assert polled_at.timestamp() == pytest.approx(t)  # the clock the job was given
        truth = pop.state_at(sid, t) if sid else None
        if kind == "pair":
            current = pop.current_session(user, cs, t)
            assert (sid or None) == (current.session_id if current else None)
        if truth is None and kind == "session":
            assert (state, code, raw) == (states.ENDED, 141005, None)
        elif truth is None:
            assert state == states.NOT_IN_SESSION and raw in ("Not in session", "NotInSession")
        else:
            assert state == truth.state and states.normalize(raw) == truth.state
            assert agent == truth.agent_id
        assert attempts >= 1 and rid.startswith("Id-")

    rejects = target.query("SELECT reason FROM tencent_desk.seed_rejects ORDER BY row_no")
    assert len(rejects) == len(BAD_ROWS) == run_row["rejects"]
    reasons = " | ".join(r[0] for r in rejects)
    for word in ("no key", "half a pair", "control characters", "longer than"):
        assert word in reasons
    runs = target.query("SELECT status, keys, rows, duplicates, calls, n_ended, max_qps "
                        "FROM tencent_desk.runs")
    assert runs == [("complete", len(valid_keys), len(valid_keys), 2, run_row["calls"],
                     run_row["n_ended"], 5000.0)]
    latest = target.query("SELECT count(*) FROM tencent_desk.session_state_latest")
    assert latest == [(len(valid_keys),)]


def test_a_rerun_skips_sessions_seen_ending_unless_asked(tmp_path, simulator, target):
    sim = simulator()
    seed = _write_csv(tmp_path / "seed.csv", _seed_rows(sim))
    first = run(_options(tmp_path, sim, seed, target), clock=sim.clock)
    assert first["n_ended"] > 0
    second = run(_options(tmp_path, sim, seed, target), clock=sim.clock)
    assert second["skipped_ended"] == first["n_ended"]
    assert second["keys"] == first["keys"] - first["n_ended"]
    third = run(_options(tmp_path, sim, seed, target, repoll_ended=True), clock=sim.clock)
    assert third["keys"] == first["keys"] and third["skipped_ended"] == 0
    assert target.query("SELECT count(*) FROM tencent_desk.runs") == [(3,)]
    # the latest view keeps one row per key across runs
    assert target.query("SELECT count(*) FROM tencent_desk.session_state_latest") == [
        (first["keys"],)]


def _seed_files(tmp_path: Path, rows) -> dict[str, tuple[Path, str | None]]:
    cols = list(zip(*rows, strict=True))
    names = ("SessionId", "ClientUserId", "CustomerServiceId")  # the API's spelling works too
    table = pa.table({n: [v or None for v in c] for n, c in zip(names, cols, strict=True)})
    pq.write_table(table, tmp_path / "seed.parquet")
    with (tmp_path / "seed.jsonl").open("w") as f:
        for row in rows:
            f.write(json.dumps({n: v for n, v in zip(names, row, strict=True) if v}) + "\n")
    con = duckdb.connect(str(tmp_path / "seeds.duckdb"))
    con.register("t", table)
    con.execute("CREATE SCHEMA ops; CREATE TABLE ops.seed AS SELECT * FROM t")
    con.close()
    return {"csv": (_write_csv(tmp_path / "seed.csv", rows), None),
            "parquet": (tmp_path / "seed.parquet", None),
            "jsonl": (tmp_path / "seed.jsonl", None),
            "duckdb": (tmp_path / "seeds.duckdb", "ops.seed")}


def test_seeds_in_every_format_give_the_same_rows(tmp_path, simulator):
    sim = simulator()
    rows = _seed_rows(sim, 10, 5, 3)
    results = {}
    for fmt, (path, table) in _seed_files(tmp_path, rows).items():
        out = tmp_path / fmt
        out.mkdir()
        opts = _options(out, sim, path, seed_table=table)
        row = run(opts, clock=sim.clock)
        results[fmt] = sorted(_query(opts.database, "SELECT key_type, session_id, state FROM "
                                                    "tencent_desk.session_states"),
                              key=str)
        assert row["rejects"] == 0
    assert len({json.dumps(v, default=str) for v in results.values()}) == 1
    assert len(results["csv"]) == len({r[0] or (r[1], r[2]) for r in rows})


def test_an_empty_seed_still_records_the_run(tmp_path, simulator):
    sim = simulator()
    seed = tmp_path / "seed.csv"
    seed.write_text("session_id,client_user_id,customer_service_id\n")
    row = run(_options(tmp_path, sim, seed), clock=sim.clock)
    assert (row["keys"], row["rows"], row["calls"]) == (0, 0, 0)
    assert _query(tmp_path / "desk.duckdb", "SELECT keys, status FROM tencent_desk.runs") == [
        (0, "complete")]


def _hold(db: Path, seconds: float | None = None) -> subprocess.Popen:
    """Another process with the job's database open (read-only, as a notebook would):
    until its stdin closes, or for ``seconds``."""
    hold = "sys.stdin.read()" if seconds is None else f"time.sleep({seconds})"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], "
         f"read_only=True); print('ready', flush=True); {hold}", str(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "ready"
    return holder


def test_a_database_held_by_another_process_gives_one_clear_line(tmp_path, simulator):
    sim = simulator()
    seed = _write_csv(tmp_path / "seed.csv", _seed_rows(sim, 3, 0, 0))
    db = tmp_path / "desk.duckdb"
    duckdb.connect(str(db)).close()
    holder = _hold(db)
    try:
        with pytest.raises(JobError) as info:
            run(dataclasses.replace(_options(tmp_path, sim, seed), lock_wait_s=0.5),
                clock=sim.clock)
        assert info.value.exit_code == 3
        assert f"held open by process {holder.pid}" in str(info.value)
        assert "desk.read.duckdb" in str(info.value)  # where a reader should look instead
        assert "\n" not in str(info.value)
    finally:
        holder.communicate("")


def test_a_run_waits_for_a_database_held_a_moment(tmp_path, simulator):
    sim = simulator()
    seed = _write_csv(tmp_path / "seed.csv", _seed_rows(sim, 3, 0, 0))
    db = tmp_path / "desk.duckdb"
    duckdb.connect(str(db)).close()
    holder = _hold(db, seconds=1.0)
    row = run(_options(tmp_path, sim, seed), clock=sim.clock)  # the default wait: 30 s
    holder.wait()
    assert row["status"] == "complete" and row["rows"] == 3


def test_cli_run_prints_a_summary_and_exit_codes(tmp_path, simulator, monkeypatch, capsys):
    sim = simulator()
    seed = _write_csv(tmp_path / "seed.csv", _seed_rows(sim, 5, 2, 1))
    for name, value in (("SDKAPPID", SDKAPPID), ("IDENTIFIER", ADMIN),
                        ("SECRET_KEY", SECRET_KEY)):
        monkeypatch.setenv(f"SOURCES__TENCENT_DESK__{name}", str(value))
    args = ["run", "--seed", str(seed), "--database", str(tmp_path / "d.duckdb"), "--api-url",
            sim.url, "--pipelines-dir", str(tmp_path / "dlt"), "--no-progress"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "rows from" in out and "calls/s" in out and "session_states" in out

    assert cli.main([*args[:2], str(tmp_path / "missing.csv"), *args[3:]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err

    monkeypatch.setenv("SOURCES__TENCENT_DESK__SECRET_KEY", "wrong-key-0123456789")
    assert cli.main(args) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "secret_key" in err and "wrong-key" not in err

    monkeypatch.delenv("SOURCES__TENCENT_DESK__SDKAPPID")
    assert cli.main(args) == 2
    assert "SOURCES__TENCENT_DESK__SDKAPPID" in capsys.readouterr().err


def test_a_run_that_stopped_before_loading_is_recorded_by_the_next(tmp_path, simulator,
                                                                   target):
    sim = simulator()
    seed = _write_csv(tmp_path / "seed.csv", _seed_rows(sim, 5, 0, 0))
    bad = _options(tmp_path, sim, seed, target)
    bad.overrides["secret_key"] = "not-the-right-key-42"
    with pytest.raises(JobError) as info:
        run(bad, clock=sim.clock)
    assert info.value.exit_code == 4
    good = run(_options(tmp_path, sim, seed, target), clock=sim.clock)
    got = target.query("SELECT run_id, status, error FROM tencent_desk.runs ORDER BY status")
    assert [(r[1]) for r in got] == ["complete", "failed"]
    assert got[0][0] == good["run_id"] and "secret_key" in got[1][2]
    assert "not-the-right-key" not in got[1][2]


def test_the_example_pipeline_runs_the_source_without_the_job(tmp_path, sim, seed):
    """A user's own script (pipelines/tencent_desk_pipeline.py): ``from tencent_desk import
    tencent_desk`` and dlt, none of the job's machinery (no lock, no run context), its
    settings from dlt's config only (the ``transport`` key set to httpx there)."""
    _app, api = sim
    script = support_cli.ROOT / "pipelines" / "tencent_desk_pipeline.py"
    proc = support_cli.run([sys.executable, str(script), str(seed), "duckdb"], tmp_path,
                           # dlt's pipelines folder (as root: /var/dlt) of this test alone
                           DLT_DATA_DIR=str(tmp_path / "dlt"),
                           SOURCES__TENCENT_DESK__API_URL=api,
                           SOURCES__TENCENT_DESK__MAX_QPS="2000",
                           SOURCES__TENCENT_DESK__TRANSPORT="httpx")
    assert proc.returncode == 0, proc.stderr[-2000:]
    db = tmp_path / "desk.duckdb"
    with duckdb.connect(str(db), read_only=True) as con:
        ((status, rows, calls),) = con.execute(
            "SELECT status, rows, calls FROM tencent_desk.runs").fetchall()
        ((latest,),) = con.execute(
            "SELECT count(*) FROM tencent_desk.session_state_latest").fetchall()
    assert status == "complete" and rows > 0 and latest == rows and calls >= rows
    assert not db.with_name("desk.duckdb.lock").exists()  # the job's lock: not used here


def test_the_source_takes_configuration_and_credentials_only():
    """dlt resolves every argument of a source from config (``sources.tencent_desk.*``):
    the job's machinery is bound around the call instead, so none of it is a config key."""
    from dlt.common.configuration.inject import get_fun_spec
    from tencent_desk.job import context
    from tencent_desk.job.source import tencent_desk, tencent_desk_apps

    fields = set(get_fun_spec(tencent_desk).get_resolvable_fields())
    assert {"sdkappid", "identifier", "secret_key", "usersig", "max_qps"} <= fields
    assert not fields & {"run_context", "clock", "run_id", "on_batch", "on_run"}
    assert "run_context" not in get_fun_spec(tencent_desk_apps).get_resolvable_fields()
    own = context.RunContext(run_id="20260105T090000-abc")
    with context.bound(own):
        assert context.current() is own
    assert context.current() is not own and context.current().on_batch is None
