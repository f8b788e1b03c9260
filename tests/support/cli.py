"""Running the real ``desk-sessions`` command in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .harness import ADMIN, SDKAPPID, SECRET_KEY

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
