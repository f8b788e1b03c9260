"""Hostile and broken seeds: property-based tests of :class:`PreparedSeed` against an
oracle of the documented rules, broken files one by one, and the CLI end to end.

The rules (``seeds.py``): values are trimmed of spaces, empty is missing; a row is
rejected when any key column holds a control character (C0, DEL, C1) or more than 256
characters, or a non-text value, or when it has no key (a session id, or both halves of a
pair); valid rows become one key each (repeats merged). A seed that cannot be read at all
is a :class:`SeedError`: one line, no traceback.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tencent_desk.api.client import Key
from tencent_desk.cli import main
from tencent_desk.job.seeds import (
    ALIASES,
    COLUMNS,
    PreparedSeed,
    SeedError,
    SeedSpec,
    _lf_copy,
)

from .support import cli, harness
from .support.harness import DATASET

MAX_LEN = 256
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
PROPERTY = settings(max_examples=int(os.environ.get("DESK_SEED_EXAMPLES", "20")),
                    deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example])

# ------------------------------------------------------------------ the oracle


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip(" ")
    return value or None


def verdict(row: tuple[Any, Any, Any]) -> tuple[str, tuple] | None:
    """``('reject', reason-word)`` or ``('key', key)`` for one row of three values."""
    for name, value in zip(COLUMNS, row, strict=True):
        if value is not None and not isinstance(value, str):
            return ("reject", (f"{name} is",))
    s, u, c = (_clean(v) for v in row)
    for name, value in zip(COLUMNS, (s, u, c), strict=True):
        if value is not None and CONTROL.search(value):
            return ("reject", (f"{name} contains control characters",))
        if value is not None and len(value) > MAX_LEN:
            return ("reject", (f"{name} is longer than",))
    if s is None and (u is None) != (c is None):
        return ("reject", ("half a pair",))
    if s is None and u is None:
        return ("reject", ("no key",))
    return ("key", ("s", s) if s else ("p", u, c))


def prepared(path: Path, table: str | None = None) -> tuple[set, list[dict], Any]:
    with PreparedSeed(SeedSpec(path, table)) as seed:
        keys = [k for batch in seed.key_batches(7) for k in batch]
        rejects = [r for b in seed.reject_batches() for r in b.to_pylist()]
        counts = seed.counts
    found = [("s", k.session_id) if k.session_id else
             ("p", k.client_user_id, k.customer_service_id) for k in keys]
    assert len(found) == len(set(found)), "a key came out twice"
    return set(found), rejects, counts


def check(rows_verdicts: Iterable[tuple[str, tuple] | None], keys: set, rejects: list[dict],
          n_rows: int) -> None:
    """The seed's keys and rejects are what the oracle says; every row accounted for."""
    verdicts = list(rows_verdicts)
    want_keys = {v[1] for v in verdicts if v[0] == "key"}
    n_valid = sum(1 for v in verdicts if v[0] == "key")
    assert keys == want_keys
    assert len(rejects) + n_valid == n_rows
    assert all(r["reason"] and len(r["raw"] or "") <= 2000 for r in rejects)
    assert len(rejects) == sum(1 for v in verdicts if v[0] == "reject")
    _record_inputs(n_rows)


def _record_inputs(n: int) -> None:
    out = os.environ.get("DESK_FIGURES")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps({"case": "seed-rows", "rows": n}) + "\n")


# ------------------------------------------------------------------ strategies

BIG = "x" * 1_000_000
text = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=12),  # any Unicode, controls
    st.text(st.sampled_from("ab-0\x00\x01\x1f\x7f\x85\u2028 \t\r\n\"',;é"), max_size=8),
    st.sampled_from(["", " ", "  sess-1  ", "sess-1", "x" * MAX_LEN, "y" * (MAX_LEN + 1),
                     BIG, "a\x00b", "é" * 300]),
)
maybe_text = st.one_of(st.none(), text)
row3 = st.tuples(maybe_text, maybe_text, maybe_text)


