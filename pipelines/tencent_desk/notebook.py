"""What every analysis notebook does first: find the database, open the snapshot the job
publishes beside it (so the job can keep writing), and set up headless-safe plots."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb

from . import metrics, snapshot

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Desk:
    source: snapshot.Reader | duckdb.DuckDBPyConnection
    path: Path
    dataset: str
    has_truth: bool
    poll_s: float | None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The latest published snapshot (views made again after each run), or the database
        itself, read-only, where nothing was ever published."""
        if isinstance(self.source, snapshot.Reader):
            return self.source.connection()
        return self.source


def database() -> Path:
    """``DESK_DUCKDB`` (relative to the working folder or the repository), else the demo's."""
    given = os.environ.get("DESK_DUCKDB")
    if not given:
        path = ROOT / "demo.duckdb"
    else:
        path = next((p for p in (Path(given).expanduser(), ROOT / given) if p.exists()),
                    Path(given))
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `make demo` or set DESK_DUCKDB")
    return path


def open_desk() -> Desk:
    """The database read-only, its dataset (``DESK_DATASET``), and plot defaults."""
    import matplotlib

    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")  # run as a plain script: draw off-screen
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.figsize": (11, 3.8), "axes.grid": True, "grid.alpha": 0.3})
    path = database()
    dataset = os.environ.get("DESK_DATASET", "tencent_desk")
    source: snapshot.Reader | duckdb.DuckDBPyConnection
    if snapshot.Reader.available(path):
        source = snapshot.Reader(path)
        con = source.connection()
    else:  # a database no job published: read it directly (this blocks a writer)
        source = con = duckdb.connect(str(path), read_only=True)
    return Desk(source, path, dataset, metrics.has_truth(con),
                metrics.poll_interval_s(con, dataset))
