"""``desk-sessions listen``: the receiver in the foreground, configured like a pipeline."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from tencent_desk.api import callback
from tencent_desk.core import apps, redact, settings
from tencent_desk.core.apps import positive_setting, setting
from tencent_desk.core.errors import ConfigError, JobError
from tencent_desk.core.files import check_file, check_folder
from tencent_desk.core.serving import Limits, check_bind, serve
from tencent_desk.core.settings import ANCHOR
from tencent_desk.intake.receiver import Receiver, ReceiverConfig
from tencent_desk.intake.spool import spool_dir


def receiver_config(database: Path, seal_after_s: float) -> ReceiverConfig:
    """The receiver's settings from dlt config: ``sdkappid``, ``callback_token`` (secret,
    optional), ``keep_message_content`` (default false); and every named app's
    ``sdkappid`` and ``callback_token`` (one receiver, one URL, for all the apps)."""
    try:
        tokens = apps.callback_tokens()
    except ConfigError as exc:
        raise JobError(str(exc)) from None
    sdkappid = setting("sdkappid")
    if sdkappid in (None, "") and not tokens:
        raise JobError("missing configuration: sdkappid: set it under [sources.tencent_desk] "
                       "in .dlt/config.toml or as SOURCES__TENCENT_DESK__SDKAPPID")
    if sdkappid not in (None, ""):
        try:
            app = int(str(sdkappid).strip())
        except ValueError:
            raise JobError("sdkappid must be a number (the SDKAppID from the Chat console)"
                           ) from None
        token = setting("callback_token", secret=True)
        token = str(token) if token not in (None, "") else None
    else:
        app, token = next(iter(tokens.items()))
    named = tokens.pop(app, None)  # the single-app form's sdkappid also named as an app
    if token and named and token != named:
        raise JobError(f"sdkappid {app} has two callback_token values, at the top of "
                       "[sources.tencent_desk] and under its app: keep one")
    token = token or named
    redact.register(token, *tokens.values())
    try:
        keep = bool(apps.setting_of("keep_message_content"))
    except ConfigError as exc:
        raise JobError(str(exc)) from None
    return ReceiverConfig(sdkappid=app, spool=spool_dir(database.expanduser().absolute()),
                          token=token, keep_message_content=keep, seal_after_s=seal_after_s,
                          more_apps=tokens)


# The receiver's limits: setting under [sources.tencent_desk] -> (default, type, meaning).
LIMITS: dict[str, tuple[float, type, str]] = {
    "max_connections": (settings.RECEIVER_MAX_CONNECTIONS, int, "connections open at once"),
    "keep_alive_timeout": (settings.RECEIVER_KEEP_ALIVE_S, float,
                           "seconds an idle kept-alive connection stays open"),
    "header_timeout": (settings.RECEIVER_HEADER_TIMEOUT_S, float,
                       "seconds to send a request's headers"),
    "max_body_bytes": (callback.MAX_BODY, int, "bytes of a callback's body"),
}


def limits() -> dict[str, float]:
    """The receiver's limits from dlt config (see :data:`LIMITS`), each checked."""
    return {name: positive_setting(name, default, kind, meaning)
            for name, (default, kind, meaning) in LIMITS.items()}


def listen(args: argparse.Namespace) -> int:
    if not args.seal_after > 0:
        raise JobError("--seal-after must be a number of seconds above 0")
    if (args.database is None) == (args.state_dir is None):
        raise JobError("give --database (the DuckDB file the job loads) or --state-dir (the "
                       "job's, with a server destination), one of them")
    if args.database is not None:  # else its spool would be made beside a file of another kind
        check_file(args.database)
    anchor = args.database if args.state_dir is None else args.state_dir / ANCHOR
    config = receiver_config(anchor, args.seal_after)
    check_folder(anchor.expanduser(), "--database path" if args.state_dir is None
                 else "--state-dir")
    given = limits()
    config = dataclasses.replace(config, max_body=int(given["max_body_bytes"]))
    check_bind(args.host, args.port, allow_remote=True)  # in our line, not uvicorn's
    serve(Receiver(config), args.host, args.port, allow_remote=True, limits=Limits(
        connections=int(given["max_connections"]), keep_alive_s=given["keep_alive_timeout"],
        header_timeout_s=given["header_timeout"]))
    return 0
