"""The ledger database's connections: made once per store, and waited for through an outage.

SQLite (the default beside a local root): WAL, a busy timeout, and write transactions begun
IMMEDIATE, so a writer takes the lock up front. Any other URL: a pool that pings a connection
before it hands it out, so a database that restarted is met with a fresh one.

A connection that cannot be made because the database is down or restarting (refused, dropped) is
waited for up to `patience_s()` (60 s, or $VIDBATCH_LEDGER_PATIENCE_S), with backoff: a run writes
its money through a restart. One that stays down, or a statement that fails, raises
LedgerUnavailable, one line that names the database (never its password) and the cause. A failed
statement is not tried again: its commit may have landed, and a second one could write money twice.
"""

from __future__ import annotations

import contextlib
import os
import time

from sqlalchemy import create_engine, event, make_url
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from vidbatch.errors import LedgerUnavailable

__all__ = ["make_engine", "connected", "patience_s", "PATIENCE_ENV"]

PATIENCE_ENV = "VIDBATCH_LEDGER_PATIENCE_S"


def patience_s() -> float:
    """How long a connection is waited for while the database cannot be reached (a restart, a
    fail-over): $VIDBATCH_LEDGER_PATIENCE_S, else 60 s."""
    return float(os.environ.get(PATIENCE_ENV) or 60.0)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection, _record) -> None:
            dbapi_connection.isolation_level = None  # transactions are begun below, not by the driver
            for pragma in ("journal_mode=WAL", "busy_timeout=60000", "synchronous=NORMAL"):
                dbapi_connection.execute(f"PRAGMA {pragma}")

        @event.listens_for(engine, "begin")
        def _begin(connection: Connection) -> None:
            immediate = connection.get_execution_options().get("immediate")
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True)


@contextlib.contextmanager
def connected(engine: Engine, url: str):
    """A connection, waited for while the database cannot be reached (up to `patience_s()`); else,
    or when a statement fails, LedgerUnavailable."""
    waited, delay, patience = 0.0, 0.25, patience_s()
    while True:
        try:
            conn = engine.connect()
            break
        except DBAPIError as err:
            if waited >= patience or not (err.connection_invalidated or _unreachable(err)):
                raise LedgerUnavailable(_failed(url, "cannot be reached", err, waited)) from None
            time.sleep(delay)
            waited, delay = waited + delay, min(delay * 2, 5.0)
    try:
        with conn:
            yield conn
    except DBAPIError as err:
        raise LedgerUnavailable(_failed(url, "failed", err, 0.0)) from None


def _unreachable(err: DBAPIError) -> bool:
    """A connection refused or dropped (worth waiting for), not a wrong password or database name."""
    words = str(err.orig or err).lower()
    return isinstance(err, OperationalError) and not any(
        word in words for word in ("password", "authentication", "does not exist", "permission denied")
    )


def _failed(url: str, what: str, err: DBAPIError, waited: float) -> str:
    where = make_url(url).render_as_string(hide_password=True)
    cause = (str(err.orig or err).strip().splitlines() or [""])[0][:300]
    tried = f" (for {waited:.0f} s)" if waited else ""
    return f"the ledger database {where} {what}{tried}: {type(err.orig or err).__name__}: {cause}"