@PROPERTY
@given(rows=st.lists(row3, max_size=25), newline=st.sampled_from(["\r\n", "\n"]))
def test_csv_rows_go_to_keys_or_rejects(rows, newline):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "seed.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            # Python's writer leaves a lone CR unquoted when lines end in LF: a file whose
            # meaning is ambiguous (CR is a line break to most readers), so quote everything
            w = csv.writer(f, lineterminator=newline, quoting=csv.QUOTE_MINIMAL
                           if newline == "\r\n" else csv.QUOTE_ALL)
            w.writerow(COLUMNS)
            w.writerows(rows)
        keys, rejects, _ = prepared(path)
    # CSV has no NULL: a missing value is an empty one
    check((verdict(tuple(v or None for v in r)) for r in rows), keys, rejects, len(rows))


json_value = st.one_of(text, st.none(), st.integers(), st.floats(), st.booleans(),
                       st.lists(st.integers(), max_size=2),
                       st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
json_names = st.sampled_from([*COLUMNS, "SessionId", "ClientUserId", "CustomerServiceId",
                              "SESSION_ID", "extra", "session id"])
json_line = st.one_of(
    st.dictionaries(json_names, json_value, max_size=5).map(lambda d: ("obj", d)),
    st.sampled_from([b"not json", b"[1, 2]", b"null", b"\xff\xfe{}", b'{"session_id": "a"',
                     b"   ", b""]).map(lambda b: ("raw", b)),
)


def _json_verdict(doc: dict) -> tuple[str, tuple] | None:
    values: dict[str, Any] = {}
    for name, value in doc.items():
        ours = ALIASES.get(name.strip().lower())
        if ours and ours not in values:
            values[ours] = value
    return verdict(tuple(values.get(c) for c in COLUMNS))


@PROPERTY
@given(lines=st.lists(json_line, max_size=20), ascii_only=st.booleans())
def test_jsonl_lines_go_to_keys_or_rejects(lines, ascii_only):
    encoded, verdicts, first_names = [], [], None
    for kind, item in lines:
        if kind == "obj":
            raw = json.dumps(item, ensure_ascii=ascii_only).encode()
            if first_names is None:
                first_names = list(item)
            verdicts.append(_json_verdict(item))
        else:
            raw = item
            if raw.strip():
                verdicts.append(("reject", ("line",)))
        encoded.append(raw)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "seed.jsonl"
        path.write_bytes(b"\n".join(encoded) + b"\n")
        names = {ALIASES.get(n.strip().lower()) for n in first_names or []}
        if first_names is not None and "session_id" not in names and not {
                "client_user_id", "customer_service_id"} <= names:
            with pytest.raises(SeedError) as err:
                prepared(path)
            assert "\n" not in str(err.value) and "Traceback" not in str(err.value)
            return
        keys, rejects, _ = prepared(path)
    check(verdicts, keys, rejects, len(verdicts))


WRONG_TYPES = {"int64": (pa.int64(), st.integers(-2**63, 2**63 - 1)),
               "float": (pa.float64(), st.floats()),
               "bool": (pa.bool_(), st.booleans()),
               "binary": (pa.binary(), st.binary(max_size=6)),
               "list": (pa.list_(pa.string()), st.lists(st.text(max_size=3), max_size=2))}


@PROPERTY
@given(data=st.data(), n=st.integers(0, 15),
       wrong=st.one_of(st.none(), st.tuples(st.sampled_from(COLUMNS),
                                            st.sampled_from(sorted(WRONG_TYPES)))),
       extra=st.booleans())
def test_parquet_rows_go_to_keys_or_rejects(data, n, wrong, extra):
    columns: dict[str, pa.Array] = {}
    values: dict[str, list] = {}
    for name in COLUMNS:
        if wrong and wrong[0] == name:
            kind, strategy = WRONG_TYPES[wrong[1]]
            vals = data.draw(st.lists(st.one_of(st.none(), strategy), min_size=n, max_size=n))
            columns[name] = pa.array(vals, type=kind)
        else:
            vals = data.draw(st.lists(maybe_text, min_size=n, max_size=n))
            columns[name] = pa.array(vals, type=pa.string())
        values[name] = vals
    if extra:
        columns["notes"] = pa.array([1.5] * n)
    rows = list(zip(*(values[c] for c in COLUMNS), strict=True))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "seed.parquet"
        pq.write_table(pa.table(columns), path)
        keys, rejects, counts = prepared(path)
    assert counts.rows == n
    check((verdict(r) for r in rows), keys, rejects, n)


# ------------------------------------------------------------------ broken files


def _write(folder: Path, name: str, content: bytes | pa.Table) -> Path:
    path = folder / name
    if isinstance(content, pa.Table):
        pq.write_table(content, path)
    else:
        path.write_bytes(content)
    return path


HEADER = b"session_id,client_user_id,customer_service_id\n"
READABLE = {
    # name: (content, keys, rejects)
    "empty.csv": (b"", set(), 0),
    "header-only.csv": (HEADER, set(), 0),
    "bom.csv": (b"\xef\xbb\xbf" + HEADER + b"s1,,\n", {("s", "s1")}, 0),
    "extra-columns.csv": (b"notes,session_id,x\n1,s1,2\n3,s2,4\n",
                          {("s", "s1"), ("s", "s2")}, 0),
    "api-names.csv": (b"SessionId,ClientUserId,CustomerServiceId\n,u1,@cs\n",
                      {("p", "u1", "@cs")}, 0),
    "ragged.csv": (HEADER + b"s1,u,c,EXTRA\ns2,u,c\ns3\n", {("s", "s2")}, 2),
    "invalid-utf8.csv": (HEADER + b"\xff\xfe,u,c\ns2,,\nok\xc3,,\n", {("s", "s2")}, 2),
    "nul.csv": (HEADER + b"s\x001,,\ns2,,\n", {("s", "s2")}, 1),
    "million.csv": (HEADER + b"x" * 1_000_000 + b",,\ns2,,\n", {("s", "s2")}, 1),
    "five-million-line.csv": (HEADER + b"x" * 5_000_000 + b",,\ns2,,\n", {("s", "s2")}, 1),
    "empty.jsonl": (b"", set(), 0),
    "junk-lines.jsonl": (b'{"session_id": "s1"}\nnot json\n[1]\n\xff\n{"session_id": 5}\n',
                         {("s", "s1")}, 4),
    "wrong-types.parquet": (pa.table({"session_id": pa.array([1, None], pa.int64()),
                                      "client_user_id": ["u", "u2"],
                                      "customer_service_id": ["c", "c2"]}),
                            {("p", "u2", "c2")}, 1),
    "nested.parquet": (pa.table({"session_id": pa.array([{"a": 1}, None]),
                                 "ClientUserId": ["u", "u"], "CustomerServiceId": ["c", "d"]}),
                       {("p", "u", "d")}, 1),
}


@pytest.mark.parametrize("name", sorted(READABLE))
def test_broken_but_readable_files(tmp_path, name):
    content, want, n_rejects = READABLE[name]
    keys, rejects, _ = prepared(_write(tmp_path, name, content))
    assert keys == want
    assert len(rejects) == n_rejects and all(r["reason"] for r in rejects)
    assert all(len(r["raw"]) <= 2000 for r in rejects)
    _record_inputs(1)


UNREADABLE = {
    "semicolons.csv": HEADER.replace(b",", b";") + b"s1;u;c\n",
    "tabs.csv": HEADER.replace(b",", b"\t") + b"s1\tu\tc\n",
    "no-key-column.csv": b"user,account\nu,c\n",
    "half-pair-columns.csv": b"client_user_id\nu\n",
    "nul-header.csv": b"sess\x00ion_id\ns1\n",
    "no-key-column.jsonl": b'{"user": "u"}\n{"session_id": "s1"}\n',
    "empty.parquet": b"",
    "garbage.parquet": b"PAR1 this is not parquet PAR1",
    "not-a-database.duckdb": b"hello",
    "seed.xlsx": b"PK\x03\x04",
    "no-key-column.parquet": pa.table({"id": ["s1"]}),
}


@pytest.mark.parametrize("name", sorted(UNREADABLE))
def test_unreadable_files_are_one_clear_error(tmp_path, name):
    path = _write(tmp_path, name, UNREADABLE[name])
    with pytest.raises(SeedError) as err:
        prepared(path, "t" if name.endswith(".duckdb") else None)
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message and len(message) < 500
    assert "Python exception" not in message
    _record_inputs(1)


def _seed_database(path: Path) -> None:
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE keys_t (session_id VARCHAR, note VARCHAR)")
    con.execute("INSERT INTO keys_t VALUES ('s1', 'a'), ('s2', 'b')")
    con.execute("CREATE SCHEMA other")
    con.execute("CREATE TABLE other.keys_t (SessionId VARCHAR)")
    con.execute("INSERT INTO other.keys_t VALUES ('s9')")
    con.close()


def _database_content(path: Path) -> list:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT * FROM keys_t ORDER BY 1").fetchall() + con.execute(
            "SELECT * FROM other.keys_t").fetchall() + con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()


