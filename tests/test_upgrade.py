"""Upgrades with a load left pending: a database made by each earlier released schema, with
the load package its job left when killed while loading (``fixtures/pending_databases``,
made by that version's own code: ``fixtures/make_pending_databases.py``), restored and run
by the current job. The pending package is loaded first, the tables get ``sdkappid``, and
nothing is lost or doubled: every run's rows once, every row with its app.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from tencent_desk.core import settings
from tencent_desk.run.pipeline import pipeline_name
from tencent_desk.run.runner import RunOptions, run
from tencent_desk.simulator import SimulatorApp, SimulatorConfig, serve_in_thread

from .fixtures.make_pending_databases import ADMIN, KEY, desk, seed_rows

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "pending_databases"
VERSIONS = sorted(p.name for p in FIXTURES.iterdir() if (p / "made_by.json").exists())
TABLES = ("session_states", "runs", "seed_rejects", "session_events", "session_records",
          "session_timeline")


def _q(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


# dlt's working folder has folders that are empty in the fixture; git keeps no empty folder.
_TOP = ("load/new", "load/normalized", "load/loaded", "normalize/extracted")
_PACKAGE = (".exceptions", ".pending_transitions", "new_jobs", "started_jobs", "failed_jobs",
            "completed_jobs")


def _empty_folders(pipeline: Path) -> None:
    for top in _TOP:
        (pipeline / top).mkdir(parents=True, exist_ok=True)
    for package in (pipeline / "load").glob("*/*"):
        if package.is_dir():
            for sub in _PACKAGE:
                (package / sub).mkdir(exist_ok=True)


def restore(version: str, tmp_path: Path) -> tuple[Path, Path, dict]:
    """The version's database and its dlt working folder (with the pending package), as
    they were on the machine that made them, under this test's paths."""
    made = json.loads((FIXTURES / version / "made_by.json").read_text())
    db, work = tmp_path / "desk.duckdb", tmp_path / "dlt"
    export = FIXTURES / version / "export"
    with duckdb.connect(str(db)) as con:
        con.execute((export / "schema.sql").read_text())
        con.execute((export / "load.sql").read_text().replace(" FROM '", f" FROM '{export}/"))
    name = pipeline_name(db, settings.DEFAULT_DATASET)
    shutil.copytree(FIXTURES / version / "pipeline", work / name)
    _empty_folders(work / name)
    for state in (work / name).rglob("*.json"):  # the folder is named after the database
        state.write_text(state.read_text().replace(made["pipeline_name"], name))
    return db, work, made


@pytest.mark.parametrize("version", VERSIONS)
def test_a_database_with_a_pending_package_upgrades_and_loses_nothing(tmp_path, version):
    db, work, made = restore(version, tmp_path)
    sdkappid = made["sdkappid"]
    pending = [p.name for p in (work / pipeline_name(db, settings.DEFAULT_DATASET) / "load"
                                / "normalized").iterdir()]
    assert len(pending) == 1, "the fixture holds a package its job never finished loading"
    (earlier,) = _q(db, "SELECT run_id FROM tencent_desk.runs")[0:1]  # the run that completed
    pop, clock = desk()
    seed = tmp_path / "seed.csv"
    keys = seed_rows(pop, clock.time())  # the sessions the version's runs asked about
    seed.write_text("session_id\n" + "".join(f"{s}\n" for s in keys))
    sim = SimulatorApp(pop, SimulatorConfig(sdkappid, ADMIN, KEY), model_clock=clock)
    with serve_in_thread(sim) as api:
        row = run(RunOptions(seed=str(seed), database=db, pipelines_dir=str(work),
                             progress=False,
                             overrides={"api_url": api, "sdkappid": sdkappid,
                                        "identifier": ADMIN, "secret_key": KEY,
                                        "max_qps": 2000}), clock=clock)
    assert row["status"] == "complete" and row["rows"] == len(keys)
    runs = dict(_q(db, "SELECT run_id, status FROM tencent_desk.runs"))
    # the earlier complete run, the one killed while loading (its package), and this one
    assert len(runs) == 3 and set(runs.values()) == {"complete"}, runs
    assert earlier[0] in runs and row["run_id"] in runs
    per_run = dict(_q(db, "SELECT r.run_id, count(s.run_id) FROM tencent_desk.runs r LEFT "
                          "JOIN tencent_desk.session_states s USING (run_id) GROUP BY 1"))
    assert per_run == dict.fromkeys(runs, len(keys)), per_run  # every run's rows, once each
    ((doubled,),) = _q(db, "SELECT count(*) FROM (SELECT run_id, session_id FROM "
                           "tencent_desk.session_states GROUP BY ALL HAVING count(*) > 1)")
    assert doubled == 0
    present = {t for (t,) in _q(db, "SELECT table_name FROM information_schema.tables WHERE "
                                    "table_schema = 'tencent_desk'")}
    for table in sorted(present & set(TABLES)):
        apps = _q(db, f"SELECT DISTINCT sdkappid FROM tencent_desk.{table}")
        assert apps in ([(sdkappid,)], []), (table, apps)  # the pending rows got it too
    latest = _q(db, "SELECT count(*), count(DISTINCT session_id) FROM "
                    "tencent_desk.session_state_latest")
    assert latest == [(len(keys), len(keys))]
