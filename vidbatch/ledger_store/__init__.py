"""The cost ledger as a database: the one owner of money (see `store.py`).

`open_ledger(root, url, policy_url)` opens the ledger of an output root; a run opens it once and
passes the store to what needs it (no store is cached per process):
  1. the URL given (`--ledger`), else `$VIDBATCH_LEDGER_URL`, else the policy's `[ledger] url`,
     else for a local root a SQLite file beside it (`<root>/ledger.db`); an `s3://` root needs a
     shared URL (StorageError);
  2. the schema is migrated to the newest revision (Alembic);
  3. the root's Parquet ledger from before (`<root>/ledger/part-*.parquet`) is imported, once per
     database (and never a row the database already holds), the parts left in place; so are its
     stitch records from before revision 0006 (`<root>/storyboards/part-*.parquet`).

The package: `store.py` (the store: reserve, append, runs and their heartbeats, stitches, the reads),
`connection.py` (engines, and connections waited for through an outage),
`queries.py` (the read side, each query bounded by what it asks about), `writes.py` (row writes
that keep `open_reservations` in step), `schema.py` + `migrations/` (tables, Alembic revisions),
`parquet.py` (export by night, import of Parquet ledgers).
"""

from __future__ import annotations

import os

from vidbatch.errors import StorageError
from vidbatch.ledger import READ_SCHEMA, current_names
from vidbatch.ledger_store.store import DEAD_AFTER_S, HEARTBEAT_S, LedgerStore
from vidbatch.layout import STITCHES
from vidbatch.storage import LocalRoot, OutputRoot
from vidbatch.storyboards import STITCH_SCHEMA

__all__ = [
    "LedgerStore",
    "open_ledger",
    "ledger_url",
    "configured_url",
    "HEARTBEAT_S",
    "DEAD_AFTER_S",
    "LEDGER_URL_ENV",
]

LEDGER_URL_ENV = "VIDBATCH_LEDGER_URL"
PARQUET_PREFIX = "ledger"  # where output roots kept their ledger before it became a database


def ledger_url(root: OutputRoot | None, url: str | None = None, policy_url: str | None = None) -> str:
    """The ledger URL for `root`: `url`, else $VIDBATCH_LEDGER_URL, else the policy's, else SQLite
    beside a local root."""
    url = configured_url(url, policy_url)
    if url and "{{" in url:  # prefect deploy leaves a placeholder whose variable was not set
        raise StorageError(
            f"{LEDGER_URL_ENV} is an unrendered template ({url}): set {LEDGER_URL_ENV} (empty for "
            "the SQLite file beside a local output root) before `prefect deploy`, then deploy again"
        )
    if url:
        return url
    if isinstance(root, LocalRoot):
        root.path.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(root.path / 'ledger.db').resolve()}"
    if root is None:
        raise StorageError(f"no ledger: give an output root (--out) or a ledger URL (--ledger, {LEDGER_URL_ENV})")
    raise StorageError(
        f"output root {root.uri} is not a local folder, so its ledger must be a database every "
        f"machine reaches: set {LEDGER_URL_ENV} (or --ledger), e.g. "
        "postgresql+psycopg://vidbatch@db.example.com/vidbatch"
    )


def configured_url(url: str | None = None, policy_url: str | None = None) -> str | None:
    """The ledger URL named anywhere: `url` (--ledger), else $VIDBATCH_LEDGER_URL, else the policy's
    `[ledger] url`; None when none is (then a local root's SQLite file is the ledger)."""
    return url or os.environ.get(LEDGER_URL_ENV) or policy_url


def open_ledger(root: OutputRoot | None, url: str | None = None, policy_url: str | None = None) -> LedgerStore:
    """The ledger store of `root`, opened and migrated; the root's Parquet ledger from before is
    imported into it the first time this database meets the root (the store records each import,
    an empty one too, so a later open reads nothing from the root: storage may be down)."""
    store = LedgerStore(ledger_url(root, url, policy_url))
    if root is None:
        return store
    source = root.key_uri(PARQUET_PREFIX)
    if not store.imported(source):
        store.import_frame(current_names(root.read_parquet_dir(PARQUET_PREFIX, READ_SCHEMA)), source)
    boards = root.key_uri(STITCHES)
    if not store.imported(boards):
        store.import_stitches(root.read_parquet_dir(STITCHES, STITCH_SCHEMA), boards)
    return store
