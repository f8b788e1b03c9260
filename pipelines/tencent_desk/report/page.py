"""The report as one self-contained HTML page: inline CSS and SVG, nothing fetched (its
Content-Security-Policy forbids it), readable on a phone and printed. Every text that
comes from the data is escaped."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape

import pandas as pd

from . import charts
from .figures import Figure, Figures

TOP = 5  # agents shown at each end of a ranking (all of them, when no more than twice this)
CSS = """
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
 color:#1d2530;background:#f4f6f8}
main{max-width:960px;margin:0 auto;padding:12px}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.1em;margin:1.4em 0 .4em}
p,li,td,th{overflow-wrap:anywhere}
.sub{color:#5a6573;margin:0}
section{background:#fff;border-radius:8px;padding:10px 14px;margin:12px 0;
 box-shadow:0 1px 2px rgba(0,0,0,.08)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px}
.card{border:1px solid #dde3ea;border-radius:8px;padding:8px 10px;min-width:0}
.card h3{font-size:.8em;font-weight:600;color:#5a6573;margin:0;text-transform:uppercase}
.card .value{font-size:1.6em;font-weight:700}
.card small{display:block;color:#5a6573}
.met{color:#1e7b34}.missed{color:#b03a2e}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{padding:4px 6px;border-bottom:1px solid #e3e8ee;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left}
svg{display:block;width:100%;max-width:100%;height:auto}
.note{color:#5a6573;font-size:.9em}
.nodata{font-size:1.2em;padding:1em 0}
@media (max-width:640px){
 main{padding:6px}
 table.wide thead{display:none}
 table.wide tr{display:block;border-bottom:2px solid #dde3ea;padding:4px 0}
 table.wide td{display:flex;justify-content:space-between;gap:8px;border:0;padding:2px 0;
  text-align:right}
 table.wide td::before{content:attr(data-label);font-weight:600;text-align:left}
}
@media print{
 body{background:#fff;font-size:11pt}main{max-width:none;padding:0}
 section{box-shadow:none;border:1px solid #ccc;break-inside:avoid}
 .cards{grid-template-columns:repeat(3,1fr)}
}
"""
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
       "form-action 'none'; base-uri 'none'")


def number(value: float, unit: str) -> str:
    """A figure as shown: shares in %, seconds, counts; a missing one as an en dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if unit == "share":
        return f"{value * 100:.1f} %"
    if unit == "s":
        return f"{value:.1f} s"
    if unit == "rating":
        return f"{value:.2f}"
    return f"{value:,.0f}"


def change(figure: Figure) -> str:
    if pd.isna(figure.previous) or pd.isna(figure.value):
        return "no earlier figure"
    delta = figure.value - figure.previous
    if figure.unit == "share":
        return f"{delta * 100:+.1f} pts vs before"
    return f"{delta:+,.1f}{' s' if figure.unit == 's' else ''} vs before"


def compared_with(fig: Figures) -> str:
    """What the key figures are compared with, in words: the period before; so far, to the
    same point of it; and which of its days have data, when not all do."""
    if fig.so_far is None:
        line = f"compared with {fig.period.previous}"
    else:
        line = (f"so far: to {_when(fig.so_far)} UTC, against the period before to the same "
                f"point ({fig.period.previous}, to {_when(fig.before[1])} UTC)")
    return line + (f" (the period before has {fig.before_note})" if fig.before_note else "")


def _card(f: Figure) -> str:
    state = {True: "met", False: "missed", None: ""}[f.met]
    target = ("no target" if f.target is None else
              f"target {'≥' if f.direction == 'min' else '≤' if f.direction else ''}"
              f"{number(f.target, f.unit)}" + (f" ({state})" if state else ""))
    return (f'<div class="card" data-figure="{f.key}" data-value="{f.value!r}">'
            f"<h3>{escape(f.title)}</h3>"
            f'<div class="value {state}">{number(f.value, f.unit)}</div>'
            f"<small>{escape(change(f))} ({number(f.previous, f.unit)})</small>"
            f"<small>{escape(target)}</small></div>")


def _table(headers: list[str], rows: Iterable[list[str]], wide: bool = True,
           name: str = "") -> str:
    """A table of already-escaped cells; ``wide``: stacked as cards on a phone."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td data-label="{escape(h)}">{c}</td>'
                                    for h, c in zip(headers, row, strict=True)) + "</tr>"
                   for row in rows)
    return (f'<table class="{"wide" if wide else ""}" data-table="{name}">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _when(at: datetime) -> str:
    return f"{pd.Timestamp(at).tz_convert('UTC'):%Y-%m-%d %H:%M}"


def _slots(fig: Figures) -> str:
    """The chats per agent each group's occupancy is over, and where they come from."""
    per = fig.chats_per_agent.dropna()
    if fig.targets.chats_per_agent is not None:
        return f"{fig.targets.chats_per_agent:g} chats per agent, as set (chats_per_agent)"
    if per.empty:
        return "chats per agent read from the data: no chat in the period"
    return ("chats per agent read from the data, the most an agent of the group holds at "
            "once (99th percentile): " + ", ".join(f"{g} {v:g}" for g, v in per.items()))


def _groups(fig: Figures) -> str:
    if fig.groups.empty:
        return '<p class="note">No session in the period.</p>'
    from .figures import FIGURES, TITLES

    headers = ["group", "sessions", *(TITLES[k] for k in FIGURES), "chats per agent"]
    rows = [[escape(str(r["group"])), number(r["sessions"], "count"),
             *(number(r[k], unit) for k, (_, _, unit, _) in FIGURES.items()),
             f"{r['chats_per_agent']:g}" if pd.notna(r["chats_per_agent"]) else "–"]
            for _, r in fig.groups.iterrows()]
    return _table(headers, rows, name="groups")


def _agents(fig: Figures) -> str:
    agents = fig.agents
    if agents.empty:
        return '<p class="note">No agent served a session in the period.</p>'
    parts = []
    for column, title in (("occupancy", "occupancy"), ("mean_rating", "rating")):
        ranked = agents.dropna(subset=[column]).sort_values(
            [column, "agent_id"], ascending=[False, True], kind="stable")
        if ranked.empty:
            parts.append(f'<p class="note">No {title} in the period.</p>')
            continue
        ends = [("highest", ranked.head(TOP)),
                ("lowest", ranked.tail(TOP).iloc[::-1])] if len(ranked) > 2 * TOP else [
            ("all, highest first", ranked)]
        for which, rows in ends:
            parts.append(f"<h3>{escape(title.capitalize())}: {which}</h3>" + _table(
                ["agent", "served", "rated", "rating", "occupancy"],
                [[escape(str(r["agent_id"])), number(r["served"], "count"),
                  number(r["rated"], "count"), number(r["mean_rating"], "rating"),
                  number(r["occupancy"], "share")] for _, r in rows.iterrows()],
                name=f"{column}-{which.split(',')[0]}"))
    return "".join(parts)


def _rests_on(fig: Figures) -> str:
    from tencent_desk.analysis.timeline_metrics import source_note

    c = fig.coverage
    items = [f"{number(c['sessions'], 'count')} sessions began in the period; their times "
             f"rest on: {escape(source_note(c['exact_share']))} "
             f'(<span data-exact-share="{c["exact_share"]!r}">'
             f"{number(c['exact_share'], 'share')}</span> exact).",
             f"{c['complete_runs']} complete runs (polls) in the period; callbacks: "
             f"{'yes' if c['callbacks'] else 'no'}; session records: "
             f"{'yes' if c['records'] else 'no'}."]
    items += [f"{escape(f.title)}: {escape(source_note(f.exact_share))}." for f in fig.key]
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _gaps(fig: Figures) -> str:
    runs = fig.failed_runs
    out = []
    if runs.empty:
        out.append("<p>No run failed in the period.</p>")
    else:
        reason = [c for c in ("error", "not_asked") if c in runs.columns]
        out.append(f"<p>{len(runs)} run{'s' if len(runs) > 1 else ''} did not complete:</p>"
                   + _table(["started (UTC)", "status", "why"],
                            [[_when(r["started_at"]), escape(str(r["status"])),
                              escape(" ".join(str(r[c]) for c in reason
                                              if pd.notna(r[c])) or "not recorded")]
                             for _, r in runs.iterrows()], name="failed-runs"))
    hours = fig.no_data_hours
    if not hours:
        out.append("<p>Every hour of the period has data.</p>")
    else:
        total = sum((b - a).total_seconds() for a, b in hours) / 3600
        out.append(f"<p>{total:g} hour{'s' if total != 1 else ''} without data (no complete "
                   "run, no callback): shaded in the chart.</p><ul>" + "".join(
                       f"<li>{_when(a)} to {_when(b)}</li>" for a, b in hours) + "</ul>")
    return "".join(out)


def _plan(fig: Figures) -> str:
    note = f'<p class="note">{escape(fig.plan_note)}</p>'
    if fig.plan is None:
        return note
    p = fig.plan
    return note + charts.plan(p) + _table(
        ["interval (UTC)", "forecast", "arrivals", "agents required", "agents with a chat"],
        [[_when(r["interval_start"]), number(r["forecast"], "count"),
          number(r["arrivals"], "count"), number(r["agents_required"], "count"),
          number(r["agents"], "count")] for _, r in p.iterrows()], name="plan")


def render(fig: Figures, generated: datetime | None = None) -> str:
    """The whole page."""
    generated = generated or datetime.now(UTC)
    where = fig.source.where
    app = f", app {fig.sdkappid}" if fig.sdkappid is not None else ""
    title = f"Desk report: {fig.period}"
    head = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>"
            f"<h1>{escape(title)}</h1>"
            f'<p class="sub">{escape(str(where))} / {escape(fig.source.dataset)}{app}; '
            f"{escape(compared_with(fig))}; made {_when(generated)} UTC</p>")
    if fig.empty:
        return (head + '<section><p class="nodata" data-nodata="1">No data for this period: '
                "no session began and no run completed in it.</p>" + _gaps(fig)
                + "</section></main></body></html>")
    t = fig.targets
    body = [
        '<section><h2>Key figures</h2><div class="cards">'
        + "".join(_card(f) for f in fig.key) + "</div>"
        f'<p class="note">Service level: sessions answered within {t.service_level_s:g} s '
        f"÷ (sessions answered + sessions that left unanswered after waiting more than "
        f"{t.service_level_s:g} s). Occupancy: chat-seconds held over the capacity "
        f"({escape(_slots(fig))}) in the hours each agent held a chat; a "
        "chat counts once it has ended. Each event counts in the period it happened in: "
        "arrivals when a customer asked for a human; speed of answer, handling time and "
        "ratings when the chat was answered; service level when the chat was answered or "
        "the customer left; abandonment over the queue exits of the period.</p></section>",
        "<section><h2>Over the period</h2>" + charts.over_time(
            fig.over_time, fig.period.interval, t.service_level, t.service_level_s,
            fig.no_data_hours) + "</section>",
        f"<section><h2>Agent groups</h2>{_groups(fig)}</section>",
        f"<section><h2>Agents</h2>{_agents(fig)}</section>",
        f"<section><h2>What the figures rest on</h2>{_rests_on(fig)}"
        f"<h2>Gaps</h2>{_gaps(fig)}</section>",
        f"<section><h2>Plan against actual</h2>{_plan(fig)}</section>",
    ]
    return head + "".join(body) + "</main></body></html>"
