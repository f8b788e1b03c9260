"""A run's progress: a bar on a terminal, plain lines under cron."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

log = logging.getLogger("desk_sessions")


class Progress:
    """A bar on a terminal; a plain log line every ``every`` seconds otherwise (cron)."""

    def __init__(self, enabled: bool | None, every: float = 10.0) -> None:
        self._tty = sys.stderr.isatty() if enabled is None else enabled
        self._every = every
        self._bar: Any = None
        self._done = 0
        self._lock = threading.Lock()
        self._totals: dict[str | None, int] = {}
        self._t0 = self._last = time.monotonic()

    def __call__(self, app: str | None, rows: int, total: int) -> None:
        """A batch of ``rows`` answered of the ``total`` keys of ``app`` (several apps'
        batches come from dlt's threads; their keys add up as each starts)."""
        with self._lock:
            self._totals[app] = total
            self._advance(rows, sum(self._totals.values()))

    def _advance(self, rows: int, total: int) -> None:
        self._done += rows
        if self._tty:
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(total=total, unit="key", desc="polling", file=sys.stderr)
            self._bar.total = total
            self._bar.update(rows)
            return
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            rate = self._done / max(now - self._t0, 1e-9)
            log.info("polled %d/%d keys (%.0f%%), %.0f keys/s", self._done, total,
                     100.0 * self._done / max(total, 1), rate)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
