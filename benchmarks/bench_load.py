"""Worker: normalize and load session_states rows into DuckDB, two ways.

* project path: answers -> ``rows.to_table`` (Arrow, in the job's batch size) -> dlt
  extract / normalize / load;
* dict path: the same answers -> one plain dict per row (what a dlt user writes) -> dlt.

The answers are synthetic (built before the clock starts) with the realistic mix of a
poll: mostly ended sessions, some in each live state, a few errors.
``python benchmarks/bench_load.py '{"arrow_rows": N, "dict_rows": M}'`` prints one JSON line.
"""

from __future__ import annotations

import gc
import json
import random
import shutil
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import dlt
from common import OUT
from tencent_desk.api import codes, states
from tencent_desk.api.client import Answer, Key
from tencent_desk.core import settings
from tencent_desk.job import rows

_LIVE = [("Chatbot", None), ("Queuing", None), ("Queueing", None),
         ("WaitingForAgentAnswering", "agent03@example.com"), ("Agent", "agent05@example.com"),
         ("Not in session", None), ("NotInSession", None)]


def make_answers(n: int, seed: int = 3) -> list[Answer]:
    rng = random.Random(seed)
    t0 = 1_767_603_600.0
    out = []
    for i in range(n):
        sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        key = Key(session_id=sid) if i % 5 else Key(client_user_id=f"user{i % 9973}",
                                                      customer_service_id="@cs_support")
        u = rng.random()
        rid = f"Id-{rng.getrandbits(128):032x}-O-Seq-{i + 1}"
        if u < 0.80:
            a = Answer(key, 141005, codes.classify(141005), "session does not exist or has "
                       "ended", session_id=key.session_id, request_id=rid)
        elif u < 0.995:
            raw, agent = _LIVE[i % len(_LIVE)]
            a = Answer(key, 0, codes.classify(0), "", session_id=sid, raw_state=raw,
                       agent_id=agent, request_id=rid)
        else:
            a = Answer(key, 141002, codes.classify(141002), "internal error", request_id=rid)
        a.attempts = 1
        a.latency_ms = 30 + rng.random() * 60
        a.answered_at = t0 + i * 0.001
        out.append(a)
    return out


def as_dicts(answers: list[Answer], run_id: str):  # type: ignore[no-untyped-def]
    """What a dlt user would yield: one dict per answer, the same columns as to_table."""
    for a in answers:
        key = a.key
        state = rows.state_of(a)
        yield {
            "run_id": run_id,
            "session_id": a.session_id if a.code == 0 else key.session_id,
            "client_user_id": key.client_user_id,
            "customer_service_id": key.customer_service_id,
            "key_type": "session" if key.session_id else "pair",
            "state": state,
            "raw_state": a.raw_state,
            "agent_id": a.agent_id if state in states.WITH_AGENT else None,
            "error_code": a.code,
            "error_info": a.error_info or None,
            "request_id": a.request_id,
            "polled_at": datetime.fromtimestamp(a.answered_at, UTC),
            "latency_ms": round(a.latency_ms, 3),
            "attempts": a.attempts,
        }


def arrow_batches(answers: list[Answer], run_id: str, size: int):  # type: ignore[no-untyped-def]
    tally: Counter[str] = Counter()
    for i in range(0, len(answers), size):
        yield rows.to_table(answers[i:i + size], run_id, tally)


def load(name: str, data, batch: int,  # type: ignore[no-untyped-def]
         file_format: str | None = None) -> dict:
    work = OUT / f"load_{name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    pipeline = dlt.pipeline(pipeline_name=f"bench_load_{name}",
                            destination=dlt.destinations.duckdb(str(work / "x.duckdb")),
                            dataset_name="tencent_desk", pipelines_dir=str(work / "pl"))
    resource = dlt.resource(data, name="session_states", write_disposition="append")
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    pipeline.extract(resource, loader_file_format=file_format)
    t1 = time.perf_counter()
    pipeline.normalize()
    t2 = time.perf_counter()
    pipeline.load()
    t3 = time.perf_counter()
    cpu = time.process_time() - c0
    with pipeline.sql_client() as client:
        n = client.execute_sql("SELECT count(*) FROM session_states")[0][0]
    return {"rows": int(n), "extract_s": t1 - t0, "normalize_s": t2 - t1, "load_s": t3 - t2,
            "total_s": t3 - t0, "cpu_s": cpu}


def main() -> None:
    args = json.loads(sys.argv[1])
    batch = args.get("batch", settings.DEFAULT_BATCH_SIZE)
    n_arrow, n_dict = args["arrow_rows"], args["dict_rows"]
    answers = make_answers(max(n_arrow, n_dict, args.get("dict_parquet_rows", 0)))
    # Warm both paths on a few rows (first-use imports, e.g. pyarrow importing pandas).
    load("warm_arrow", arrow_batches(answers[:100], "warm", batch), batch)
    load("warm_dict", as_dicts(answers[:100], "warm"), batch)
    out = {"batch": batch}
    out["arrow"] = load("arrow", arrow_batches(answers[:n_arrow], "bench", batch), batch)
    out["dict"] = load("dict", as_dicts(answers[:n_dict], "bench"), batch)
    if args.get("dict_parquet_rows"):
        out["dict_parquet"] = load("dict_parquet", as_dicts(
            answers[:args["dict_parquet_rows"]], "bench"), batch, "parquet")
    if args.get("arrow_same_size"):
        out["arrow_same"] = load("arrow_same", arrow_batches(answers[:n_dict], "bench", batch),
                                 batch)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