INJECTIONS = [
    "keys_t; DROP TABLE keys_t", "keys_t; DROP TABLE keys_t; --", 'keys_t" ; DROP TABLE x; --',
    "keys_t'--", "(SELECT 1)", "keys_t UNION SELECT 1", "read_csv('/etc/passwd')",
    "main.keys_t.x.y", "", " ", "keys_t --", "\"keys_t\"", "keys_t\x00", "keys_t\n",
    "seed_db.main.keys_t; ATTACH '/tmp/x' AS y", "k" * 1000,
]


@pytest.mark.parametrize("name", ["keys.csv", "keys.parquet", "keys.jsonl"])
def test_a_seed_table_of_a_seed_that_is_no_database_is_refused(tmp_path, name):
    """A seed_table (an app's config, --seed-table) beside a file seed was ignored."""
    path = _write(tmp_path, name, b"session_id\ns1\n")  # refused before it is read
    with pytest.raises(SeedError, match=f"seed {name} is a .* file, not a DuckDB database: "
                       "--seed-table .seed_table. 'open_sessions'"):
        prepared(path, "open_sessions")


@pytest.mark.parametrize("table", INJECTIONS)
def test_a_seed_table_name_that_is_sql_injection_is_refused(tmp_path, table):
    db = tmp_path / "seeds.duckdb"
    _seed_database(db)
    before = _database_content(db)
    with pytest.raises(SeedError) as err:
        prepared(db, table)
    assert "\n" not in str(err.value)
    assert _database_content(db) == before
    _record_inputs(1)


