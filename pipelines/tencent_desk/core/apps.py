"""Which Desk apps a run covers: the one app of ``[sources.tencent_desk]`` (the single-app
form), or the named apps of ``[sources.tencent_desk.apps.<name>]``, each with its own
credentials, limit and seed. The only place that reads the apps' configuration.

A named app takes every key from its own section; keys it does not set fall back to
``[sources.tencent_desk]`` (``identifier``, ``region``, ``max_qps`` ...), except its
identity and credentials (``sdkappid``, ``secret_key``, ``usersig``, ``callback_token``)
and its seed, which are its own.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import dlt
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
            value = _value(f"{SECTION}.apps.{name}.{key}", secret)
            if value is None and key not in OWN:
                value = _value(f"{SECTION}.{key}", secret)
            if value is not None:
                values[key] = value
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
