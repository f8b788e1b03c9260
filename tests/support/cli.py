"""Running the real ``desk-sessions`` command in a child process."""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from .harness import ADMIN, SDKAPPID, SECRET_KEY, closed_port

CLI = str(Path(sys.executable).with_name("desk-sessions"))
ROOT = Path(__file__).resolve().parents[2]


def env(**extra: str) -> dict[str, str]:
    """The environment of a child: ours without dlt/desk settings, plus credentials."""
    out = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESK_"))}
    out.update(RUNTIME__DLTHUB_TELEMETRY="false",  # loopback only: no telemetry to dlthub
               SOURCES__TENCENT_DESK__SDKAPPID=str(SDKAPPID),
               SOURCES__TENCENT_DESK__IDENTIFIER=ADMIN,
               SOURCES__TENCENT_DESK__SECRET_KEY=SECRET_KEY)
    out.update(extra)
    return out


def run_argv(seed: Path, db: Path | str, url: str, pipelines: Path, *more: str) -> list[str]:
    return [CLI, "run", "--seed", str(seed), "--database", str(db), "--api-url", url,
            "--pipelines-dir", str(pipelines), "--max-qps", "2000", "--max-concurrency",
            "8", "--no-progress", *more]


def run(argv: list[str], cwd: Path, timeout: float = 240, prefix: list[str] | None = None,
        **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*(prefix or []), *argv], cwd=cwd, env=env(**extra_env),
                          capture_output=True, text=True, timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("desk-sessions: error:")]


def start_server(argv: list[str], log: IO[str] | int = subprocess.DEVNULL, **extra_env: str
                 ) -> tuple[subprocess.Popen, int]:
    """``argv --port P`` in a child on a free loopback port P, once it accepts connections."""
    port = closed_port()
    proc = subprocess.Popen([*argv, "--port", str(port)], env=env(**extra_env), stdout=log,
                            stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_server(proc)
                raise RuntimeError(f"{' '.join(argv[:2])} did not start") from None
            time.sleep(0.1)


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def failed_in_one_line(proc: subprocess.CompletedProcess, code: int, *words: str) -> str:
    """A run that stopped with ``code``: no traceback anywhere on stderr (a library's own
    log records included: each one line), and its last line the one error line."""
    assert proc.returncode == code, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-5000:]
    lines = proc.stderr.strip().splitlines()
    assert not [line for line in lines if line[:1].isspace()], proc.stderr[-5000:]
    assert lines and lines[-1].startswith("desk-sessions: error:"), proc.stderr[-3000:]
    assert len(error_lines(proc.stderr)) == 1
    for word in words:
        assert word in lines[-1], lines[-1]
    return lines[-1]


def loaded_after(code: str, modules: Iterable[str]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after running ``code``: what an
    import costs every process that makes it."""
    check = f"\nprint(sorted(m for m in {tuple(modules)!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", "import sys\n" + code + check],
                          capture_output=True, text=True, timeout=120, check=True)
    return ast.literal_eval(done.stdout.splitlines()[-1])