@pytest.mark.parametrize("table, want", [("keys_t", {("s", "s1"), ("s", "s2")}),
                                         ("other.keys_t", {("s", "s9")}),
                                         ("main.keys_t", {("s", "s1"), ("s", "s2")})])
def test_plain_table_names_work(tmp_path, table, want):
    db = tmp_path / "seeds.duckdb"
    _seed_database(db)
    keys, rejects, _ = prepared(db, table)
    assert keys == want and rejects == []


@pytest.mark.parametrize("name, content", [
    ("mixed.csv", HEADER.replace(b"\n", b"\r\n") + b"s1,u,c\ns2,,\r\n"),
    ("old-mac.csv", HEADER.replace(b"\n", b"\r") + b"s1,u,c\rs2,,\r"),
    ("mixed.tsv", HEADER.replace(b",", b"\t").replace(b"\n", b"\r\n")
     + b"s1\tu\tc\ns2\t\t\n"),
    # bad rows are still rejected, each for its own reason
    ("bad.csv", HEADER.replace(b"\n", b"\r\n") + b"s1,u,c\n" + b"x" * 300 + b",,\r\n"
     + b"s2,,\r\n,u,\n"),
])
def test_mixed_line_endings_still_give_the_valid_rows(tmp_path, name, content):
    keys, rejects, _ = prepared(_write(tmp_path, name, content))
    assert keys == {("s", "s1"), ("s", "s2")}
    reasons = [r["reason"] for r in rejects]
    assert all("longer than" in r or "half a pair" in r or "unreadable" in r
               for r in reasons), reasons
    assert len(rejects) == (2 if name == "bad.csv" else 0)


@given(st.lists(st.sampled_from([b"a", b",", b"\r", b"\n", b"\r\n", b'"']), max_size=40),
       st.integers(1, 5))
@settings(max_examples=200, deadline=None, derandomize=True, database=None)
def test_the_lf_copy_is_the_same_whatever_its_block_size(tmp_path_factory, parts, chunk):
    data = b"".join(parts)
    folder = tmp_path_factory.mktemp("lf")
    src = _write(folder, "in.csv", data)
    out = _lf_copy(src, folder / "out.csv", chunk=chunk)
    assert out.read_bytes() == data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


