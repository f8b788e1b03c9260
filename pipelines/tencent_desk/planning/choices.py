"""The choices a plan offers and the reading of its input, named once: the command line
offers them, and says what to fix, without loading the maths (pandas, NumPy), which every
other command (and every mistake) would then pay for."""

from __future__ import annotations

import math
import re

INTERVALS = (15, 30, 60)  # minutes
METHODS = ("profile", "naive")  # how arrivals are forecast (planning/forecast.py)
PER = ("day", "interval")  # where the service target applies: --target-per


class PlanError(ValueError):
    """What the user must fix, in one line."""


def parse_target(text: str) -> tuple[float, float]:
    """``0.8:60`` (or ``80%:60``, ``80:60``) -> (share 0.8, 60 seconds)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)(%?)\s*:\s*(\d+(?:\.\d+)?)\s*s?\s*", text)
    share = float(m.group(1)) / (100 if m.group(2) or float(m.group(1)) > 1 else 1) if m \
        else math.nan
    if not m or not 0 < share < 1 or float(m.group(3)) <= 0:
        raise PlanError(f"--target {text!r} cannot be read: give SHARE:SECONDS with a share "
                        "between 0 and 1 (or a percentage) and seconds > 0, e.g. 0.8:60")
    return share, float(m.group(3))
