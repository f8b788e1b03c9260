"""``desk-sessions simulate``: serve the simulator in the foreground."""

from __future__ import annotations

import argparse
import logging
import threading
import time

import dlt
from tencent_desk.api.callback import expected_sign
from tencent_desk.core import apps
from tencent_desk.core.apps import setting
from tencent_desk.core.errors import ConfigError, JobError
from tencent_desk.core.serving import check_bind

from .app import FAULT_KINDS, SimulatorApp, SimulatorConfig
from .callbacks import Knobs, Sender, plan, send_due
from .model import DAY_START, Population, PopulationConfig
from .server import build_app, serve, write_seed_csv

log = logging.getLogger("desk_sessions")


def credential(name: str, secret: bool = False) -> str:
    """A value from the same dlt config a pipeline reads (``sources.tencent_desk.*``)."""
    store = dlt.secrets if secret else dlt.config
    try:
        value = store[f"sources.tencent_desk.{name}"]
    except KeyError:
        value = None
    if value in (None, ""):
        raise JobError(f"missing configuration: {name}: set it under [sources.tencent_desk] in "
                       f".dlt/{'secrets' if secret else 'config'}.toml or as "
                       f"SOURCES__TENCENT_DESK__{name.upper()}, as for a pipeline")
    return str(value)


def app_credentials(name: str) -> tuple[int, str, str, str | None]:
    """(sdkappid, identifier, secret_key, callback_token) of the app ``--app NAME``."""
    try:
        (app,) = apps.resolve(only=[name])
    except ConfigError as exc:
        raise JobError(str(exc)) from None
    if "identifier" not in app.values or "secret_key" not in app.values:
        raise JobError(f"app {name}: the simulator needs its identifier and secret_key")
    token = app.values.get("callback_token")
    return (app.sdkappid, str(app.values["identifier"]), str(app.values["secret_key"]),
            None if token is None else str(token))


def simulate(args: argparse.Namespace) -> int:
    if args.app:  # one app of several: run one simulator per app, each on its own port
        sdkappid, identifier, secret_key, token = app_credentials(args.app)
    else:
        try:
            sdkappid = int(credential("sdkappid"))
        except ValueError:
            raise JobError("sdkappid must be a number") from None
        identifier = credential("identifier")
        secret_key = credential("secret_key", secret=True)
        token = str(setting("callback_token", secret=True) or "") or None
    faults = {k: getattr(args, k) for k in FAULT_KINDS}  # each in [0, 1] (cli.py)
    if sum(faults.values()) > 1 + 1e-9:
        given = ", ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in faults.items() if v)
        raise JobError(f"the fault shares add up to {sum(faults.values()):g} ({given}): "
                       "at most 1, the share of calls answered with a fault")
    agents = PopulationConfig.agents
    if args.agent_groups > agents:
        raise JobError(f"--agent-groups {args.agent_groups}: at most {agents}, the simulated "
                       "desk's agents (one group needs one agent at least)")
    check_bind(args.host, args.port, allow_remote=args.allow_remote)  # before the day is built
    config = SimulatorConfig(
        sdkappid=sdkappid, identifier=identifier, secret_key=secret_key,
        rate_limit=args.rate_limit or None, latency_s=args.latency_ms / 1000.0,
        seed=args.seed, **faults)
    now = time.time()
    day = now // 86400 * 86400 if args.today else DAY_START
    groups = tuple(f"Group {k + 1}" for k in range(args.agent_groups))
    population = Population(PopulationConfig(seed=args.seed, sessions_per_day=args.sessions,
                                             day_start=day, agent_groups=groups))
    if args.seed_out:
        rows = write_seed_csv(population, args.seed_out)
        log.info("wrote %d seed rows to %s", rows, args.seed_out)
    app = build_app(config, population, speed=1.0 if args.today else args.speed,
                    start=now if args.today else day + args.start_hour * 3600)
    if args.callback_url:
        _start_callbacks(app, args, token)
    log.info("simulating %d sessions for SDKAppID %d on http://%s:%d (rate limit %s)",
             len(population), sdkappid, args.host, args.port, args.rate_limit or "none")
    try:
        serve(app, args.host, args.port, allow_remote=args.allow_remote)
    except ValueError as exc:
        raise JobError(str(exc)) from None
    return 0


def _start_callbacks(app: SimulatorApp, args: argparse.Namespace, token: str | None
                     ) -> None:
    """POST the day's session events to ``--callback-url`` as the model clock reaches them."""
    knobs = Knobs(lost=args.callback_lost, repeated=args.callback_repeated,
                  reordered=args.callback_reordered, delayed=args.callback_delayed,
                  seed=args.seed)

    def sign() -> dict[str, str]:
        now = str(int(time.time()))
        return {"RequestTime": now, "Sign": expected_sign(token, now)} if token else {}

    sender = Sender(args.callback_url, app.config.sdkappid, sign=sign)
    pending = plan(app.population, knobs)

    def loop() -> None:
        nonlocal pending
        while pending:
            pending = send_due(sender, pending, app.model_clock.time())
            time.sleep(0.5)

    threading.Thread(target=loop, name="desk-callbacks", daemon=True).start()
    log.info("posting %d session event callbacks to %s as the simulated day goes",
             len(pending), args.callback_url)