# A stray quote made DuckDB read every line after it as one value: one reject holding the
# rest of the file (its first 10,000 characters), or, in a file of several buffers, the
# lines up to where a later buffer found its footing again, gone without a word.
UNTERMINATED = "unreadable line: unterminated quote (a value quoted on line 3 does not close on it)"
STRAY_QUOTES = {  # the lines after s1's (line 2): the rejects (row_no, reason), the keys
    "unterminated": (b'"s2,u,c\ns3,,\n', [(2, UNTERMINATED)], {"s3"}),
    "closed-lines-later": (b'"s2,u,c\ns3,,\n"s4",u,c\ns5,,\n', [(2, UNTERMINATED)],
                           {"s3", "s4", "s5"}),
    "in-the-last-column": (b's2,u,"c\ns3,,\n', [(2, UNTERMINATED)], {"s3"}),
    "and-a-misplaced-one": (b'"s2,u,c\n"s3"x,,\ns4,,\n', [
        (2, UNTERMINATED), (3, "unreadable line: misplaced quote (text after the quote that "
                               "closes a value)")], {"s4"}),
}


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
@pytest.mark.parametrize("name", sorted(STRAY_QUOTES))
def test_a_stray_quote_rejects_its_own_line_and_no_other(tmp_path, name, newline):
    lines, want_rejects, want_keys = STRAY_QUOTES[name]
    content = (HEADER + b"s1,,\n" + lines).replace(b"\n", newline)
    keys, rejects, counts = prepared(_write(tmp_path, "seed.csv", content))
    assert [(r["row_no"], r["reason"]) for r in rejects] == want_rejects
    assert rejects[0]["raw"] == lines.split(b"\n")[0].decode()  # the line, not the rest
    assert keys == {("s", k) for k in {"s1", *want_keys}}
    assert counts.rows == 1 + lines.count(b"\n") and counts.rejects == len(want_rejects)


def test_a_stray_quote_early_in_a_big_seed_loses_none_of_the_lines_after_it(tmp_path):
    after = b"".join(b"s%d,u,c\n" % n for n in range(2, 200_002))  # 2.5 MB, read whole
    path = _write(tmp_path, "seed.csv", HEADER + b"s1,,\n" + b'"s-stray,u,c\n' + after)
    keys, rejects, counts = prepared(path)
    assert [(r["row_no"], r["raw"], r["reason"]) for r in rejects] == [
        (2, '"s-stray,u,c', UNTERMINATED)]
    assert len(keys) == 200_001 and counts.rows == 200_002


def test_a_quoted_value_over_two_lines_is_still_a_value(tmp_path):
    """Only a quote that swallows lines makes the file be read line by line: a notes
    column's line break, properly quoted, is read as before."""
    path = _write(tmp_path, "seed.csv", b'session_id,notes\ns1,"two\nlines"\ns2,x\n')
    keys, rejects, _ = prepared(path)
    assert keys == {("s", "s1"), ("s", "s2")} and rejects == []


def test_a_seed_path_with_sql_in_its_name_is_only_a_name(tmp_path):
    folder = tmp_path / "it's'); DROP TABLE raw; --"
    folder.mkdir()
    path = folder / "x'y.csv"
    path.write_bytes(HEADER + b"s1,,\n")
    keys, _, _ = prepared(path)
    assert keys == {("s", "s1")}


# ------------------------------------------------------------------ the CLI end to end


@pytest.fixture(scope="module")
def pop():
    return harness.population(seed=9, sessions=600)


def in_process(argv: list[str], capfd, monkeypatch) -> subprocess.CompletedProcess:
    for name, value in cli.env().items():
        if name.startswith(("SOURCES__", "RUNTIME__")):
            monkeypatch.setenv(name, value)
    capfd.readouterr()
    code = main(argv[1:])
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(argv, code, out, err)


