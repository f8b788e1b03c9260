"""Each notebook runs top to bottom against a database made by the demo (the real job
polling the simulator) and draws its figures; the script form runs on a hand-made one."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jupytext
import nbformat
import pytest
from ipykernel.kernelspec import install as install_kernel
from nbclient import NotebookClient

from pipelines.tencent_desk import cli
from pipelines.tencent_desk.demo import run_demo
from tests.nb_fixture import build_fixture_db

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["queue", "agent_occupancy", "staffing", "records"]
KERNEL = "tencent-desk-tests"


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixture_db(tmp_path_factory.mktemp("nb") / "desk.duckdb")


@pytest.fixture(scope="module")
def demo_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`desk-sessions demo --database X`, for a simulated morning to keep it quick."""
    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    args = cli.parser().parse_args(["demo", "--database", str(path), "--start-hour", "9",
                                    "--end-hour", "12.5"])
    assert run_demo(args) == 0
    return path


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory, demo_database: Path) -> Iterator[str]:
    """A kernel spec running this interpreter (the venv's), found before any other."""
    prefix = tmp_path_factory.mktemp("kernel")
    install_kernel(kernel_name=KERNEL, prefix=str(prefix))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
        mp.setenv("DESK_DUCKDB", str(demo_database))
        # a headless CI may set this; the notebooks must still draw inline
        mp.setenv("MPLBACKEND", "Agg")
        yield KERNEL


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_and_draws(name: str, kernel: str) -> None:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(
        nb, kernel_name=kernel, timeout=300,
        resources={"metadata": {"path": str(NOTEBOOKS)}},  # run where Jupyter would
    ).execute()  # raises on the first cell that fails
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(images) >= 2, f"{name} drew {len(images)} figures"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_paired_and_stripped(name: str) -> None:
    """The .ipynb holds the cells of its .py script, and no outputs."""
    script = jupytext.read(NOTEBOOKS / f"{name}.py")
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert [c.source for c in script.cells] == [c.source for c in notebook.cells], (
        f"run `jupytext --sync notebooks/{name}.py`"
    )
    assert notebook.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert all(not c.get("outputs") for c in notebook.cells)


def test_script_runs_headless(database: Path, tmp_path: Path) -> None:
    """`python notebooks/queue.py` works too: no display, and no shadowed stdlib queue."""
    env = os.environ | {"DESK_DUCKDB": str(database), "MPLBACKEND": ""}
    env.pop("DISPLAY", None)
    done = subprocess.run(
        [sys.executable, str(NOTEBOOKS / "queue.py")], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("simulator truth: yes") == 1  # ran once, not again as `queue`
