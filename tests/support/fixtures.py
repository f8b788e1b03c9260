"""Fixtures of the tests that run the job against one small simulated desk: a population,
its simulator on loopback (model clock standing still), and a seed of its keys."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from . import harness


@pytest.fixture(scope="module")
def pop():
    return harness.population(seed=3, sessions=600)


@pytest.fixture
def sim(pop):
    with harness.serve(pop) as (app, url):
        yield app, url


@pytest.fixture
def seed(tmp_path, pop) -> Path:
    t = pop.config.day_start + harness.MODEL_HOUR * 3600
    keys = harness.pick_keys(pop, t, live=40, other=60, pairs=10)
    return harness.write_seed(tmp_path / "seed.csv", keys.rows)


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server on loopback for the whole session (see ``postgres.py``)."""
    from . import postgres

    with postgres.running() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server, request) -> str:
    """A fresh database of that server for one test: its URL."""
    import hashlib

    # parametrized names differ at their end: a hash of the whole keeps them apart
    tag = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:45]
    name += "_" + tag
    return postgres_server.create_database(name)


@pytest.fixture(params=["duckdb", "postgres"])
def target(request, tmp_path, monkeypatch):
    """Where the job loads, once per destination (see ``targets.py``); the credentials of
    a server are in this process's environment, as dlt reads them."""
    from .targets import Target

    if request.param == "duckdb":
        return Target("duckdb", tmp_path)
    found = Target("postgres", tmp_path, request.getfixturevalue("postgres_url"))
    for name, value in found.env().items():
        monkeypatch.setenv(name, value)
    return found


def built_once(factory: pytest.TempPathFactory, name: str,
               build: Callable[[Path], object]) -> Path:
    """The folder ``name``, filled by ``build(folder)`` once per test run whatever the
    workers (``pytest -n``): the first builds it under a lock in the folder they share, the
    others wait and read it. What is built so must never be written to after."""
    root = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # each worker's base is a folder of the run's
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a worker that died building it
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def demo_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One simulated morning polled by the real job, built once for every shape."""
    from tests.nb_fixture import build_demo_day

    return built_once(tmp_path_factory, "demo-day",
                      lambda folder: build_demo_day(folder / "demo.duckdb")) / "demo.duckdb"


@pytest.fixture(scope="session")
def same_morning(postgres_server, tmp_path_factory: pytest.TempPathFactory):
    """The job's morning on both destinations (``morning.py``), built once per run: the
    tests comparing them only read it."""
    from . import morning

    url = postgres_server.url("same_morning")
    folder = built_once(tmp_path_factory, "same-morning", lambda folder: morning.build(
        folder, postgres_server.create_database("same_morning")))
    return morning.read(folder, url)


@pytest.fixture(scope="session")
def unpolled_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Monday of three agent groups never polled, loaded as production loads it by
    ``desk-sessions simulate history``: callbacks through the receiver, then the nightly
    records run, whose last sessions end just after midnight. Published; built once."""
    from tencent_desk.history import HistoryOptions, make_history
    from tencent_desk.run.publish import publish

    def build(folder: Path) -> None:
        make_history(HistoryOptions(folder / "unpolled.duckdb", days=1,
                                    start=date(2026, 1, 5)))
        publish(folder / "unpolled.duckdb")

    return built_once(tmp_path_factory, "unpolled-day", build) / "unpolled.duckdb"


class Built(dict[str, Any]):
    """Shapes made on first use, once per session: a test that needs one shape (``make
    check``'s notebook) does not wait for the others."""

    def __init__(self, make: Callable[[str], Any]) -> None:
        super().__init__()
        self.make = make

    def __missing__(self, name: str) -> Any:
        self[name] = self.make(name)
        return self[name]


@pytest.fixture(scope="session")
def shapes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Every shape of ``tests/nb_fixture.py``, published as a job would (the notebooks and
    reports read the snapshot), each built once per run (:func:`built_once`)."""
    from tencent_desk.run.publish import publish

    from tests.nb_fixture import build_shape

    def build(name: str, folder: Path) -> None:
        publish(build_shape(request.getfixturevalue("demo_day"), name,
                            folder / f"{name}.duckdb"))

    def make(name: str) -> Path:
        return built_once(tmp_path_factory, f"shape-{name}",
                          lambda folder: build(name, folder)) / f"{name}.duckdb"

    return Built(make)


@pytest.fixture(scope="session")
def pg_shapes(shapes: Built, request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Shapes (``ON_POSTGRES`` of ``tests/nb_fixture.py``) loaded into PostgreSQL by dlt,
    one database each: their URLs."""
    return Built(lambda name: on_postgres(shapes[name], name, request, tmp_path_factory))


@pytest.fixture(scope="session")
def pg_unpolled_day(unpolled_day: Path, request: pytest.FixtureRequest,
                    tmp_path_factory: pytest.TempPathFactory) -> str:
    """:func:`unpolled_day` loaded into PostgreSQL by dlt: its URL."""
    return on_postgres(unpolled_day, "unpolled", request, tmp_path_factory)


def on_postgres(database: Path, name: str, request: pytest.FixtureRequest,
                factory: pytest.TempPathFactory) -> str:
    """The dataset of a DuckDB file loaded into a PostgreSQL database of its own
    (``nb_<name>``): its URL. Under ``pytest -n`` the workers share one server
    (``tests/conftest.py``): it is loaded once per run (:func:`built_once`)."""
    from .warehouse import copy_dataset

    server, on_server = request.getfixturevalue("postgres_server"), f"nb_{name}"

    def build(folder: Path) -> None:
        copy_dataset(database, "postgres", server.create_database(on_server),
                     pipelines_dir=folder / "dlt")

    built_once(factory, f"pg-shape-{name}", build)
    return server.url(on_server)