def test_cli_loads_valid_rows_and_rejects_the_rest_with_reasons(tmp_path, pop, capfd,
                                                               monkeypatch):
    t = pop.config.day_start + harness.MODEL_HOUR * 3600
    good = harness.pick_keys(pop, t, live=10, other=10, pairs=4).rows
    hostile = [("a\x00b", "", ""), ("\x1b[31mred", "", ""), ("x" * 1_000_000, "", ""),
               ("", "user-only", ""), ("", "", ""), ("é" * 300, "", ""),
               ("ok-id", "u\x85", "c"), ("", "u", "c\tc")]
    path = tmp_path / "seed.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(good[:10] + hostile[:4] + good[10:] + hostile[4:])
        f.write("s-extra,u,c,EXTRA\r\n")  # csv.writer ends lines in CRLF: so do we
    with path.open("ab") as f:
        f.write(b"\xff\xfe-bad-utf8,,\r\n")
    db = tmp_path / "desk.duckdb"
    with harness.serve(pop) as (_app, url):
        proc = in_process(cli.run_argv(path, db, url, tmp_path / "dlt"), capfd, monkeypatch)
    assert proc.returncode == 0, proc.stderr
    con = duckdb.connect(str(db), read_only=True)
    try:
        states = con.execute(f"SELECT session_id, client_user_id, customer_service_id, "
                             f"key_type FROM {DATASET}.session_states").fetchall()
        rejects = con.execute(f"SELECT row_no, raw, reason FROM {DATASET}.seed_rejects"
                              ).fetchall()
    finally:
        con.close()
    asked = {("s", s) if k == "session" else ("p", u, c) for s, u, c, k in states}
    assert asked == {("s", s) if s else ("p", u, c) for s, u, c in good}
    assert len(states) == len(good)
    assert len(rejects) == len(hostile) + 2
    assert all(reason for _, _, reason in rejects)
    assert max(len(raw) for _, raw, _ in rejects) <= 2000
    reasons = " | ".join(r for _, _, r in rejects)
    for word in ("control characters", "longer than", "half a pair", "no key",
                 "unreadable line"):
        assert word in reasons


@pytest.mark.parametrize("name, content", [("keys.csv", HEADER), ("keys.csv", b""),
                                           ("keys.jsonl", b"")],
                         ids=["header-alone", "empty-csv", "empty-jsonl"])
def test_cli_says_in_one_line_that_a_seed_has_no_rows(tmp_path, pop, name, content):
    """The real CLI in its own process: the run goes on (--seed adds to the sessions from
    events, none here), and says so in one warning line, where it once loaded nothing
    without a word."""
    path = _write(tmp_path, name, content)
    with harness.serve(pop) as (app, url):
        proc = cli.run(cli.run_argv(path, tmp_path / "d.duckdb", url, tmp_path / "dlt"),
                       tmp_path)
        assert app.stats.codes.total() == 0
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    said = [line for line in proc.stderr.splitlines() if "no rows" in line]
    assert len(said) == 1 and " WARNING " in said[0], proc.stderr[-3000:]
    assert said[0].endswith(f": seed {path} has no rows: this run asks nothing"), said
    assert "0 rows from 0 keys" in proc.stdout


