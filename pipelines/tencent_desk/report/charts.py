"""The report's charts as inline SVG (matplotlib, text drawn as paths: no font to fetch)."""

from __future__ import annotations

import io
import re
from datetime import datetime

import pandas as pd
from matplotlib import rc_context
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

_SIZE = re.compile(r'<svg([^>]*?) width="[^"]*" height="[^"]*"')


def svg(fig: Figure, title: str) -> str:
    """The figure as an ``<svg>`` element that scales to its container's width."""
    buffer = io.StringIO()
    # a fixed salt: the same figures give the same page (clip-path ids are hashes)
    with rc_context({"svg.hashsalt": "desk-report"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    # the width follows the page (CSS), the viewBox keeps the proportions
    text = _SIZE.sub(r'<svg\1 role="img" aria-label="' + title.replace('"', "'") + '"', text,
                     count=1)
    return text


def _time_axis(ax: object) -> None:
    locator = AutoDateLocator(minticks=3, maxticks=7)
    ax.xaxis.set_major_locator(locator)  # type: ignore[attr-defined]
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[attr-defined]


def _shade(ax: object, gaps: list[tuple[datetime, datetime]]) -> None:
    for n, (start, end) in enumerate(gaps):
        ax.axvspan(start, end, color="grey", alpha=0.2, lw=0,  # type: ignore[attr-defined]
                   label="no data" if n == 0 else None)


def over_time(frame: pd.DataFrame, step: str, target: float | None, threshold_s: float,
              gaps: list[tuple[datetime, datetime]]) -> str:
    """Arrivals per interval (bars) above the service level per interval (line, target
    dashed), intervals without data shaded."""
    fig = Figure(figsize=(8, 4.6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[1, 1])
    starts = pd.to_datetime(frame["interval_start"], utc=True)
    width = pd.Timedelta(step) * 0.85
    top.bar(starts, frame["arrivals"], width=width, align="edge", color="#3b6ea5")
    top.set_ylabel("arrivals")
    top.set_title(f"Arrivals and service level ({threshold_s:g} s) per "
                  f"{'hour' if step == '1h' else 'day'}, UTC", fontsize=10)
    level = frame["service_level"].astype(float) * 100
    bottom.plot(starts + pd.Timedelta(step) / 2, level, marker="o", ms=3, color="#2a7f3f",
                label="service level")
    if target is not None:
        bottom.axhline(target * 100, color="#b03a2e", ls="--", lw=1, label="target")
    bottom.set_ylim(0, 105)
    bottom.set_ylabel("% answered in time")
    for ax in (top, bottom):
        _shade(ax, gaps)
        ax.grid(alpha=0.3)
        _time_axis(ax)
    bottom.legend(loc="lower left", fontsize="small")
    return svg(fig, "arrivals and service level over the period")


def plan(frame: pd.DataFrame) -> str:
    """Forecast against arrivals, agents required against agents with a chat."""
    fig = Figure(figsize=(8, 4.6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    at = pd.to_datetime(frame["interval_start"], utc=True)
    top.step(at, frame["forecast"].astype(float), where="post", label="forecast",
             color="#888888")
    top.step(at, frame["arrivals"].astype(float), where="post", label="arrivals",
             color="#3b6ea5")
    top.set_ylabel("arrivals")
    bottom.step(at, frame["agents_required"].astype(float), where="post", label="required",
                color="#888888")
    bottom.step(at, frame["agents"].astype(float), where="post", label="with a chat",
                color="#2a7f3f")
    bottom.set_ylabel("agents")
    for ax in (top, bottom):
        ax.legend(loc="upper left", fontsize="small")
        ax.grid(alpha=0.3)
        _time_axis(ax)
    return svg(fig, "staffing plan against actual")
