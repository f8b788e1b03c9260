"""dlt's PostgreSQL credentials without the password it demands (libpq finds one, or needs
none: trust, peer and certificate authentication, ``~/.pgpass``) and with a shorter
connect timeout. Its own module: dlt reads these annotations, and :mod:`destination` is
imported by the CLI before dlt is needed."""

from __future__ import annotations

from dlt.common.configuration import configspec
from dlt.common.typing import TSecretStrValue
from dlt.destinations.impl.postgres.configuration import PostgresCredentials

# Seconds to wait for a PostgreSQL server to answer a connection: a host that swallows
# packets (a firewall) fails the run this soon, in one line, exit 3 (dlt's default: 15).
CONNECT_TIMEOUT_S = 10


@configspec(init=False)
class ServerCredentials(PostgresCredentials):
    password: TSecretStrValue | None = None
    connect_timeout: int = CONNECT_TIMEOUT_S
