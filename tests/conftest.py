"""Shared fixtures: a simulator served on loopback, credentials, and a client factory."""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tencent_desk.api.client import ClientConfig, DeskClient
from tencent_desk.api.usersig import UserSigProvider
from tencent_desk.core.clock import VirtualClock
from tencent_desk.simulator import (
    Population,
    PopulationConfig,
    SimulatorApp,
    SimulatorConfig,
    serve_in_thread,
)

from .support.harness import configured_transport

# pop, sim, seed: one small simulated desk, for the tests of the job and its database
pytest_plugins = ["tests.support.fixtures"]

# Tests speak to loopback only: no usage reports from dlt.
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

SDKAPPID = 1400123456
ADMIN = "administrator"
SECRET_KEY = "k3y-for-tests-6f1d0a9c2b7e4d3a8c5b1e0f9a2d7c4b"


# The HTTP clients a user can choose (config key transport, --transport): the conformance,
# fault and outage cases run on each (``pytestmark = pytest.mark.usefixtures("transport")``).
TRANSPORTS = ("aiohttp", "httpx")


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The case on one transport, given as a user would: the config key (the environment
    form, so that a CLI child takes it too); clients made here read it (``configured``)."""
    monkeypatch.setenv("SOURCES__TENCENT_DESK__TRANSPORT", request.param)
    return request.param


@pytest.fixture(scope="session")
def population() -> Population:
    return Population(PopulationConfig(seed=11, sessions_per_day=5000, agents=12))


class Sim:
    """A running simulator: its app (stats, clocks, population) and base URL."""

    def __init__(self, app: SimulatorApp, url: str) -> None:
        self.app, self.url = app, url

    @property
    def population(self) -> Population:
        return self.app.population

    @property
    def clock(self) -> VirtualClock:
        return self.app.model_clock  # type: ignore[return-value]


@pytest.fixture
def simulator(population: Population) -> Iterator[Callable[..., Sim]]:
    """``simulator(**SimulatorConfig fields, auth_clock=..., limit_clock=...)``."""
    with contextlib.ExitStack() as stack:

        def start(auth_clock: Any = None, limit_clock: Any = None,
                  pop: Population | None = None, **fields: Any) -> Sim:
            config = SimulatorConfig(SDKAPPID, ADMIN, SECRET_KEY, **fields)
            pop = pop or population
            app = SimulatorApp(pop, config, auth_clock=auth_clock, limit_clock=limit_clock,
                               model_clock=VirtualClock(pop.config.day_start + 11 * 3600))
            url = stack.enter_context(serve_in_thread(app))
            return Sim(app, url)

        yield start


def client_config(url: str | tuple[str, ...], **fields: Any) -> ClientConfig:
    """Quick retries: tests check behaviour, not patience."""
    urls = (url,) if isinstance(url, str) else url
    defaults: dict[str, Any] = dict(max_qps=10_000, max_concurrency=16, timeout=2.0,
                                    backoff_base=0.005, backoff_max=0.02,
                                    transport=configured_transport())
    defaults.update(fields)
    return ClientConfig(SDKAPPID, ADMIN, urls, **defaults)


def make_client(url: str | tuple[str, ...], sigs: UserSigProvider | None = None,
                **fields: Any) -> DeskClient:
    sigs = sigs or UserSigProvider(SDKAPPID, ADMIN, secret_key=SECRET_KEY)
    return DeskClient(client_config(url, **fields), sigs)


# Module-scoped fixtures cheap enough to build on each worker: their modules' tests spread.
SPREAD = {"pop", "kernel"}


def pytest_configure(config: pytest.Config) -> None:
    """Under ``pytest -n``: one PostgreSQL server for every worker, started here before
    them; they take it as a given server (``DESK_TEST_POSTGRES``, inherited), so that it
    starts once and what is loaded into it once (``pg_shapes``) serves them all."""
    if (getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput")
            and not os.environ.get("DESK_TEST_POSTGRES")):
        from .support import postgres

        stack = contextlib.ExitStack()
        config.add_cleanup(stack.close)
        try:
            server = stack.enter_context(postgres.running())
        except (OSError, RuntimeError, subprocess.CalledProcessError):
            return  # no server here: each test that needs one says why, as without -n
        stack.callback(os.environ.pop, "DESK_TEST_POSTGRES", None)
        os.environ["DESK_TEST_POSTGRES"] = server.url()


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection imported (the package, dlt, pandas, every test module) lives as
    long as the process: frozen out of the garbage collector's passes, and full passes made
    rarer (as the CLI makes them, ``cli.main``). Each full pass over it took a worker ~0.2 s,
    some 7% of its CPU."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(700, 10, 100)


@pytest.hookimpl(tryfirst=True)  # marked before xdist reads the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``pytest -n`` (``--dist loadgroup``): a module's tests that share a costly
    module-scoped fixture run on one worker, so that it is built once, not once per worker."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info and any(name not in SPREAD and defs[-1].scope == "module"
                        for name, defs in info.name2fixturedefs.items()):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
            if getattr(config.option, "loadgroup", False):  # on a worker of such a run
                _name_group(item, item.module.__name__)


def _name_group(item: pytest.Item, group: str) -> None:
    """The group in the node id, where xdist's scheduler reads it (``id@group``). xdist
    3.8 writes it to ``item._nodeid``, which pytest 9.2's structured ids no longer read:
    without this every test is scheduled alone (pytest-dev/pytest-xdist#1386)."""
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # a pytest before 9.2: xdist's own naming works
        return
    if "@" not in item.nodeid.rpartition("]")[2]:
        item._id = NodeId.parse(f"{item.nodeid}@{group}")  # type: ignore[attr-defined]
