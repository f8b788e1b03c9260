"""Sessions without an agent group spread over the groups (planning/ungrouped.py): by the
grouped sessions of their interval, else of their time of day, else of the whole window;
every sum kept. Sessions summed in a real DuckDB (Summary.of)."""

from __future__ import annotations

import pandas as pd
import pytest
from tencent_desk.core.settings import NO_GROUP
from tencent_desk.planning import ungrouped
from tencent_desk.planning.summary import COLUMNS, Summary

MON = pd.Timestamp("2026-03-02 09:00", tz="UTC")
TUE = MON + pd.Timedelta(days=1)
WED = TUE + pd.Timedelta(days=1)


def _sessions(*spec: tuple[pd.Timestamp, str | None, int, bool]) -> pd.DataFrame:
    """``n`` sessions asking at ``at`` in ``group``: answered after 20 s and held 300 s by
    one agent each, or abandoned after 50 s."""
    rows = []
    for at, group, n, abandoned in spec:
        for k in range(n):
            answered = None if abandoned else at + pd.Timedelta(seconds=20)
            rows.append({"began_at": at - pd.Timedelta(seconds=30), "queued_at": at,
                         "assigned_at": answered, "answered_at": answered,
                         "ended_at": at + pd.Timedelta(seconds=50 if abandoned else 320),
                         "agent_id": None if abandoned else f"{group}-{at:%d%H%M}-{k}",
                         "agent_group_name": group,
                         "hold_s": None if abandoned else 300.0, "abandoned": abandoned})
    return pd.DataFrame(rows, columns=COLUMNS).astype({"hold_s": float})


def _by_group(t: pd.DataFrame, column: str) -> dict[str, float]:
    return t.groupby("group")[column].sum().to_dict()


def test_shared_by_the_interval_then_the_time_of_day_then_the_window() -> None:
    later = MON + pd.Timedelta(hours=5)
    summed = Summary.of(_sessions(
        (MON, "Sales", 30, False), (MON, "Billing", 10, False),
        (MON, None, 8, True),  # the interval's own mix: 3 to 1
        (TUE, None, 4, True),  # nobody grouped on Tuesday: 09:00 of the other days, 30:30
        (later, "Sales", 5, False), (later, "Billing", 15, False),
        (WED, "Billing", 20, False),
        (TUE, None, 2, False),  # answered, its record not loaded yet: handled as the queue
        (TUE + pd.Timedelta(hours=2), None, 6, True),  # nobody grouped at 11:00: the window
    ), 60.0)
    spread = ungrouped.spread(summed)
    q = spread.queue.set_index(["interval_start", "group"])
    assert NO_GROUP not in set(spread.queue.group) | set(spread.waits.group)
    assert q.loc[(MON, "Sales"), "abandoned"] == pytest.approx(6)
    assert q.loc[(MON, "Billing"), "abandoned"] == pytest.approx(2)
    assert q.loc[(TUE, "Sales"), "queued"] == q.loc[(TUE, "Billing"), "queued"] == 3
    # handling by the interval of the day (09:00: 30:30 chats), chats held by the window's
    h = spread.handling[spread.handling.day == TUE.normalize()]
    assert _by_group(h, "chats") == {"Billing": 1, "Sales": 1}
    held = spread.held[spread.held.day == TUE.normalize()]
    assert _by_group(held, "chats") == pytest.approx({"Billing": 2 * 45 / 80,
                                                      "Sales": 2 * 35 / 80})
    eleven = TUE + pd.Timedelta(hours=2)  # Sales 35 of the 80 grouped, Billing 45
    assert q.loc[(eleven, "Sales"), "queued"] == pytest.approx(6 * 35 / 80)
    assert q.loc[(eleven, "Billing"), "queued"] == pytest.approx(6 * 45 / 80)
    # nothing lost, nothing made: every sum of every table adds up as before
    for name, columns in (("queue", ["queued", "in_time", "abandoned"]),
                          ("waits", ["waited", "waited_s", "gave_up", "gave_up_s"]),
                          ("handling", ["chats", "hold_s"]), ("held", ["chats"])):
        before, after = getattr(summed, name), getattr(spread, name)
        for c in columns:
            assert after[c].sum() == pytest.approx(before[c].sum()), (name, c)
    # patience's waits by the day's mix: Monday's 8 by Monday's queue (35:25), Tuesday's 10
    # by the whole window's (35:45: Tuesday has no grouped session)
    gave_up = _by_group(spread.waits, "gave_up")
    assert _by_group(spread.waits, "waited")["Sales"] == pytest.approx(
        30 + 5 + 8 * 35 / 60 + 12 * 35 / 80)
    assert gave_up["Sales"] == pytest.approx(8 * 35 / 60 + 10 * 35 / 80)
    assert gave_up["Billing"] == pytest.approx(8 * 25 / 60 + 10 * 45 / 80)


def test_nothing_moves_without_a_group_or_without_ungrouped() -> None:
    grouped = Summary.of(_sessions((MON, "Sales", 5, False), (MON, "Sales", 2, True)), 60.0)
    assert ungrouped.spread(grouped) is grouped
    polls_alone = Summary.of(_sessions((MON, None, 5, False), (MON, None, 2, True)), 60.0)
    assert ungrouped.spread(polls_alone) is polls_alone
    assert set(polls_alone.queue.group) == {NO_GROUP}
