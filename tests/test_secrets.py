"""Secrets: the secret key and every UserSig made from it never reach anything written.

The real CLI runs in a child process with a known secret key, at ``--log-level DEBUG``
(and dlt's own log at DEBUG),
against the simulator with faults (so transport errors, retries and their messages
happen), with HOME and TMPDIR inside the test's folder. Then every byte it wrote is
searched: stdout, stderr, the dlt pipelines folder (state, trace, schemas, load packages:
parquet and gzip opened), the DuckDB file (raw, and every text value of every table, as
DuckDB compresses strings), the journal; and exception texts and the ``repr`` of the
config and client objects. Searched for: the key (as is, base64, hex), every UserSig the
simulator received (as is and URL-quoted) and its HMAC (``TLS.sig``, standard and URL
base64); and any ``usersig=`` value must be masked or not decode as a UserSig.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import duckdb
import pyarrow.parquet as pq
import pytest
from tencent_desk.api import usersig
from tencent_desk.api.client import ClientConfig, DeskClient, FatalError, Key, base_urls
from tencent_desk.api.usersig import UserSigProvider
from tencent_desk.cli import main
from tencent_desk.core import redact
from tencent_desk.core.errors import ConfigError, JobError
from tencent_desk.core.serving import _check_host
from tencent_desk.run.runner import RunOptions, run
from tencent_desk.simulator import SimulatorConfig, serve_in_thread

from .support import cli, harness
from .support.harness import ADMIN, SDKAPPID, SECRET_KEY

USERSIG_PARAM = re.compile(rb"usersig=([^&\s'\"<>)\\]+)", re.IGNORECASE)


def needles(sigs: list[str]) -> dict[str, bytes]:
    """Every form of a secret worth searching for, by name."""
    out = {"key": SECRET_KEY.encode(),
           "key-base64": base64.b64encode(SECRET_KEY.encode()),
           "key-hex": SECRET_KEY.encode().hex().encode()}
    for i, sig in enumerate(sigs):
        out[f"usersig{i}"] = sig.encode()
        out[f"usersig{i}-quoted"] = quote(sig, safe="").encode()
        mac = usersig.decode(sig)["TLS.sig"]
        out[f"usersig{i}-hmac"] = mac.encode()
        out[f"usersig{i}-hmac-url"] = mac.translate(str.maketrans("+/=", "*-_")).encode()
    return out


def texts_of(path: Path) -> list[bytes]:
    """The bytes of a file, plus what it holds where it is compressed."""
    raw = path.read_bytes()
    out = [raw]
    if raw[:2] == b"\x1f\x8b":
        out.append(gzip.decompress(raw))
    if raw[:4] == b"PAR1":
        out.append(pq.read_table(path).to_pandas().to_csv().encode())
    if raw[8:12] == b"DUCK":
        out.append(duckdb_text(path))
    return out


def duckdb_text(path: Path) -> bytes:
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute("SELECT table_schema, table_name FROM information_schema.tables"
                             ).fetchall()
        chunks = []
        for schema, table in tables:
            rows = con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
            chunks.append(repr(rows).encode())
        return b"\n".join(chunks)
    finally:
        con.close()


def search(blobs: dict[str, list[bytes]], secrets: dict[str, bytes]) -> list[str]:
    found = []
    for where, texts in blobs.items():
        for text in texts:
            for name, needle in secrets.items():
                if needle in text:
                    found.append(f"{name} in {where}")
            for match in USERSIG_PARAM.finditer(text):
                value = match.group(1).decode(errors="replace")
                if value not in ("<redacted>", "%3Credacted%3E") and usersig.decode(
                        value) is not None:
                    found.append(f"a decodable usersig= in {where}")
    return found


@pytest.fixture(scope="module")
def pop():
    return harness.population(seed=5, sessions=600)


@pytest.mark.parametrize("command", ["run", "records"])
def test_a_debug_run_with_faults_writes_no_secret(tmp_path, pop, command):
    t = pop.config.day_start + harness.MODEL_HOUR * 3600
    seed_keys = harness.pick_keys(pop, t, live=30, other=40, pairs=10)
    seed = harness.write_seed(tmp_path / "seed.csv", seed_keys.rows)
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    db = tmp_path / "desk.duckdb"
    # about 12 % of calls; the child retries with production backoff (0.5 s and up)
    faults = dict(internal_error=0.02, http_502=0.02, truncated=0.02, non_json=0.02,
                  drop=0.02, slow=0.01, slow_s=2.0, chaos=0.01)
    with harness.serve(pop, **faults) as (app, url):
        argv = cli.run_argv(seed, db, url, tmp_path / "dlt", "--log-level", "DEBUG")
        if command == "records":  # the session records of the simulated morning
            day = datetime.fromtimestamp(pop.config.day_start, UTC)
            argv = [argv[0], "records", *argv[4:], "--since", day.isoformat(),
                    "--until", (day + timedelta(hours=10)).isoformat()]
        proc = cli.run(argv, tmp_path, HOME=str(home), TMPDIR=str(tmp),
                       SOURCES__TENCENT_DESK__TIMEOUT="1", RUNTIME__LOG_LEVEL="DEBUG")
    assert proc.returncode == 0, proc.stderr[-2000:]
    # (the records of a morning are a dozen calls: fewer faults, the same code paths)
    assert sum(app.stats.faults.values()) >= (3 if command == "run" else 1)
    sigs = sorted(app.sigs)
    assert sigs and all(usersig.verify(s, SDKAPPID, ADMIN, SECRET_KEY).ok for s in sigs)
    # dlt's DEBUG log (config resolution, load jobs) was on: a place a secret could go
    assert "[DEBUG]" in proc.stderr
    # and nothing left for a host that is not loopback (dlt's telemetry is off in tests)
    assert "scalevector" not in proc.stderr and "Starting new HTTPS" not in proc.stderr

    blobs = {"stdout": [proc.stdout.encode()], "stderr": [proc.stderr.encode()]}
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != seed]
    assert any(p.suffix == ".duckdb" for p in written)
    assert any("trace" in p.name for p in written), "dlt's trace was not written"
    assert any(p.suffix == ".parquet" for p in written), "no load package files"
    for path in written:
        blobs[str(path.relative_to(tmp_path))] = texts_of(path)
    assert search(blobs, needles(sigs)) == []


def test_the_search_would_find_a_leak(tmp_path):
    """The search itself works: each form of each secret is found where it was put."""
    sig = usersig.generate(SDKAPPID, ADMIN, SECRET_KEY)
    secrets = needles([sig])
    for name, needle in secrets.items():
        assert search({"x": [b"..." + needle + b"..."]}, secrets), name
    db = tmp_path / "leak.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE t AS SELECT ? AS s FROM range(1000)", [SECRET_KEY])
    con.close()
    assert "key in db" in search({"db": texts_of(db)}, secrets)
    assert search({"log": [f"GET /x?usersig={quote(sig, safe='*-_')}&y=1".encode()]},
                  secrets)
    assert not search({"log": [b"GET /x?usersig=<redacted>&y=1"]}, secrets)


def test_exception_texts_and_reprs_hold_no_secret(tmp_path, pop):
    sig = usersig.generate(SDKAPPID, ADMIN, SECRET_KEY)
    provider = UserSigProvider(SDKAPPID, ADMIN, secret_key=SECRET_KEY)
    fixed = UserSigProvider(SDKAPPID, ADMIN, usersig=sig)
    texts = [repr(provider), str(provider), repr(fixed),
             repr(SimulatorConfig(SDKAPPID, ADMIN, SECRET_KEY)),
             repr(ClientConfig(SDKAPPID, ADMIN, ("http://127.0.0.1:1",)))]
    client = DeskClient(ClientConfig(SDKAPPID, ADMIN, ("http://127.0.0.1:1",)), provider)
    texts += [repr(client), str(client.stats)]
    options = RunOptions(seed="s.csv", database=tmp_path / "d.duckdb",
                         overrides={"secret_key": SECRET_KEY, "usersig": sig})
    texts.append(repr(options))

    # a refused UserSig (a simulator with another key), through the client and the job
    with harness.serve(pop) as (_app, url):
        wrong = UserSigProvider(SDKAPPID, ADMIN, secret_key="another-key-0123456789")

        async def ask() -> None:
            cfg = ClientConfig(SDKAPPID, ADMIN, (url,), timeout=1)
            async with DeskClient(cfg, wrong) as c:
                await c.get_session_state(Key("x"))

        with pytest.raises(FatalError) as fatal:
            asyncio.run(ask())
        texts += [str(fatal.value), repr(fatal.value)]
        seed = harness.write_seed(tmp_path / "seed.csv", [("x", "", "")])
        for over in ({"secret_key": "another-key-0123456789"}, {"usersig": sig + "x"}):
            with pytest.raises(JobError) as job_error:
                run(RunOptions(seed=str(seed), database=tmp_path / "d.duckdb",
                               pipelines_dir=str(tmp_path / "dlt"), progress=False,
                               overrides={"api_url": url, "sdkappid": SDKAPPID,
                                          "identifier": ADMIN, **over}))
            texts += [str(job_error.value), repr(job_error.value)]
    # a transport failure's text, with the URL in aiohttp's message
    text = redact.redact(f"Cannot connect to host http://h/v4/x?usersig={sig}&random=1")
    texts.append(text)
    found = search({f"text{i}": [t.encode()] for i, t in enumerate(texts)},
                   needles([sig]))
    assert found == []


@pytest.mark.parametrize("url", [
    "http://example.com", "http://10.0.0.1:8000", "http://192.168.1.10",
    "HTTP://example.com", "http://0.0.0.0:8000", "http://localhost.example.com",
    "http://127.0.0.1.nip.io", "http://evil.example#@127.0.0.1", "http://[2001:db8::1]",
    "http://[::ffff:10.0.0.1]", "ftp://127.0.0.1", "http://user:pw@127.0.0.1",
    "https://127.0.0.1/?usersig=x", "//example.com",
])
def test_plain_http_goes_to_loopback_only(url):
    with pytest.raises(ConfigError) as err:
        base_urls(api_url=url)
    assert "secret" not in str(err.value).lower()
    # as a backup domain too
    with pytest.raises(ConfigError):
        base_urls(api_url="https://adminapisgp.im.qcloud.com", backup_url=url)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://127.9.9.9", "http://[::1]:80",
                                 "http://localhost:1", "https://example.com"])
def test_loopback_and_https_are_accepted(url):
    assert base_urls(api_url=url) == (url,)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "192.168.0.1", "example.com"])
def test_the_simulator_binds_loopback_only_unless_allowed(pop, host):
    app = harness.RecordingApp(pop, SimulatorConfig(SDKAPPID, ADMIN, SECRET_KEY))
    with pytest.raises(ValueError, match="loopback"), serve_in_thread(app, host=host):
        pass  # pragma: no cover
    _check_host(host, allow_remote=True)  # allowed when asked (nothing is bound here)


def test_the_simulate_command_refuses_a_non_loopback_address(monkeypatch, capsys):
    for name, value in cli.env().items():
        if name.startswith("SOURCES__"):
            monkeypatch.setenv(name, value)
    code = main(["simulate", "--host", "0.0.0.0", "--port", str(harness.closed_port()),
                 "--sessions", "10"])  # refused before it binds anything
    err = capsys.readouterr().err
    assert code != 0
    (line,) = cli.error_lines(err)
    assert "loopback" in line and SECRET_KEY not in err
