"""A local Tencent Cloud Desk ``get_session_state``: a seeded day of sessions behind a fast
ASGI app with injectable faults, for tests, demos and benchmarks.

Its names are imported on first use: a notebook that only checks the truth
(:mod:`.truth`) should not pay for the served app."""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "CHAOS_SHAPES": "app", "FAULT_KINDS": "app", "SimulatorApp": "app",
    "SimulatorConfig": "app", "Stats": "app",
    "Population": "model", "PopulationConfig": "model", "Segment": "model",
    "SessionKey": "model",
    "Schedule": "schedule", "GroupProfile": "weeks", "WeeksConfig": "weeks",
    "build_app": "server", "serve": "server", "serve_in_thread": "server",
    "write_seed_csv": "server",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
