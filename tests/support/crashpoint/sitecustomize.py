"""A crash point for subprocess tests: with ``DESK_TEST_CRASH`` set, the process dies
(``os._exit``, as abruptly as ``kill -9``) at the named point of dlt's load step.

Put this folder first on ``PYTHONPATH`` of the child; Python imports ``sitecustomize`` at
start-up. ``DESK_TEST_CRASH=WHEN:JOB`` where JOB is a table name (``session_states``) or a
table name and a job file format (``runs.sql``: the merge job of ``runs``), and WHEN:

* ``before``    as the first matching load job starts, before it writes anything;
* ``after``     once the job has committed in the destination, before dlt records that;
* ``recorded``  once dlt has also written the job's "pending transition" marker.

``DESK_TEST_HOLD=JOB``: that job waits, never finishing, so that the crash comes while
it is outstanding (load jobs run in parallel threads; this fixes their order).
``DESK_TEST_CRASH_NOTE``: a file the crash point appends its name to before it fires, so
the test knows the crash happened there. ``DESK_TEST_CRASH_SIGNAL``: instead of dying, the
job writes that file and waits until the test removes it (having killed the database
server meanwhile), then goes on. A mock is allowed here: the crash point is test
machinery, not product code.
"""

import os

# ``DESK_TEST_TIME_SHIFT_S``: this process's wall clock (``time.time``) moved by that many
# seconds, so that a test needing a day's records can have the simulator (``--today``) and
# the job agree that it is afternoon, whatever the hour. A clock mock: test machinery too.
_SHIFT = float(os.environ.get("DESK_TEST_TIME_SHIFT_S") or 0)
if _SHIFT:
    import time as _time

    _real_time, _real_time_ns = _time.time, _time.time_ns
    _time.time = lambda: _real_time() + _SHIFT
    _time.time_ns = lambda: _real_time_ns() + int(_SHIFT * 1e9)

_SPEC = os.environ.get("DESK_TEST_CRASH", "")

if _SPEC:
    import threading

    _WHEN, _, _JOB = _SPEC.partition(":")
    _HOLD = os.environ.get("DESK_TEST_HOLD", "")
    _EXIT = 137  # what a shell reports for a process killed by SIGKILL

    def _matches(job: object, spec: str = _JOB) -> bool:
        table, _, fmt = spec.partition(".")
        try:
            parsed = job._parsed_file_name  # type: ignore[attr-defined]
        except AttributeError:
            return False
        return bool(table) and parsed.table_name == table and (
            not fmt or parsed.file_format == fmt)

    def _crash() -> None:
        note = os.environ.get("DESK_TEST_CRASH_NOTE")
        if note:
            with open(note, "a") as f:
                f.write(_SPEC + "\n")
        signal_file = os.environ.get("DESK_TEST_CRASH_SIGNAL")
        if signal_file:  # someone else crashes (the test kills the server): wait for it
            import time

            with open(signal_file, "a") as f:
                f.write(_SPEC + "\n")
            while os.path.exists(signal_file):
                time.sleep(0.05)
            return
        os._exit(_EXIT)

    from dlt.common.destination import client as _client

    _run_managed = _client.RunnableLoadJob.run_managed
    _release = _client.RunnableLoadJob._release

    def run_managed(self, job_client, done_event, /):  # type: ignore[no-untyped-def]
        if _matches(self, _HOLD):
            threading.Event().wait()  # until the crash ends the process
        if _WHEN == "before" and _matches(self):
            _crash()
        return _run_managed(self, job_client, done_event)

    def _release_with_crash(self, next_state):  # type: ignore[no-untyped-def]
        # run() has returned and the job's connection is closed: the data is committed.
        if _WHEN == "after" and next_state == "completed" and _matches(self):
            _crash()
        _release(self, next_state)
        if _WHEN == "recorded" and next_state == "completed" and _matches(self):
            _crash()

    _client.RunnableLoadJob.run_managed = run_managed
    _client.RunnableLoadJob._release = _release_with_crash

# ``DESK_TEST_CRASH=retire:``: the job dies while retiring loaded spool segments, after
# deleting the first (their load is recorded; the rest are loaded again next run).
if _SPEC.startswith("retire:"):
    from tencent_desk.intake import spool as _spool

    def _retire_then_crash(paths):  # type: ignore[no-untyped-def]
        _spool.Path(paths[0]).unlink()
        _crash()

    _spool.retire = _retire_then_crash
    # where the job calls it (imported by name, maybe before this ran)
    from tencent_desk.job import event_load as _event_load

    _event_load.retire = _retire_then_crash
