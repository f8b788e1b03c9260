"""The simulator as a served app, and its seed file (serving: :mod:`tencent_desk.core.serving`)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from tencent_desk.core.clock import Clock, VirtualClock
from tencent_desk.core.serving import serve, serve_in_thread
from tencent_desk.simulator.app import (
    DEFAULT_START_OFFSET_S,
    SimulatorApp,
    SimulatorConfig,
)
from tencent_desk.simulator.model import Population

SEED_COLUMNS = ("session_id", "client_user_id", "customer_service_id")


def build_app(config: SimulatorConfig, population: Population, *, speed: float = 1.0,
              start: float | None = None, auth_clock: Clock | None = None) -> SimulatorApp:
    """An app whose model clock starts at ``start`` (default 09:00 on the simulated day) and
    runs ``speed`` times faster than real time."""
    if start is None:
        start = population.config.day_start + DEFAULT_START_OFFSET_S
    return SimulatorApp(population, config, model_clock=VirtualClock(start, speed=speed),
                        auth_clock=auth_clock)


def write_seed_csv(population: Population, path: str | Path, *,
                   pair_share: float = 0.25) -> int:
    """A seed file: every session id with its keys, then for ``pair_share`` of the
    (user, account) pairs a row with the pair only. Returns the number of rows written."""
    keys = population.session_keys()
    pairs = sorted({(k.client_user_id, k.customer_service_id) for k in keys})
    rng = random.Random(population.config.seed)
    chosen = rng.sample(pairs, round(len(pairs) * pair_share))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(SEED_COLUMNS)
        out.writerows(keys)
        out.writerows(("", user, cs) for user, cs in chosen)
    return len(keys) + len(chosen)

__all__ = ["SEED_COLUMNS", "build_app", "serve", "serve_in_thread", "write_seed_csv"]
