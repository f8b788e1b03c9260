"""Worker: drive DeskClient.get_many against a running simulator and print one JSON line.

Run by run.py in a fresh process (so this process's CPU is the client's alone):
``python benchmarks/bench_client.py '{"url": ..., "calls": N, ...}'``
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import json
import os
import pstats
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import uvloop
from common import IDENTIFIER, SDKAPPID, SECRET_KEY, random_ids, seed_session_ids
from tencent_desk.api.client import ClientConfig, DeskClient, Key
from tencent_desk.api.usersig import UserSigProvider


def keys_for(args: dict) -> list[Key]:
    n = args["calls"]
    known = seed_session_ids(Path(args["seed_csv"])) \
        if args.get("seed_csv") else []
    ids = (known * (n // max(len(known), 1) + 1))[:n] if known else random_ids(n)
    return [Key(session_id=s) for s in ids]


async def fetch(args: dict, keys: list[Key]) -> dict:
    config = ClientConfig(sdkappid=SDKAPPID, identifier=IDENTIFIER,
                          base_urls=(args["url"],), max_qps=args["max_qps"],
                          max_concurrency=args["max_concurrency"],
                          transport=args.get("transport", "aiohttp"))
    sigs = UserSigProvider(SDKAPPID, IDENTIFIER, secret_key=SECRET_KEY)
    async with DeskClient(config, sigs) as client:
        # Warm-up outside the measurement: connections, first UserSig, imports on first use.
        warm = min(args.get("warmup", 0), len(keys))
        if warm:
            await client.get_many(keys[:warm])
            client.stats = type(client.stats)()
            client.limiter = type(client.limiter)(config.max_qps)
            # Let the server's one-second window forget the warm-up calls.
            await asyncio.sleep(1.1)
        profiler = cProfile.Profile() if args.get("profile") == "cprofile" else None
        spy = PySpy(args["pyspy_out"]) if args.get("profile") == "pyspy" else None
        c0, t0 = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        answers = await client.get_many(keys[warm:])
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        if spy:
            spy.stop()
        stats = client.stats
    codes = Counter(a.code for a in answers)
    throttled_final = sum(v for k, v in codes.items() if 60000 <= k < 61000)
    out = {
        "answers": len(answers), "calls": stats.calls, "retries": stats.retries,
        "throttled_attempts": stats.throttled, "throttled_final": throttled_final,
        "throttled_share": stats.throttled / max(stats.calls, 1),
        "calls_per_second": stats.calls_per_second(),
        "span_s": (stats.last_answer or 0) - (stats.first_call or 0),
        "wall_s": wall, "cpu_s": cpu, "cpu_ms_per_call": 1000 * cpu / max(stats.calls, 1),
        "codes": {str(k): v for k, v in codes.most_common(8)},
        "limiter_cuts": client.limiter.cuts,
        "errors": sum(v for k, v in codes.items() if k not in (0, 141005)),
        "latency_ms": percentiles([a.latency_ms for a in answers]),
    }
    if profiler:
        buf = io.StringIO()
        st = pstats.Stats(profiler, stream=buf)
        st.sort_stats("tottime").print_stats(args.get("profile_top", 25))
        out["profile"] = buf.getvalue()
    return out


class PySpy:
    """py-spy sampling this very process (non-blocking) while it lives; raw folded stacks."""

    def __init__(self, out: str, rate: int = 250) -> None:
        exe = str(Path(sys.executable).parent / "py-spy")
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(os.getpid()), "--format", "raw", "--rate", str(rate),
             "--nonblocking", "--output", out], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # let it attach before the measured phase

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    v = sorted(values)
    return {f"p{q}": round(v[min(len(v) - 1, int(len(v) * q / 100))], 1) for q in (50, 90, 99)}


def main() -> None:
    args = json.loads(sys.argv[1])
    keys = keys_for(args)
    runner = uvloop.run if args.get("loop", "uvloop") == "uvloop" else asyncio.run
    result = runner(fetch(args, keys))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
