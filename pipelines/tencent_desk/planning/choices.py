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


class TooLittleHistory(PlanError):
    """Too few days of data before the days to plan; the command line adds the days the
    database holds (the window read may be far from them)."""


def parse_target(text: str, name: str = "--target") -> tuple[float, float]:
    """``0.8:60`` (or ``80%:60``, ``80:60``) -> (share 0.8, 60 seconds); ``name``: where
    the user gave it (an option, a notebook's environment variable), for the message."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)(%?)\s*:\s*(\d+(?:\.\d+)?)\s*s?\s*", text)
    share = _share(float(m.group(1)), percent=bool(m.group(2))) if m else math.nan
    if not m or not 0 < share < 1 or float(m.group(3)) <= 0:
        raise PlanError(f"{name} {text!r} cannot be read: give SHARE:SECONDS with the share "
                        "as a fraction or a whole percentage, e.g. 0.8:60 or 80:60 (80.5%:60 "
                        "with the sign), and seconds > 0")
    return share, float(m.group(3))


def parse_interval(text: str, name: str = "--interval") -> int:
    """Minutes per interval, one of ``INTERVALS``."""
    if text.strip() not in {str(m) for m in INTERVALS}:
        raise PlanError(f"{name} {text!r}: give the minutes per interval, one of "
                        f"{', '.join(map(str, INTERVALS))}")
    return int(text)


def _share(number: float, *, percent: bool) -> float:
    """A number without ``%`` is a fraction below 1, or a percentage above 1 only when whole:
    1.5 could be 1.5% or a slip for 0.15, and 1 all or 1%, so neither is a share (NaN)."""
    if percent or (number > 1 and number.is_integer()):
        return number / 100
    return number if number < 1 else math.nan
