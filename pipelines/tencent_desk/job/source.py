"""The dlt source itself (documented in the package's ``__init__``, which imports it lazily).

dlt names config sections and state after the module a source or resource is defined in;
``__source_name__`` keeps them ``sources.tencent_desk``, as when this lived in ``__init__``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.typing import TSecretStrValue
from dlt.sources import DltResource
from tencent_desk.api.client import ClientConfig, DeskClient, FatalError, base_urls
from tencent_desk.api.outage import Outage
from tencent_desk.api.usersig import UserSigProvider
from tencent_desk.core import settings
from tencent_desk.core.apps import checked
from tencent_desk.core.clock import SystemClock, parse_span, utc
from tencent_desk.core.errors import ConfigError
from tencent_desk.job import context as run_context
from tencent_desk.job.context import RunContext
from tencent_desk.job.ended import ended_sessions
from tencent_desk.job.poller import Poller
from tencent_desk.job.record_source import MERGE_KEY as RECORDS_KEY
from tencent_desk.job.record_source import RUNS_TABLE as RECORD_RUNS
from tencent_desk.job.record_source import STATE_KEY as RECORDS_STATE
from tencent_desk.job.record_source import TABLE as RECORDS_TABLE
from tencent_desk.job.record_source import RecordsLoad
from tencent_desk.job.rows import to_table
from tencent_desk.job.runs import FAILED, run_row
from tencent_desk.job.seeds import PreparedSeed, SeedCounts, SeedSpec

log = logging.getLogger(__name__)
__source_name__ = "tencent_desk"

__all__ = ["RunContext", "SourceConfig", "tencent_desk", "tencent_desk_apps"]


@dlt.source(name="tencent_desk", max_table_nesting=0)
def tencent_desk(
    seed: str | None = None,
    sdkappid: int = dlt.config.value,
    identifier: str = dlt.config.value,
    secret_key: TSecretStrValue | None = dlt.secrets.value,
    usersig: TSecretStrValue | None = dlt.secrets.value,
    seed_table: str | None = None,
    region: str | None = None,
    api_url: str | None = None,
    backup_url: str | None = None,
    max_qps: float = settings.DEFAULT_MAX_QPS,
    max_concurrency: int | None = None,
    timeout: float = settings.DEFAULT_TIMEOUT_S,
    transport: str = settings.DEFAULT_TRANSPORT,
    repoll_ended: bool = False,
    max_error_share: float = settings.DEFAULT_MAX_ERROR_SHARE,
    batch_size: int = settings.DEFAULT_BATCH_SIZE,
    records: bool = False,
    records_from: str | None = None,
    records_until: str | None = None,
    records_since: int = settings.DEFAULT_RECORDS_SINCE_S,
    records_settle: int = settings.DEFAULT_RECORDS_SETTLE_S,
    keep_nicknames: bool = False,
    extra_seed: str | None = None,
) -> list[DltResource]:
    """The ``session_states`` resource (it also fills ``seed_rejects`` and ``runs``).

    Args:
        seed: the seed file (.csv, .parquet, .jsonl) or DuckDB database (with seed_table).
        sdkappid: the app's SDKAppID (Chat console).
        identifier: an app administrator account.
        secret_key: the app's secret key, to sign UserSigs; or
        usersig: a ready-made UserSig for ``identifier`` (when the key lives elsewhere).
        region: data centre (china, singapore, seoul, tokyo, frankfurt, silicon_valley,
            jakarta, mumbai); or api_url (and backup_url) for any other root, e.g. the
            simulator.
        max_qps: calls per second never exceeded in any one-second window.
        max_concurrency: calls in flight at most (default: enough for ``max_qps`` with
            answers of half a second, 16 to 512).
        transport: the HTTP client: aiohttp (the default, lightest), httpx or
            httpx-aiohttp (docs/transports.md).
        repoll_ended: ask again sessions an earlier run saw end.
        max_error_share: the share of keys that may end in ``error`` before the job exits
            non-zero (recorded in ``runs``; the run is loaded either way).
        records: also load ``session_records`` (after polling, on the same budget), from
            where the last load ended (``records_since`` seconds back the first time) to
            ``records_settle`` seconds before now.
        records_from, records_until: a backfill of that span (ISO 8601) instead.
        keep_nicknames: store ClientUserNickName (personal data; off by default).
        extra_seed: a Parquet file of more keys to ask (the sessions known from events).

    The job's machinery (clock, run id, progress, interrupted runs) is no configuration:
    ``desk-sessions run`` binds it around the call (:mod:`tencent_desk.job.context`).
    """
    config = SourceConfig(
        seed=seed, sdkappid=sdkappid, identifier=identifier, secret_key=secret_key,
        usersig=usersig, seed_table=seed_table, region=region, api_url=api_url,
        backup_url=backup_url, max_qps=max_qps, max_concurrency=max_concurrency,
        timeout=timeout, transport=transport, repoll_ended=repoll_ended,
        max_error_share=max_error_share, batch_size=batch_size, records=records,
        records_from=records_from, records_until=records_until, records_since=records_since,
        records_settle=records_settle, keep_nicknames=keep_nicknames, extra_seed=extra_seed)
    return AppSource(config, run_context.current()).resources()


@dlt.source(name="tencent_desk", max_table_nesting=0)
def tencent_desk_apps(apps: list[tuple[str, SourceConfig]]) -> list[DltResource]:
    """Several Desk apps in one run and one load: ``apps`` holds (name, configuration) per
    app. Each app has its own client, limiter and outage breaker, and its resources are
    extracted in parallel: one app's slow limit, outage or refused credentials neither
    stops nor slows the others; it ends in its ``runs`` row, ``failed`` with its ``error``
    (the line the bound context's ``on_failed`` gives), while the others load."""
    pipeline = dlt.current.pipeline()  # read here: the apps' generators run in dlt's threads
    context = run_context.current()
    return [r for n, (name, config) in enumerate(apps)
            for r in AppSource(config, context.of(name, first=n == 0), pipeline).resources()]


@dataclass(frozen=True)
class SourceConfig:
    """The configuration of one app's source (the arguments of :func:`tencent_desk`), as
    given: checked and converted by :class:`AppSource`. Secrets never in the repr."""

    sdkappid: Any
    identifier: Any
    secret_key: Any = field(default=None, repr=False)
    usersig: Any = field(default=None, repr=False)
    seed: str | None = None
    seed_table: str | None = None
    extra_seed: str | None = None
    region: str | None = None
    api_url: str | None = None
    backup_url: str | None = None
    max_qps: Any = settings.DEFAULT_MAX_QPS
    max_concurrency: Any = None
    timeout: Any = settings.DEFAULT_TIMEOUT_S
    transport: str = settings.DEFAULT_TRANSPORT
    repoll_ended: bool = False
    max_error_share: Any = settings.DEFAULT_MAX_ERROR_SHARE
    batch_size: int = settings.DEFAULT_BATCH_SIZE
    records: Any = False
    records_from: str | None = None
    records_until: str | None = None
    records_since: Any = settings.DEFAULT_RECORDS_SINCE_S
    records_settle: Any = settings.DEFAULT_RECORDS_SETTLE_S
    keep_nicknames: Any = False

    @classmethod
    def of(cls, values: dict[str, Any]) -> SourceConfig:
        """From an app's configured values (the keys of ``core.apps.KEYS``); the receiver's
        ``callback_token`` is not the source's."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


class AppSource:
    """The resources of one app. With ``run_context.app`` (a named app of several):
    resources named after it, extracted in parallel, and failures kept to it."""

    def __init__(self, config: SourceConfig, run: RunContext, pipeline: Any = None) -> None:
        self.source, self.run, self.pipeline = config, run, pipeline
        self.client = ClientConfig(
            sdkappid=_int(config.sdkappid, "sdkappid"), identifier=str(config.identifier),
            base_urls=base_urls(config.region, config.api_url, config.backup_url),
            max_qps=checked("max_qps", config.max_qps),
            max_concurrency=None if config.max_concurrency in (None, "") else checked(
                "max_concurrency", config.max_concurrency),
            timeout=checked("timeout", config.timeout),
            transport=checked("transport", config.transport))
        if not config.secret_key and not config.usersig:
            raise ConfigError("set secret_key (or a ready-made usersig) for the tencent_desk "
                              "source in .dlt/secrets.toml or SOURCES__TENCENT_DESK__SECRET_KEY")
        self.sigs = UserSigProvider(self.client.sdkappid, self.client.identifier,
                                    secret_key=config.secret_key, usersig=config.usersig)
        self.error_share = checked("max_error_share", config.max_error_share)
        self.region = config.region or ("custom" if config.api_url else settings.DEFAULT_REGION)
        self.isolation = Isolation(run, self.client, self.region)

    def resources(self) -> list[DltResource]:
        config, load = self.source, self.records_load()
        if not config.seed:
            if load is None:
                raise ConfigError("set seed (the sessions to poll) or records = true for the "
                                  "tencent_desk source")
            return [self.isolation.resource(self.records_only(load), RECORD_RUNS,
                                            name=RECORDS_TABLE, write_disposition="merge",
                                            primary_key=RECORDS_KEY)]
        spec = SeedSpec(Path(config.seed), config.seed_table,
                        Path(config.extra_seed) if config.extra_seed else None,
                        from_events=self.run.app in self.run.events_only)
        spec.format  # noqa: B018  (fails early on an unknown seed format)
        ended: Iterable[pa.Table] | None = None
        if config.repoll_ended:
            pass
        elif self.run.app is None:
            ended = _ended_when_polled(self.client.sdkappid)
        else:  # read now: dlt's contexts are not for the threads a parallel resource runs in
            ended = list(ended_sessions(self.pipeline, sdkappid=self.client.sdkappid))
        return [self.isolation.resource(self.poll(spec, ended, load), "runs",
                                        name="session_states", write_disposition="append")]

    def records_load(self) -> RecordsLoad | None:
        config = self.source
        if not (checked("records", config.records) or config.records_from):
            return None
        sdkappid = self.client.sdkappid
        since, until = parse_span(config.records_from, config.records_until,
                                  ("records_from", "records_until"))
        return RecordsLoad(
            self.client, self.sigs, self.run.clock, self.run.run_id, since=since, until=until,
            settle_s=checked("records_settle", config.records_settle),
            first_back_s=checked("records_since", config.records_since),
            keep_nicknames=checked("keep_nicknames", config.keep_nicknames),
            state_key=RECORDS_STATE if self.run.app is None else f"{RECORDS_STATE}@{sdkappid}")

    def client_factory(self) -> DeskClient:
        return DeskClient(self.client, self.sigs, clock=self.run.clock,
                          pace_clock=self.run.pace_clock)

    def poll(self, spec: SeedSpec, ended: Iterable[pa.Table] | None,
             records: RecordsLoad | None) -> Iterator[Any]:
        run, config = self.run, self.client
        started_at = utc(run.clock)
        with PreparedSeed(spec, ended=ended) as seed:
            rejects = seed.counts.rejects
            if rejects:
                log.warning("%d seed rows rejected (see table seed_rejects)", rejects)
            if seed.empty and not spec.from_events:  # a run, not an error: said, not silent
                keys = seed.counts.keys
                log.warning("seed %s has no rows: this run asks %s", spec.where(),
                            f"only the sessions known from received events ({keys})" if keys
                            else "nothing")
            for batch in seed.reject_batches():
                yield dlt.mark.with_hints(
                    batch.append_column("run_id", pa.array([run.run_id] * batch.num_rows))
                    .append_column("sdkappid", pa.array([config.sdkappid] * batch.num_rows,
                                                        pa.int64())),
                    dlt.mark.make_hints(table_name="seed_rejects", write_disposition="append"),
                    create_table_variant=True)
            tally: Counter[str] = Counter()
            batch_size = int(self.source.batch_size)
            poller = Poller(self.client_factory, seed.key_batches(batch_size),
                            batch_size=batch_size)
            outage: Outage | None = None
            failure: str | None = None
            try:
                with run.asking():
                    for answers in poller:
                        yield to_table(answers, run.run_id, tally, config.sdkappid)
                        run.batch(len(answers), seed.counts.keys)
            except Outage as exc:  # load what was answered; the run row says why it stopped
                outage = exc
            except FatalError as exc:  # one app of several: load what it answered, say why
                failure = self.isolation.failed(exc)
            stats = poller.client.stats if poller.client else None
            row = run_row(run_id=run.run_id, started_at=started_at, finished_at=utc(run.clock),
                          seed=spec.describe(), counts=seed.counts, tally=tally, stats=stats,
                          config=config, region=self.region, rejects=rejects,
                          error=failure or (str(outage) if outage else None),
                          max_error_share=self.error_share, app=run.app)
        # After the poll: the two never share the budget at once; not after an outage.
        if records is not None and outage is None and failure is None:
            try:
                with run.asking():
                    row.update((yield from records.rows()))
            except Exception as exc:
                failure = row["error"] = self.isolation.failed(exc)
        if failure is not None:
            row["status"] = FAILED
        yield from _run_row(row, run, "runs")

    def records_only(self, load: RecordsLoad) -> Iterator[Any]:
        started_at = utc(load.clock)
        with self.run.asking():
            part = yield from load.rows()
        row = run_row(run_id=load.run_id, started_at=started_at, finished_at=utc(load.clock),
                      seed="-", counts=SeedCounts(), tally=Counter(), stats=None,
                      config=self.client, region=self.region, rejects=0, app=self.run.app)
        row.update(part, calls=part.get("records_calls", 0),
                   retries=part.get("records_retries", 0),
                   throttled=part.get("records_throttled", 0),
                   calls_per_second=part.get("records_calls_per_second", 0.0))
        # Not in ``runs``: every complete run there is a snapshot of the desk to the metrics,
        # and a records-only run polled nothing.
        yield from _run_row(row, self.run, RECORD_RUNS)


def _ended_when_polled(sdkappid: int) -> Iterator[pa.Table]:
    yield from ended_sessions(dlt.current.pipeline(), sdkappid=sdkappid)




@dataclass
class Isolation:
    """How one app of several is kept apart: its resources named after it and extracted in
    parallel, and what stops it recorded in its own ``runs`` row instead of ending the run."""

    run: RunContext  # run.app None: the single-app form, where a failure ends the run
    config: ClientConfig
    region: str

    def resource(self, rows: Iterator[Any], runs_table: str, *, name: str,
                 **hints: Any) -> DltResource:
        if self.run.app is None:
            return dlt.resource(rows, name=name, **hints)
        return dlt.resource(self._guarded(rows, runs_table), name=f"{name}_{self.run.app}",
                            table_name=name, parallelized=True, **hints)

    def failed(self, exc: BaseException) -> str:
        """The line to record for what stopped this app; raises it in the single-app form."""
        if self.run.app is None or not isinstance(exc, Exception):
            raise exc
        return self.run.failed(exc)

    def _guarded(self, rows: Iterator[Any], runs_table: str) -> Iterator[Any]:
        """A failure before the app's ``runs`` row exists (its seed, say) becomes that row."""
        try:
            yield from rows
        except Exception as exc:
            now = utc(SystemClock())
            row = run_row(run_id=self.run.run_id, started_at=now, finished_at=now, seed="-",
                          counts=SeedCounts(), tally=Counter(), stats=None, config=self.config,
                          region=self.region, rejects=0, error=self.failed(exc),
                          app=self.run.app)
            row["status"] = FAILED
            yield from _run_row(row, dataclasses.replace(self.run, interrupted=()), runs_table)


def _run_row(row: dict[str, Any], run: RunContext, table: str) -> Iterator[Any]:
    """The run's row into ``table``; earlier runs that died, each into its kind's table."""
    if run.on_run is not None:
        run.on_run(row)
    rows: dict[str, list[dict[str, Any]]] = {table: [row]}
    for earlier in run.interrupted:
        earlier = dict(earlier)
        kind = earlier.pop("kind", None)
        rows.setdefault(RECORD_RUNS if kind == "records" else "runs", []).insert(0, earlier)
    for name, items in rows.items():
        yield dlt.mark.with_hints(
            items, dlt.mark.make_hints(
                table_name=name, write_disposition="merge", primary_key="run_id",
                # declared: a table that so far holds only runs that died still has them
                columns={"error": {"data_type": "text", "nullable": True},
                         "app": {"data_type": "text", "nullable": True},
                         "sdkappid": {"data_type": "bigint", "nullable": True},
                         "rows": {"data_type": "bigint", "nullable": True},
                         "rejects": {"data_type": "bigint", "nullable": True},
                         "max_error_share": {"data_type": "double", "nullable": True}}),
            create_table_variant=True)






def _int(value: object, name: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{name} must be a number (the SDKAppID from the Chat console), "
                          f"got {str(value)[:20]!r}") from None

