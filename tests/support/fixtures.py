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