def test_cli_rejects_the_line_of_a_stray_quote_and_asks_the_rows_after_it(tmp_path, pop):
    """The real CLI in its own process: the rows after the quote are asked, and the reject
    in seed_rejects is that line alone, named by its number."""
    t = pop.config.day_start + harness.MODEL_HOUR * 3600
    good = [s for s, _, _ in harness.pick_keys(pop, t, live=6, other=6, pairs=0).rows]
    path = tmp_path / "seed.csv"
    path.write_text("session_id\n" + "\n".join(good[:4]) + '\n"stray\n'
                    + "\n".join(good[4:]) + "\n")
    db = tmp_path / "desk.duckdb"
    with harness.serve(pop) as (_app, url):
        proc = cli.run(cli.run_argv(path, db, url, tmp_path / "dlt"), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    con = duckdb.connect(str(db), read_only=True)
    try:
        asked = {s for (s,) in con.execute(
            f"SELECT session_id FROM {DATASET}.session_states").fetchall()}
        rejects = con.execute(f"SELECT row_no, raw, reason FROM {DATASET}.seed_rejects"
                              ).fetchall()
    finally:
        con.close()
    assert asked == set(good)
    assert rejects == [(5, '"stray', "unreadable line: unterminated quote (a value quoted on "
                        "line 6 does not close on it)")]


@pytest.mark.parametrize("name", ["semicolons.csv", "no-key-column.jsonl", "garbage.parquet",
                                  "seed.xlsx", "missing.csv", "a-folder.csv",
                                  "not-a-database.duckdb"])
def test_cli_stops_in_one_line_on_a_seed_it_cannot_read(tmp_path, pop, capfd, monkeypatch,
                                                        name):
    if name == "missing.csv":
        path = tmp_path / name
    elif name == "a-folder.csv":
        path = tmp_path / name
        path.mkdir()
    else:
        path = _write(tmp_path, name, UNREADABLE[name])
    more = ["--seed-table", "t"] if name.endswith(".duckdb") else []
    with harness.serve(pop) as (app, url):
        proc = in_process(cli.run_argv(path, tmp_path / "d.duckdb", url, tmp_path / "dlt",
                                       *more), capfd, monkeypatch)
        assert app.stats.codes.total() == 0  # nothing was asked
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    (line,) = cli.error_lines(proc.stderr)
    assert path.name in line and len(line) < 500


@pytest.mark.slow  # the in-process cases above check the same line; this is the real stderr
def test_cli_in_its_own_process_shows_no_traceback_for_an_unreadable_seed(tmp_path):
    path = _write(tmp_path, "no-key-column.jsonl", UNREADABLE["no-key-column.jsonl"])
    proc = cli.run(cli.run_argv(path, tmp_path / "d.duckdb",
                                f"http://127.0.0.1:{harness.closed_port()}", tmp_path / "dlt"),
                   tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    (line,) = cli.error_lines(proc.stderr)
    assert "has no key column: its columns ('user') must include session_id" in line


def test_a_csv_seed_without_a_header_says_what_its_first_line_must_name(tmp_path):
    """A seed given to run is asked beside the sessions from events, which the line once
    named as if they were the seed's fault: "seed X + sessions from events has no ..."."""
    path = _write(tmp_path, "keys.csv", b"s-1,u-1,cs-1\ns-2,u-2,cs-2\n")
    proc = cli.run(cli.run_argv(path, tmp_path / "d.duckdb",
                                f"http://127.0.0.1:{harness.closed_port()}", tmp_path / "dlt"),
                   tmp_path)
    line = cli.failed_in_one_line(proc, 2)
    assert line == (f"desk-sessions: error: seed {path} has no key column: its first line "
                    "('s-1', 'u-1', 'cs-1') must name session_id, or both client_user_id and "
                    "customer_service_id, separated by commas"), line


def test_cli_refuses_a_seed_table_that_is_sql(tmp_path, pop, capfd, monkeypatch):
    db = tmp_path / "seeds.duckdb"
    _seed_database(db)
    before = _database_content(db)
    with harness.serve(pop) as (_app, url):
        proc = in_process(cli.run_argv(db, tmp_path / "d.duckdb", url, tmp_path / "dlt",
                                       "--seed-table", "keys_t; DROP TABLE keys_t"),
                          capfd, monkeypatch)
    assert proc.returncode == 2
    (line,) = cli.error_lines(proc.stderr)
    assert "not a plain [schema.]table name" in line
    assert _database_content(db) == before


def test_work_folders_of_killed_runs_are_removed(tmp_path):
    # A run killed with -9 cannot clean up after itself: the next one does.
    dead_pid = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1  # never a process
    dead = tmp_path / f"desk-seed-{dead_pid}-abc"
    alive = tmp_path / f"desk-seed-{os.getpid()}-def"
    other = tmp_path / "desk-seed-notapid-ghi"
    for folder in (dead, alive, other):
        folder.mkdir()
        (folder / "keys.parquet").write_bytes(b"x" * 1000)
    seed = _write(tmp_path, "s.csv", HEADER + b"s1,,\n")
    with PreparedSeed(SeedSpec(seed), work_dir=tmp_path) as prepared:
        assert [k for b in prepared.key_batches() for k in b] == [Key("s1")]
    assert not dead.exists() and alive.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.glob("desk-seed-*")) == sorted(
        [alive.name, other.name])  # and its own folder is gone too
