"""What the job's machinery hands the source for one run: none of it is configuration.

The source's signature holds configuration and credentials only, as a dlt source should:
the job binds its context around the source's making (:func:`bound`) and the source takes
it (:func:`current`). A user's own pipeline script binds none, which means a run on its
own: the wall clock, an id made from it, no callbacks. ``desk-sessions run`` binds one
with its progress, its lock's record of interrupted runs and its failure accounting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from tencent_desk.core.clock import Clock, SystemClock
from tencent_desk.job.runs import new_run_id


@dataclass
class RunContext:
    clock: Clock = field(default_factory=SystemClock)  # what timestamps rows
    run_id: str = ""  # "": made from the clock
    # called with (app, rows of a batch, keys of that app's run): progress
    on_batch: Callable[[str | None, int, int], None] | None = None
    # called with each ``runs`` row once every key is answered (before it is loaded)
    on_run: Callable[[dict[str, Any]], None] | None = None
    # ``runs`` rows of earlier runs that died before loading, to record with this one
    interrupted: Sequence[dict[str, Any]] = ()
    # one app of several: called with (app, what stopped it), returns the line to record
    on_failed: Callable[[str, BaseException], str] | None = None
    # app name -> the clock pacing its calls (virtual ones in tests); default: the wall's
    pace_clocks: Mapping[str, Clock] = field(default_factory=dict)
    # entered while an app asks the API: the job lets go of its database meanwhile
    asking: Callable[[], AbstractContextManager[object]] = nullcontext
    app: str | None = None  # set by :meth:`of`: the named app this context is for
    # apps (None: the single-app form) given no seed: theirs is the job's own file of the
    # sessions known from events, and that one empty is a quiet desk, not a seed to check
    events_only: set[str | None] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.run_id = self.run_id or new_run_id(self.clock)

    def of(self, app: str, first: bool) -> RunContext:
        """This run as one named app of several sees it: its own run id; the interrupted
        runs recorded once, with the ``first`` app."""
        return dataclasses.replace(self, app=app, run_id=f"{self.run_id}-{app}",
                                   interrupted=self.interrupted if first else ())

    @property
    def pace_clock(self) -> Clock | None:
        return self.pace_clocks.get(self.app) if self.app is not None else None

    def batch(self, rows: int, total: int) -> None:
        if self.on_batch is not None:
            self.on_batch(self.app, rows, total)

    def failed(self, exc: BaseException) -> str:
        """The line to record for what stopped this app (one of several)."""
        if self.on_failed is None or self.app is None:
            return str(exc)
        return self.on_failed(self.app, exc)


_BOUND: ContextVar[RunContext | None] = ContextVar("tencent_desk_run_context", default=None)


@contextmanager
def bound(context: RunContext) -> Iterator[RunContext]:
    """The job's context for the sources made within (the source reads it when called)."""
    token = _BOUND.set(context)
    try:
        yield context
    finally:
        _BOUND.reset(token)


def current() -> RunContext:
    """The context the job bound, or a run on its own."""
    return _BOUND.get() or RunContext()
