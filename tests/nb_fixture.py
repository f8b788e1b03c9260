"""The database the notebooks run against in tests: one function, ``build_fixture_db``.

For now it is made by hand: a small seeded simulation of a chat desk (arrivals, chatbot,
queue, 3 agents with 3 chats each, abandonment) polled every 5 minutes for four hours, in the
pipeline's schema, with the simulator's truth table. One run failed and the poller was down
for a quarter of an hour, so the notebooks meet a failed run and a gap.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

DATASET = "tencent_desk"
TRUTH_SCHEMA = "desk_simulator"
_START = datetime(2026, 1, 5, 8, tzinfo=UTC)
_RAW = {"chatbot": "Chatbot", "queuing": "Queueing",
        "waiting_for_agent": "WaitingForAgentAnswering", "agent": "Agent"}
_STATES = ("chatbot", "queuing", "waiting_for_agent", "agent", "not_in_session", "ended",
           "unknown", "error")


def _simulate(rng: random.Random) -> list[tuple[str, str, str | None, float, float | None]]:
    """Segments (session, state, agent, start s, end s or None) of 4.5 hours, 1-second ticks."""
    agents = {f"agent_{n}@desk": 3 for n in range(1, 4)}  # agent -> free chat slots
    segments: list[list] = []
    sessions: dict[str, dict] = {}
    queue: list[str] = []
    horizon, arrivals_until = 16_200, 14_400

    def move(sid: str, state: str | None, t: int, agent: str | None = None) -> None:
        s = sessions[sid]
        if s["segment"] is not None:
            s["segment"][4] = t
        s["segment"] = None if state is None else [sid, state, agent, t, None]
        if state is None:
            del sessions[sid]
        else:
            segments.append(s["segment"])

    for t in range(horizon):
        # Demand rises to a peak in the second hour, then eases.
        rate = (60 if 3600 <= t < 9000 else 24) / 3600 if t < arrivals_until else 0.0
        if rng.random() < rate:
            sid = str(uuid.UUID(int=rng.getrandbits(128)))
            sessions[sid] = {"segment": None, "until": t + rng.expovariate(1 / 90), "agent": None}
            move(sid, "chatbot", t)
        for sid, s in list(sessions.items()):
            state = s["segment"][1]
            if state == "chatbot" and t >= s["until"]:
                if rng.random() < 0.8:  # asks for a human
                    s["until"] = t + rng.expovariate(1 / 600)  # patience
                    queue.append(sid)
                    move(sid, "queuing", t)
                else:
                    move(sid, None, t)
            elif state == "queuing" and t >= s["until"]:
                queue.remove(sid)
                move(sid, None, t)  # gave up
            elif state == "waiting_for_agent" and t >= s["until"]:
                s["until"] = t + rng.expovariate(1 / 900)
                move(sid, "agent", t, s["agent"])
            elif state == "agent" and t >= s["until"]:
                agents[s["agent"]] += 1
                move(sid, None, t)
        while queue and any(agents.values()):
            agent = max(agents, key=lambda a: (agents[a], a))
            agents[agent] -= 1
            sid = queue.pop(0)
            sessions[sid].update(agent=agent, until=t + rng.expovariate(1 / 20))
            move(sid, "waiting_for_agent", t, agent)
    return [tuple(s) for s in segments]


def build_fixture_db(path: Path) -> Path:
    """Write the runs, session_states and simulator truth tables to a DuckDB file at ``path``."""
    rng = random.Random(20260105)
    segments = _simulate(rng)
    by_session: dict[str, list[tuple]] = {}
    for seg in segments:
        by_session.setdefault(seg[0], []).append(seg)
    users = {sid: f"user_{n}" for n, sid in enumerate(by_session)}

    runs, rows = [], []
    down = range(165 * 60, 180 * 60)  # 10:45-11:00: the poller was down
    for k in range(49):
        t = k * 300
        if t in down:
            continue
        run_id = f"run-{k:03d}"
        started = _START + timedelta(seconds=t)
        status = "failed" if k == 19 else "complete"
        counts = dict.fromkeys(_STATES, 0)
        keys = 0
        for sid, segs in by_session.items():
            first, end = segs[0][3], segs[-1][4]
            # A session is polled from its start until the first run after it ended.
            if first > t or (end is not None and end < t - 300):
                continue
            keys += 1
            live = [s for s in segs if s[3] <= t and (s[4] is None or t < s[4])]
            if rng.random() < 0.01:
                state, raw, agent, code = "error", None, None, 70500
            elif live:
                state, agent, code = live[0][1], live[0][2], 0
                raw = _RAW[state]
            else:
                state, raw, agent, code = "ended", None, None, 141005
            counts[state] += 1
            rows.append((
                run_id, sid, users[sid], "@desk_cs", state, raw, agent, code,
                "" if code == 0 else "session ended" if code == 141005 else "internal error",
                f"req-{k}-{keys}", started + timedelta(milliseconds=20 * keys),
                rng.uniform(20, 80), 1 if code != 70500 else 6,
            ))
        runs.append((
            run_id, started, started + timedelta(seconds=1 + keys * 0.02), status, keys,
            keys, 0, counts["error"], keys + counts["error"] * 5, counts["error"] * 5, 0,
            keys / (1 + keys * 0.02), 100.0, "singapore",
            *(counts[s] for s in _STATES),
        ))

    con = duckdb.connect(str(path))
    con.execute(f"""
        CREATE SCHEMA {DATASET};
        CREATE TABLE {DATASET}.runs (
            run_id VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, status VARCHAR,
            keys BIGINT, rows BIGINT, rejects BIGINT, errors BIGINT, calls BIGINT,
            retries BIGINT, throttled BIGINT, calls_per_second DOUBLE, max_qps DOUBLE,
            region VARCHAR, n_chatbot BIGINT, n_queuing BIGINT, n_waiting_for_agent BIGINT,
            n_agent BIGINT, n_not_in_session BIGINT, n_ended BIGINT, n_unknown BIGINT,
            n_error BIGINT);
        CREATE TABLE {DATASET}.session_states (
            run_id VARCHAR, session_id VARCHAR, client_user_id VARCHAR,
            customer_service_id VARCHAR, state VARCHAR, raw_state VARCHAR, agent_id VARCHAR,
            error_code BIGINT, error_info VARCHAR, request_id VARCHAR, polled_at TIMESTAMPTZ,
            latency_ms DOUBLE, attempts BIGINT);
        CREATE SCHEMA {TRUTH_SCHEMA};
        CREATE TABLE {TRUTH_SCHEMA}.truth (
            session_id VARCHAR, client_user_id VARCHAR, customer_service_id VARCHAR,
            state VARCHAR, agent_id VARCHAR, started_at TIMESTAMPTZ, ended_at TIMESTAMPTZ);
    """)
    con.executemany(f"INSERT INTO {DATASET}.runs VALUES ({', '.join('?' * 22)})", runs)
    con.executemany(f"INSERT INTO {DATASET}.session_states VALUES ({', '.join('?' * 13)})", rows)
    con.executemany(
        f"INSERT INTO {TRUTH_SCHEMA}.truth VALUES (?, ?, '@desk_cs', ?, ?, ?, ?)",
        [
            (sid, users[sid], state, agent, _START + timedelta(seconds=t0),
             None if t1 is None else _START + timedelta(seconds=t1))
            for sid, state, agent, t0, t1 in segments
        ],
    )
    con.close()
    return path
