"""Which database the notebooks open by default, in a checkout and installed as a wheel.

A wheel installs the package folder alone into site-packages: the child processes here get
exactly that (the package copied into a folder of its own, first on ``sys.path``), so that
nothing of the checkout is around it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from .support import cli

PACKAGE = cli.ROOT / "pipelines" / "tencent_desk"
ASK = ("import json, tencent_desk.notebook as nb\n"
       "try:\n"
       "    print(json.dumps({'path': str(nb.database()), 'from': nb.__file__}))\n"
       "except FileNotFoundError as exc:\n"
       "    print(json.dumps({'error': str(exc), 'from': nb.__file__}))\n")


def _ask(cwd: Path, site: Path | None = None, given: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in cli.env().items() if k not in ("DESK_DUCKDB", "PYTHONPATH")}
    if site is not None:
        env["PYTHONPATH"] = str(site)
    if given is not None:
        env["DESK_DUCKDB"] = given
    proc = subprocess.run([sys.executable, "-c", ASK], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """The package as a wheel lays it out: site-packages/tencent_desk, nothing else."""
    site = tmp_path / "site-packages"
    shutil.copytree(PACKAGE, site / "tencent_desk",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return site


def _demo(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "demo.duckdb"
    duckdb.connect(str(path)).close()
    return path


def test_installed_the_demo_database_is_the_working_folders(tmp_path, installed):
    work = tmp_path / "work"
    demo = _demo(work)
    got = _ask(work, installed)
    assert got["from"].startswith(str(installed))  # the copy, not the checkout
    assert got["path"] == str(demo)
    sub = work / "notebooks"
    sub.mkdir()
    missing = _ask(sub, installed)  # no demo here, and no checkout to fall back on
    assert missing["error"].startswith(f"demo.duckdb not found in {sub}: ")  # only there
    assert "desk-sessions demo" in missing["error"]


def test_installed_a_relative_desk_duckdb_is_the_working_folders(tmp_path, installed):
    work = tmp_path / "work"
    mine = _demo(work / "data")
    (work / "data" / "demo.duckdb").rename(work / "data" / "desk.duckdb")
    assert _ask(work, installed, given="data/desk.duckdb")["path"] == str(
        mine.with_name("desk.duckdb"))
    assert _ask(tmp_path, installed, given=str(mine.with_name("desk.duckdb")))["path"] == str(
        mine.with_name("desk.duckdb"))  # an absolute path as given


def test_in_a_checkout_the_working_folder_first_then_the_checkout(tmp_path):
    from tencent_desk import notebook

    assert notebook.folders()[-1] == cli.ROOT  # notebooks run in notebooks/: the demo above
    work = tmp_path / "work"
    demo = _demo(work)
    got = _ask(work)
    assert got["from"].startswith(str(PACKAGE)) and got["path"] == str(demo)
    nowhere = _ask(tmp_path, given="no-such.duckdb")
    assert str(tmp_path) in nowhere["error"] and str(cli.ROOT) in nowhere["error"]
