"""Fixtures of the tests that run the job against one small simulated desk: a population,
its simulator on loopback (model clock standing still), and a seed of its keys."""

from __future__ import annotations

from pathlib import Path

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
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:55]
    return postgres_server.create_database(name)
