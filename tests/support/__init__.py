"""Helpers for the reliability and security tests (faults, crashes, destination, seeds,
secrets).

dlt sends anonymous usage telemetry to dlthub's endpoint from every pipeline unless told
not to; tests talk to loopback only. Set here, at collection (before any test makes a
pipeline in this process), and passed on to every child process the tests start.
"""

import os

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
