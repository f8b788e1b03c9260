"""Every log record reaches stderr as one line below DEBUG, whichever library logs it and
however (``logger.exception``, a traceback pasted into the message, a warning, a thread
that died); at DEBUG everything as logged. In a child process: the record factory is
process-wide."""

from __future__ import annotations

import subprocess
import sys

from tencent_desk.core import logs

EMIT = r"""
import logging, sys, threading, warnings
from tencent_desk.cli import setup_logging
setup_logging(sys.argv[1])
from dlt.common import logger as dlt_logger
import dlt
dlt.pipeline(pipeline_name="logs_test", destination="duckdb", pipelines_dir=sys.argv[2])
try:
    raise OSError(28, "No space left on device")
except OSError:
    dlt_logger.exception("Transient exception in job x.parquet")   # dlt's own handler
    logging.getLogger("some.library").warning("retrying", exc_info=True)
logging.getLogger("pasted").warning(
    "Job failed with message: Traceback (most recent call last):\n  File \"x\", line 1\n"
    "ValueError: bad")
warnings.warn("a library's deprecation\nsecond line")
t = threading.Thread(target=lambda: 1 / 0, name="worker")
t.start(); t.join()
"""


def emit(level: str, tmp_path) -> list[str]:
    done = subprocess.run([sys.executable, "-c", EMIT, level, str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stderr.strip().splitlines()


def test_below_debug_each_record_is_one_line_with_its_exception(tmp_path) -> None:
    lines = emit("INFO", tmp_path)
    assert len(lines) == 5, lines
    assert not any("Traceback" in line or line[:1].isspace() for line in lines), lines
    dlt_line, library, pasted, warned, thread = lines
    assert "Transient exception in job x.parquet: OSError: [Errno 28] No space left on " \
           "device" in dlt_line and logs.DETAILS in dlt_line
    assert "retrying: OSError: [Errno 28]" in library
    assert pasted.endswith(f"Job failed with message: ValueError: bad {logs.DETAILS}")
    assert "a library's deprecation" in warned and "second line" not in warned
    assert "thread worker stopped: ZeroDivisionError: division by zero" in thread


def test_at_debug_the_tracebacks_are_shown(tmp_path) -> None:
    text = "\n".join(emit("DEBUG", tmp_path))
    assert text.count("Traceback (most recent call last)") >= 4
    assert logs.DETAILS not in text


def test_one_line_keeps_what_matters() -> None:
    assert logs.one_line("plain") == "plain"
    assert logs.one_line("a\nb") == f"a {logs.DETAILS}"
    assert logs.one_line("failed", "Traceback (most recent call last):\n  File x\nE: why\n") \
        == f"failed: E: why {logs.DETAILS}"
