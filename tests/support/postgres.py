"""A real PostgreSQL server on loopback for the tests, started from the machine's own
binaries (``initdb``, ``pg_ctl``) in a throw-away folder and stopped at the end.

``DESK_TEST_POSTGRES`` (a ``postgresql://`` URL) points the tests at a server that is
already running instead. PostgreSQL refuses to run as root, so as root the server runs as
the ``postgres`` user of the image.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

PASSWORD = "desk-test-pw"  # a throw-away server on loopback; the tests check it stays secret
USER = "desk"


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    user: str
    password: str
    database: str
    # pg_ctl "stop" (immediate), "start", or "kill9" (SIGKILL to the server and its
    # backends) for a server started here; None for a given one
    ctl: Callable[[str], None] | None = field(default=None, compare=False, repr=False)

    def url(self, database: str | None = None, password: str | None = None) -> str:
        pw = self.password if password is None else password
        return (f"postgresql://{self.user}:{pw}@{self.host}:{self.port}/"
                f"{database or self.database}")

    def env(self, database: str | None = None) -> dict[str, str]:
        """dlt's spelling of these credentials, for a child process."""
        return {"DESTINATION__POSTGRES__CREDENTIALS": self.url(database)}

    def create_database(self, name: str) -> str:
        """A fresh database on this server (one per test keeps tests apart); its URL."""
        import psycopg2

        con = psycopg2.connect(self.url("postgres"))
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            con.close()
        return self.url(name)


def _binaries() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found: install "
                           "postgresql, or set DESK_TEST_POSTGRES to a running server's URL")
    return candidates[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running(private: bool = False, auth: str = "scram-sha-256",
            durable: bool = False) -> Iterator[Server]:
    """A server for the length of the block: the given one, or one started here (always
    with ``private``: one a test may stop and start, or with an ``auth`` method of its own,
    e.g. ``trust``: no password asked). ``durable``: commits survive a kill -9, as on any
    real server (the others run with fsync and synchronous_commit off, for speed)."""
    own = private or auth != "scram-sha-256"
    given = None if own else os.environ.get("DESK_TEST_POSTGRES")
    if given:
        from urllib.parse import urlparse

        u = urlparse(given)
        yield Server(u.hostname or "127.0.0.1", u.port or 5432, u.username or USER,
                     u.password or "", (u.path or "/postgres").lstrip("/") or "postgres")
        return
    bin_dir = _binaries()
    as_root = os.geteuid() == 0
    run_as = ["runuser", "-u", "postgres", "--"] if as_root else []
    top = Path(tempfile.mkdtemp(prefix="desk-pg-"))
    data, pwfile = top / "data", top / "pw"
    pwfile.write_text(PASSWORD)
    if as_root:
        owner = pwd.getpwnam("postgres")
        for p in (top, pwfile):
            os.chown(p, owner.pw_uid, owner.pw_gid)
    port = _free_port()

    def pg(*args: str) -> None:
        subprocess.run([*run_as, *args], check=True, capture_output=True, cwd=top)

    pg(str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--pwfile", str(pwfile),
       "-A", auth, "-E", "UTF8", "--no-instructions")
    # fsync off: a test server's durability is not under test, its speed is a cost
    opts = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={top}"
    if not durable:
        opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"

    def ctl(action: str) -> None:
        if action == "kill9":  # the postmaster and every backend, as a crash would
            _kill9(data)
            return
        more = ["-l", str(top / "log"), "-o", opts] if action == "start" else [
            "-m", "immediate"]
        pg(str(bin_dir / "pg_ctl"), "-D", str(data), *more, "-w", action)

    ctl("start")
    try:
        yield Server("127.0.0.1", port, USER, PASSWORD, "postgres", ctl)
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            ctl("stop")
        shutil.rmtree(top, ignore_errors=True)


def _kill9(data: Path) -> None:
    """SIGKILL the postmaster of ``data`` and its children; its pid file is left, as after
    a crash (``pg_ctl start`` copes with that)."""
    import signal
    import time

    pid = int((data / "postmaster.pid").read_text().split()[0])
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(stat.parent.name))
    for victim in (pid, *children):
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{v}").exists() for v in (pid, *children)):
        if time.monotonic() > deadline:
            raise RuntimeError("PostgreSQL did not die")
        time.sleep(0.05)
