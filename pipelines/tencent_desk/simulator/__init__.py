"""A local Tencent Cloud Desk ``get_session_state``: a seeded day of sessions behind a fast
ASGI app with injectable faults, for tests, demos and benchmarks."""

from tencent_desk.simulator.app import (
    CHAOS_SHAPES,
    FAULT_KINDS,
    SimulatorApp,
    SimulatorConfig,
    Stats,
)
from tencent_desk.simulator.model import (
    Population,
    PopulationConfig,
    Segment,
    SessionKey,
)
from tencent_desk.simulator.server import (
    build_app,
    serve,
    serve_in_thread,
    write_seed_csv,
)

__all__ = [
    "CHAOS_SHAPES",
    "FAULT_KINDS",
    "Population",
    "PopulationConfig",
    "Segment",
    "SessionKey",
    "SimulatorApp",
    "SimulatorConfig",
    "Stats",
    "build_app",
    "serve",
    "serve_in_thread",
    "write_seed_csv",
]
