"""Shared pieces of the benchmarks: the simulator in its own process, seeds, child rusage,
machine description. Everything stays on loopback and is bounded in time."""

from __future__ import annotations

import csv
import datetime as dt
import importlib.metadata
import json
import os
import platform
import random
import resource
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
# Scratch space (git-ignored): one folder per run of run.py, handed to its workers through
# the environment, so that two runs at once do not clobber each other's files.
if "DESK_BENCH_OUT" not in os.environ:
    os.environ["DESK_BENCH_OUT"] = str(
        BENCH / "out" / f"run-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
OUT = Path(os.environ["DESK_BENCH_OUT"])
VENV_BIN = Path(sys.executable).parent
PY = sys.executable
DESK = str(VENV_BIN / "desk-sessions")

SDKAPPID = 1400000042
IDENTIFIER = "administrator"
SECRET_KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"


def env() -> dict[str, str]:
    """The environment of every child: credentials of the simulated app, no proxies."""
    e = {k: v for k, v in os.environ.items()
         if not k.lower().endswith("_proxy") and not k.startswith("SOURCES__")}
    e.update(SOURCES__TENCENT_DESK__SDKAPPID=str(SDKAPPID),
             SOURCES__TENCENT_DESK__IDENTIFIER=IDENTIFIER,
             SOURCES__TENCENT_DESK__SECRET_KEY=SECRET_KEY,
             RUNTIME__LOG_LEVEL="WARNING", PYTHONHASHSEED="0",
             DLT_DATA_DIR=str(OUT / "dlt_data"), DESK_BENCH_OUT=str(OUT))
    return e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Simulator:
    url: str
    proc: subprocess.Popen
    seed_csv: Path | None

    def cpu_seconds(self) -> float:
        """CPU the simulator process has used so far (Linux /proc)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return float("nan")


def simulator(*, rate_limit: float = 0, latency_ms: float = 0, sessions: int = 3000,
              seed_out: bool = False, tag: str = "sim"):
    """``desk-sessions simulate`` in a separate process on a free loopback port."""
    seed_csv = OUT / f"{tag}-seed.csv" if seed_out else None
    cmd = [DESK, "simulate", "--host", "127.0.0.1", "--rate-limit", str(rate_limit),
           "--latency-ms", str(latency_ms), "--sessions", str(sessions),
           "--log-level", "WARNING"]
    if seed_csv:
        cmd += ["--seed-out", str(seed_csv)]
    return _server(cmd, tag, seed_csv)


def independent_api(*, rate_limit: float, latency_ms: float, tag: str = "independent"):
    """benchmarks/independent_api.py (no code shared with the package) on loopback."""
    cmd = [PY, str(Path(__file__).resolve().parent / "independent_api.py"),
           "--rate-limit", f"{rate_limit:g}", "--latency-ms", str(latency_ms)]
    return _server(cmd, tag, None)


@contextmanager
def _server(cmd: list[str], tag: str, seed_csv: Path | None):
    OUT.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(OUT / f"{tag}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([*cmd, "--port", str(port)], env=env(), cwd=OUT, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{tag} exited ({proc.returncode}); see {log.name}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{tag} did not start within 60 s")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        yield Simulator(f"http://127.0.0.1:{port}", proc, seed_csv)
    finally:
        proc.terminate()  # only the process started here, by its handle
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def seed_session_ids(seed_csv: Path) -> list[str]:
    with seed_csv.open(newline="") as f:
        return [r["session_id"] for r in csv.DictReader(f) if r["session_id"]]


def random_ids(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


def write_seed(path: Path, session_ids: list[str]) -> Path:
    with path.open("w", newline="") as f:
        f.write("session_id\n")
        f.writelines(s + "\n" for s in session_ids)
    return path


def _busy_seconds() -> float:
    """Busy CPU seconds of the whole machine, all cores (Linux /proc/stat)."""
    try:
        vals = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return float("nan")
    return (sum(vals) - vals[3] - vals[4]) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Watch:
    """How busy the machine was with work that is not ours while a case ran: other
    processes on a shared machine slow the client down and skew wall-clock figures."""

    def __init__(self, *sims: Simulator) -> None:
        self.sims = sims

    def __enter__(self) -> Watch:
        self.t0, self.busy0, self.own0 = time.perf_counter(), _busy_seconds(), _own_seconds()
        self.sim0 = sum(s.cpu_seconds() for s in self.sims)
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        own = _own_seconds() - self.own0 + sum(s.cpu_seconds() for s in self.sims) - self.sim0
        self.sim_cpu = sum(s.cpu_seconds() for s in self.sims) - self.sim0
        self.foreign_cores = max(0.0, (_busy_seconds() - self.busy0 - own) / self.wall)


@dataclass
class ChildRun:
    returncode: int
    wall_s: float
    cpu_s: float           # user + system of the child, from wait4
    cpu_children_s: float  # the same from the RUSAGE_CHILDREN delta around it (cross-check)
    maxrss_mb: float       # the child's peak RSS
    stdout: str
    stderr: str
    rss_mb: list[tuple[float, float]]  # (seconds since start, RSS MB), sampled
    started_at: float = 0.0            # wall clock (time.time()) when it was started


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        return None
    return None


def run_child(cmd: list[str], *, timeout: float, cwd: Path | None = None,
              extra_env: dict[str, str] | None = None) -> ChildRun:
    """Run a command, measuring its own CPU and peak RSS (wait4 on its pid)."""
    e = env() | (extra_env or {})
    out_path, err_path = OUT / "child.out", OUT / "child.err"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with out_path.open("w") as out, err_path.open("w") as err:
        t0, started_at = time.perf_counter(), time.time()
        proc = subprocess.Popen(cmd, env=e, cwd=cwd or OUT, stdout=out, stderr=err)
        deadline = t0 + timeout
        rss: list[tuple[float, float]] = []
        next_sample = t0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.perf_counter()
            if now > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            if now >= next_sample:
                mb = _rss_mb(proc.pid)
                if mb is not None:
                    rss.append((round(now - t0, 2), round(mb, 1)))
                next_sample = now + 0.1
            time.sleep(0.01)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ChildRun(
        returncode=proc.returncode, wall_s=wall, cpu_s=usage.ru_utime + usage.ru_stime,
        cpu_children_s=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        maxrss_mb=usage.ru_maxrss / 1024.0, stdout=out_path.read_text(),
        stderr=err_path.read_text(), rss_mb=rss, started_at=started_at)


def worker(script: str, args: dict, *, timeout: float) -> dict:
    """Run ``benchmarks/<script>`` with a JSON argument; it prints one JSON line last."""
    run = run_child([PY, str(BENCH / script), json.dumps(args)], timeout=timeout, cwd=OUT)
    if run.returncode != 0:
        raise RuntimeError(f"{script} failed ({run.returncode}): {run.stderr[-2000:]}")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    result["_child"] = {"wall_s": run.wall_s, "cpu_s": run.cpu_s, "maxrss_mb": run.maxrss_mb}
    return result


def machine() -> dict[str, str]:
    cpu = platform.processor() or "?"
    try:
        info = dict(line.split(":", 1) for line in
                    Path("/proc/cpuinfo").read_text().split("\n\n")[0].splitlines()
                    if ":" in line)
        info = {k.strip(): v.strip() for k, v in info.items()}
        cpu = (f"{info.get('model name', cpu)} (family {info.get('cpu family', '?')}, model "
               f"{info.get('model', '?')}, {float(info.get('cpu MHz', 'nan')):.0f} MHz)")
    except (OSError, ValueError):
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    versions = {}
    for p in ("dlt", "httpx", "httpx-aiohttp", "aiohttp", "uvloop", "uvicorn", "httptools",
              "duckdb", "pyarrow", "requests"):
        try:
            versions[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            versions[p] = "-"
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu, "cores": str(os.cpu_count()), "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }
