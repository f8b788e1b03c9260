"""The receiver (``desk-sessions listen``) under load: durable acknowledged events per
second, acknowledgement latency at a steady 1,000 events/s, and peak RSS over 1,000,000
events. The receiver runs as its own process (as deployed); the sender is a minimal
HTTP/1.1 keep-alive client on raw asyncio streams, so that the sender's CPU (on the same
2-core machine) takes as little as possible from the receiver's.

  .venv/bin/python benchmarks/bench_receiver.py             all three (~6 min)
  .venv/bin/python benchmarks/bench_receiver.py --quick     small sizes (~1 min)

Writes its figures under "## Receiver" in benchmarks/RESULTS.md (the rest is left alone).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from common import DESK, OUT, SDKAPPID

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
DAY_MS = 1_767_571_200_000


def request(port: int, i: int) -> bytes:
    body = json.dumps({
        "CallbackCommand": "Desk.SessionEventNotify", "SessionId": f"bench-{i % 50_000:06d}",
        "Event": "ChatBot.UserSendMsg", "EventTime": DAY_MS + i, "ChannelType": "SDK",
        "ClientUserId": f"user{i % 40_000}", "CustomerServiceId": "@cs_support",
        "MsgKey": f"152_{i}", "IsContactUser": False,
        "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "How to get a refund?"}}],
    }).encode()
    path = (f"/desk/callback?SdkAppid={SDKAPPID}&CallbackCommand=Desk.SessionEventNotify"
            f"&contenttype=json&ClientIP=127.0.0.1&OptPlatform=Web&RequestID=bench-{i:08d}")
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: "
            f"application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> int:
    writer.write(data)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    await reader.readexactly(length)
    return status


async def flood(port: int, first: int, n: int, connections: int) -> tuple[float, int]:
    """Send n events as fast as ``connections`` keep-alive connections allow."""
    counter = iter(range(first, first + n))
    ok = 0

    async def conn() -> None:
        nonlocal ok
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in counter:
            status = await _one(reader, writer, request(port, i))
            ok += status == 200  # after the await: += would read ok before it
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(conn() for _ in range(connections)))
    return time.perf_counter() - t0, ok


async def paced(port: int, first: int, rate: float, seconds: float) -> list[float]:
    """Send at a steady ``rate``; each event's acknowledgement latency in ms."""
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(64):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []

    async def send(i: int) -> None:
        reader, writer = await pool.get()
        t = time.perf_counter()
        if await _one(reader, writer, request(port, i)) == 200:
            latencies.append((time.perf_counter() - t) * 1000)
        pool.put_nowait((reader, writer))

    tasks, t0 = [], time.perf_counter()
    for k in range(int(rate * seconds)):
        delay = t0 + k / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(first + k)))
    await asyncio.gather(*tasks)
    return latencies


def _proc(pid: int) -> tuple[float, float]:
    """(CPU seconds, peak RSS MB) of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    hwm = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text()
               .splitlines() if line.startswith("VmHWM:")) / 1024
    return cpu, hwm


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    n_flood, n_total = (20_000, 100_000) if args.quick else (60_000, 1_000_000)
    OUT.mkdir(parents=True, exist_ok=True)
    db = OUT / "receiver.duckdb"
    rows: list[tuple[str, str, str, str]] = []
    with common._server([DESK, "listen", "--database", str(db), "--log-level", "WARNING"],
                        "receiver", None) as rx:
        port = int(rx.url.rsplit(":", 1)[1])
        asyncio.run(flood(port, 0, 2000, 32))  # warm-up
        cpu0, _ = _proc(rx.proc.pid)
        wall, ok = asyncio.run(flood(port, 2000, n_flood, 64))
        cpu1, _ = _proc(rx.proc.pid)
        assert ok == n_flood, f"{n_flood - ok} events not acknowledged"
        rate = n_flood / wall
        per_core = n_flood / max(cpu1 - cpu0, 1e-9)
        rows += [("durable acknowledged events/s (64 connections, wall)", f"{rate:,.0f}",
                  ">= 3000", "yes" if rate >= 3000 else "NO"),
                 ("events per receiver CPU-second (one core)", f"{per_core:,.0f}",
                  ">= 3000", "yes" if per_core >= 3000 else "NO")]
        print(f"flood: {rate:.0f}/s wall, {per_core:.0f}/CPU-s", flush=True)
        lat = asyncio.run(paced(port, 2000 + n_flood, 1000.0, 10 if args.quick else 30))
        p99 = statistics.quantiles(lat, n=100)[98]
        rows += [("ack latency p50 at 1,000 events/s (ms)",
                  f"{statistics.median(lat):.2f}", "", ""),
                 ("ack latency p99 at 1,000 events/s (ms)", f"{p99:.2f}", "<= 50",
                  "yes" if p99 <= 50 else "NO")]
        print(f"latency: p99 {p99:.2f} ms over {len(lat)} events", flush=True)
        sent = 2000 + n_flood + len(lat)
        samples = []
        while sent < n_total:
            step = min(100_000, n_total - sent)
            asyncio.run(flood(port, sent, step, 64))
            sent += step
            samples.append((sent, _proc(rx.proc.pid)[1]))
            print(f"  {sent:,} events, peak RSS {samples[-1][1]:.1f} MB", flush=True)
            for seg in (db.parent / (db.name + ".spool")).glob("sealed-*"):
                seg.unlink()  # as the job retires them; disk, not the receiver, is bounded
        peak = samples[-1][1]
        first = samples[0][1]
        rows += [(f"peak RSS over {n_total:,} events (MB)", f"{peak:.1f}", "<= 200",
                  "yes" if peak <= 200 else "NO"),
                 (f"peak RSS growth from {samples[0][0]:,} to {n_total:,} events",
                  f"{peak / first:.3f}x", "", "")]
    print("\n".join(" | ".join(r) for r in rows))
    if not args.no_write:
        write(rows, quick=args.quick)
    return 0


def write(rows: list[tuple[str, str, str, str]], *, quick: bool) -> None:
    machine = common.machine()
    section = "\n".join([
        "## Receiver", "",
        f"`benchmarks/bench_receiver.py{' --quick' if quick else ''}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine.get('cpu', '?')}, "
        f"{machine.get('cores', '?')} cores (shared: the sender runs on the same machine). "
        "`desk-sessions listen` in its own process, every event fsync'ed (group commit) "
        "before its acknowledgement; the sender is raw HTTP/1.1 keep-alive on loopback.", "",
        "| metric | value | goal | met |", "|---|---:|---|---|",
        *(f"| {m} | {v} | {g} | {ok} |" for m, v, g, ok in rows), ""])
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    text = re.sub(r"\n## Receiver\n.*?(?=\n## |\Z)", "", text, flags=re.S).rstrip("\n")
    RESULTS.write_text(text + "\n\n" + section)


if __name__ == "__main__":
    sys.exit(main())
