"""Summaries of py-spy's raw (folded) stacks: where the CPU of a phase went."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

# (label, pattern on a frame's "function (file:line)" text); the first match wins for
# the self-time layer of a stack's leaf frame.
LAYERS = [
    ("this project (pipelines/tencent_desk)", r"\(pipelines/"),
    ("httpx-aiohttp bridge", r"\(httpx_aiohttp/"),
    ("httpx (models, URL parsing, client)", r"\(httpx/"),
    ("aiohttp / yarl / multidict", r"\((aiohttp|yarl|multidict|propcache)/"),
    ("asyncio / uvloop (event loop, tasks, locks)", r"\((asyncio|uvloop)/"),
    ("json", r"\(json/"),
    ("dlt / pyarrow / duckdb", r"\((dlt|pyarrow|duckdb)/"),
    ("other stdlib (email, http.cookiejar, urllib, ...)", r"\((email|http|urllib|contextlib|"
     r"ipaddress|typing|enum|re|_collections_abc|<frozen[^)]*>)"),
]

# Inclusive shares of notable operations (a stack counts once if any frame matches).
OPERATIONS = [
    ("httpx build_request (URL parse, headers)", r"BaseClient\.build_request"),
    ("  of which httpx URL parse/validate", r"httpx/_urlparse\.py"),
    ("httpx Response building + reading", r"httpx/_models\.py.*Response\.|Response\.(aread|"
     r"aiter)"),
    ("httpx-aiohttp handle_async_request", r"handle_async_request \(httpx_aiohttp"),
    ("sender post (transport_aiohttp.py)",
     r"Sender\.post \(pipelines/tencent_desk/api/transport_aiohttp\.py"),
    ("aiohttp ClientSession._request", r"ClientSession\._request"),
    ("cookie jar handling", r"[Cc]ookie"),
    ("rate limiter acquire", r"AdaptiveRateLimiter\.acquire"),
    ("answer parse (json + classify)", r"\bparse \(pipelines/tencent_desk/api/client\.py"),
    ("Poller / to_table / dlt extract", r"to_table|Poller|dlt/extract"),
]


def load(path: str | Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in Path(path).read_text(errors="replace").splitlines():
        head, _, count = line.rpartition(" ")
        if head and count.isdigit():
            stacks.append((head.split(";"), int(count)))
    return stacks


def summarize(path: str | Path, top: int = 12) -> dict:
    stacks = load(path)
    total = sum(c for _, c in stacks) or 1
    layers: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    ops: Counter[str] = Counter()
    for frames, count in stacks:
        leaf = frames[-1]
        leaves[re.sub(r":\d+\)$", ")", leaf)] += count
        for label, pattern in LAYERS:
            if re.search(pattern, leaf):
                layers[label] += count
                break
        else:
            layers["other (C builtins, sockets, ...)"] += count
        text = ";".join(frames)
        for label, pattern in OPERATIONS:
            if re.search(pattern, text):
                ops[label] += count
    share = {k: v / total for k, v in layers.most_common()}
    return {
        "samples": total,
        "self_by_layer": share,
        "inclusive_ops": {label: ops[label] / total for label, _ in OPERATIONS if ops[label]},
        "top_leaves": [(k, v / total) for k, v in leaves.most_common(top)],
    }


def render(summary: dict) -> str:
    lines = [f"py-spy samples: {summary['samples']} (only busy time is sampled)", "",
             "Self time by layer:"]
    lines += [f"  {v:6.1%}  {k}" for k, v in summary["self_by_layer"].items()]
    lines += ["", "Inclusive time of notable operations:"]
    lines += [f"  {v:6.1%}  {k}" for k, v in summary["inclusive_ops"].items()]
    lines += ["", "Top functions (self time):"]
    lines += [f"  {v:6.1%}  {k}" for k, v in summary["top_leaves"]]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(render(summarize(sys.argv[1])))
