"""Which Desk apps a run covers: the one app of ``[sources.tencent_desk]`` (the single-app
form), or the named apps of ``[sources.tencent_desk.apps.<name>]``, each with its own
credentials, limit and seed. The only place that reads the apps' configuration.

A named app takes every key from its own section; keys it does not set fall back to
``[sources.tencent_desk]`` (``identifier``, ``region``, ``max_qps`` ...), except its
identity and credentials (``sdkappid``, ``secret_key``, ``usersig``, ``callback_token``)
and its seed, which are its own.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dlt
from tencent_desk.core import settings
from tencent_desk.core.errors import ConfigError, JobError

SECTION = "sources.tencent_desk"
ENV_PREFIX = "SOURCES__TENCENT_DESK__APPS__"
DEFAULT_NAME = "default"  # the app of the single-app form
_NAME = re.compile(r"^[a-z0-9_]{1,40}$")

# Keys an app never inherits from [sources.tencent_desk]: who it is, and what it asks about.
OWN = ("sdkappid", "secret_key", "usersig", "callback_token", "seed", "seed_table")
SECRETS = ("secret_key", "usersig", "callback_token")
# Keys of the source an app may set (the rest are the run's: records window, clocks ...).
KEYS = (*OWN, "identifier", "region", "api_url", "backup_url", "max_qps", "max_concurrency",
        "timeout", "transport", "max_error_share", "records", "records_since", "records_settle",
        "keep_nicknames")


@dataclass(frozen=True)
class App:
    """One app of the configuration. ``values``: the source's arguments for it (secrets
    included: never printed, see ``__repr__``)."""

    name: str
    sdkappid: int
    values: dict[str, Any] = field(repr=False, compare=False)
    named: bool = True  # False: the single-app form, [sources.tencent_desk] itself

    def __repr__(self) -> str:
        return f"App(name={self.name!r}, sdkappid={self.sdkappid})"


def names() -> list[str]:
    """The named apps, from .dlt/*.toml and the environment, sorted."""
    from dlt.common.configuration.container import Container
    from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

    found: set[str] = set()
    for provider in Container()[PluggableRunContext].providers.providers:
        if provider.name.endswith(".toml"):
            value, _ = provider.get_value("apps", dict, None, *SECTION.split("."))
            if isinstance(value, dict):
                found |= {str(k) for k in value}
    found |= {k[len(ENV_PREFIX):].split("__", 1)[0].lower() for k in os.environ
              if k.startswith(ENV_PREFIX) and "__" in k[len(ENV_PREFIX):]}
    for name in found:
        if not _NAME.match(name):
            raise ConfigError(f"app name {name[:40]!r} under [{SECTION}.apps]: use lower-case "
                              "letters, digits and _ (it is also an environment variable part)")
    return sorted(found)


def _flag(value: object) -> bool:
    if value is True or value is False:
        return value
    text = str(value).strip().lower()
    if text in TRUE or text in FALSE:
        return text in TRUE
    raise ValueError(text)


def _number(kind: type, low: float, *, above: bool) -> Callable[[object], float]:
    def parse(value: object) -> float:
        if isinstance(value, bool):
            raise ValueError(value)
        number = float(str(value).strip())
        if not (math.isfinite(number) and number >= low and not (above and number == low)):
            raise ValueError(value)
        if kind is int:
            if not number.is_integer():
                raise ValueError(value)
            return int(number)
        return number

    return parse


def _share(value: object) -> float:
    share = _number(float, 0, above=False)(value)
    if share > 1:
        raise ValueError(value)
    return share


def _transport(value: object) -> str:
    kind = str(value).strip().lower()
    if kind not in settings.TRANSPORTS:
        raise ValueError(value)
    return kind


TRUE = ("true", "yes", "t", "y", "1")
FALSE = ("false", "no", "f", "n", "0")
# Every setting of docs/operations.md's Configuration table that is a number, a flag or a
# choice (and the receiver's keep_message_content): how it is read, what it must be. The one
# place that converts them: a value that is not what it must be is one line naming it, exit 2.
CHECKS: dict[str, tuple[Callable[[object], Any], str]] = {
    "max_qps": (_number(float, 0, above=True), "a number above 0 (calls per second)"),
    "max_concurrency": (_number(int, 1, above=False),
                        "a whole number of 1 or more (calls in flight)"),
    "timeout": (_number(float, 0, above=True), "a number of seconds above 0"),
    "transport": (_transport, "one of " + ", ".join(settings.TRANSPORTS)),
    "records": (_flag, "true or false"),
    "records_since": (_number(int, 0, above=True), "a whole number of seconds above 0"),
    "records_settle": (_number(int, 0, above=False), "a whole number of seconds, 0 or more"),
    "keep_nicknames": (_flag, "true or false"),
    "keep_message_content": (_flag, "true or false"),
    "max_error_share": (_share, "a share from 0 to 1 (e.g. 0.05 for 5%)"),
    "snapshot_retention": (_number(float, 0, above=True),
                           "a number above 0 (seconds the snapshot's replaced files stay "
                           f"for readers of older snapshots; default "
                           f"{settings.SNAPSHOT_RETENTION_S:g})"),
}


def checked(key: str, value: object, app: str | None = None) -> Any:
    """``value`` of setting ``key`` (one of :data:`CHECKS`) converted; else
    :class:`ConfigError`, one line naming the key, what it must be and where to fix it
    (``app``: a named app's section)."""
    convert, what = CHECKS[key]
    try:
        return convert(value)
    except (ValueError, TypeError):
        section, env = ((f"{SECTION}.apps.{app}", f"{ENV_PREFIX}{app.upper()}__")
                        if app else (SECTION, "SOURCES__TENCENT_DESK__"))
        raise ConfigError(f"{key} must be {what}, got {str(value)[:20]!r}: fix it under "
                          f"[{section}] or {env}{key.upper()}") from None


def check_settings(keys: tuple[str, ...] = tuple(CHECKS)) -> None:
    """The settings ``keys`` of [sources.tencent_desk] and of every named app, each
    checked (:func:`checked`) before any work: what the user must fix, said at once."""
    for key in keys:
        value = _value(f"{SECTION}.{key}", key in SECRETS)
        if value is not None:
            checked(key, value)
    for name in names():
        for key in keys:
            value = _value(f"{SECTION}.apps.{name}.{key}", key in SECRETS)
            if value is not None:
                checked(key, value, name)


def setting_of(key: str) -> Any:
    """Setting ``key`` (one of :data:`CHECKS`) of [sources.tencent_desk], checked; None
    when unset."""
    value = _value(f"{SECTION}.{key}", False)
    return None if value is None else checked(key, value)


def _value(path: str, secret: bool) -> Any:
    store = dlt.secrets if secret else dlt.config
    try:
        value = store[path]
    except KeyError:
        return None
    return None if value == "" else value


def sdkappid_of(value: object, where: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number <= 0:
        raise ConfigError(f"sdkappid of {where} must be a number (the SDKAppID from the Chat "
                          f"console), got {str(value)[:20]!r}")
    return number


def resolve(overrides: dict[str, Any] | None = None, only: list[str] | None = None
            ) -> list[App]:
    """The apps of this run, in name order; ``overrides`` (the command line's options) apply
    to every app. Without named apps: the single-app form, or [] when it has no sdkappid
    either (the source then says what is missing). Raises :class:`ConfigError`, one line."""
    overrides = dict(overrides or {})
    listed = names()
    if not listed:
        if only:
            raise ConfigError(f"--app {only[0]}: no apps are configured under [{SECTION}.apps]")
        return []
    wanted = only or listed
    unknown = [n for n in wanted if n not in listed]
    if unknown:
        raise ConfigError(f"app {unknown[0]!r} is not configured: the apps are "
                          f"{', '.join(listed)}")
    out: list[App] = []
    for name in wanted:
        values: dict[str, Any] = {}
        for key in KEYS:
            secret = key in SECRETS
            value, of = _value(f"{SECTION}.apps.{name}.{key}", secret), name
            if value is None and key not in OWN:
                value, of = _value(f"{SECTION}.{key}", secret), None
            if value is not None:
                values[key] = checked(key, value, of) if key in CHECKS else value
        where = f"app {name}"
        if "sdkappid" not in values:
            raise ConfigError(f"{where} has no sdkappid: set it under [{SECTION}.apps.{name}] "
                              f"or as {ENV_PREFIX}{name.upper()}__SDKAPPID")
        values["sdkappid"] = sdkappid_of(values["sdkappid"], where)
        if "secret_key" not in values and "usersig" not in values:
            raise ConfigError(f"{where} has no secret_key (or usersig): set it under "
                              f"[{SECTION}.apps.{name}] in .dlt/secrets.toml or as "
                              f"{ENV_PREFIX}{name.upper()}__SECRET_KEY")
        values.update(overrides)
        out.append(App(name, values["sdkappid"], values))
    seen: dict[int, str] = {}
    for app in out:
        if app.sdkappid in seen:
            raise ConfigError(f"apps {seen[app.sdkappid]} and {app.name} have the same sdkappid "
                              f"{app.sdkappid}: one app, one section")
        seen[app.sdkappid] = app.name
    return out


def legacy_sdkappid(apps: list[App]) -> int | None:
    """The app rows of a database made before ``sdkappid`` existed belong to: the app of
    ``[sources.tencent_desk]`` (the only form earlier versions read), else the only app
    configured; None when several apps and no top-level one (their rows keep NULL)."""
    top = _value(f"{SECTION}.sdkappid", False)
    if top is not None:
        return sdkappid_of(top, f"[{SECTION}]")
    return apps[0].sdkappid if len(apps) == 1 else None


def callback_tokens() -> dict[int, str | None]:
    """sdkappid -> webhook token (None: no Sign check) of every named app, for the receiver."""
    out: dict[int, str | None] = {}
    for name in names():
        where = f"app {name}"
        sdkappid = _value(f"{SECTION}.apps.{name}.sdkappid", False)
        if sdkappid is None:
            raise ConfigError(f"{where} has no sdkappid: set it under [{SECTION}.apps.{name}]")
        token = _value(f"{SECTION}.apps.{name}.callback_token", True)
        out[sdkappid_of(sdkappid, where)] = None if token is None else str(token)
    return out

def setting(name: str, secret: bool = False) -> object:
    """An optional value of ``sources.tencent_desk`` in dlt config (None when unset)."""
    store = dlt.secrets if secret else dlt.config
    try:
        return store[f"sources.tencent_desk.{name}"]
    except KeyError:
        return None


def positive_setting(name: str, default: float, kind: type = float, meaning: str = "") -> float:
    """A number above 0 of ``sources.tencent_desk`` in dlt config (``default`` when unset);
    anything else stops with one line naming it, its meaning and where to fix it."""
    raw = setting(name)
    try:
        value = kind(default if raw in (None, "") else str(raw).strip())
    except ValueError:
        value = 0
    if not value > 0:
        raise JobError(f"{name} must be a number above 0 ({meaning}; default {default:g}): "
                       f"fix it under [{SECTION}] or SOURCES__TENCENT_DESK__{name.upper()}")
    return value
