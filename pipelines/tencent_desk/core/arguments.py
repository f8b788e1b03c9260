"""The argparse ``type=`` every command shares: a value the command would refuse later, or
misread, is refused at once, naming the option (``desk-sessions: error: argument --X: ...``,
exit 2; docs/failures.md). Kept here, light, for ``cli.py``, ``report`` and ``plan``."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any


def number(kind: type, low: float, high: float = math.inf, *, above: bool = False,
           what: str = "") -> Callable[[str], float]:
    """A number in [low, high] (in (low, high] with ``above``)."""
    whole = "a whole number" if kind is int else "a number"
    what = what or (f"{whole} above {low:g}" if above else f"{whole} of {low:g} or more"
                    if high == math.inf else f"{whole} from {low:g} to {high:g}")

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and low <= value <= high and not (above and value == low)):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    return parse


def given(what: str, kind: Callable[[str], Any] = str, empty: str = "an empty name"
          ) -> Callable[[str], Any]:
    """A value that must not be empty: an empty or blank one (a cron line's variable left
    unset) is refused, where it would silently mean something else (the current folder
    for a path, dlt's own dataset name, no seed, no --since). ``what``: what to give;
    ``kind`` then converts (and may refuse) the value; ``empty``: what it is called."""

    def parse(text: str) -> Any:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"{empty}: give {what}")
        return kind(text)

    return parse


PORT = number(int, 1, 65535, what="a port number from 1 to 65535")
SHARE = number(float, 0, 1, what="a share from 0 to 1")
SEED = number(int, 0, what="a random seed: a whole number of 0 or more")
COUNT = number(int, 0, above=True)
AT_LEAST_0 = number(float, 0)
ABOVE_0 = number(float, 0, above=True)
DATASET = given("the dataset (the schema of the tables)")
DATABASE = given("the DuckDB file", Path)
SEED_FILE = given("the seed file")
STATE_DIR = given("the job's state folder", Path)
OUT = given("the file to write", Path)
