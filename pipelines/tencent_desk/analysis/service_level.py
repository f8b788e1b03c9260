"""Service level: the one definition every surface that shows one computes it by (the report,
the notebooks, ``timeline_metrics`` from sessions, ``interval_metrics`` from the interval
tables).

The field's definition (docs/analysis.md, "Service level"): answered within T ÷ (answered +
abandoned after T). The simulator's replay measures it and the plan targets it, so the desk
is judged on the same figure; *answered within T ÷ answered* would leave out the customers
who gave up waiting and flatter a desk that lets them go.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import pandas as pd

DEFINITION = "answered within T ÷ (answered + abandoned after T)"

def title(threshold_s: float) -> str:
    """What a chart or table of it is titled."""
    return f"Service level within {threshold_s:g} s (of answered + abandoned after it)"


Count = TypeVar("Count", float, pd.Series, np.ndarray)


def share(within: Count, answered: Count, abandoned_after: Count) -> Count:
    """``within`` ÷ (``answered`` + ``abandoned_after``); NaN where nobody counts. Counts:
    answered = sessions with an answer (a wait), within = those answered within T,
    abandoned_after = sessions that queued and left unanswered after waiting more than T."""
    den = np.asarray(answered, dtype=float) + np.asarray(abandoned_after, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, np.asarray(within, dtype=float) / den, np.nan)
    if isinstance(within, pd.Series):
        return pd.Series(out, index=within.index)  # type: ignore[return-value]
    return float(out) if np.ndim(out) == 0 else out  # type: ignore[return-value]
