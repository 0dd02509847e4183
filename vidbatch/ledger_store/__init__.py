"""The cost ledger as a database: the one owner of money (see `store.py`).

`ledger_for(root)` opens the ledger of an output root, once per process and URL:
  1. the URL given (`--ledger`), else `$VIDBATCH_LEDGER_URL`, else the policy's `[ledger] url`
     (`use_policy_ledger`), else for a local root a SQLite file beside it (`<root>/ledger.db`);
     an `s3://` root needs a shared URL (StorageError);
  2. the schema is migrated to the newest revision (Alembic);
  3. the root's Parquet ledger from before (`<root>/ledger/part-*.parquet`) is imported, once per
     database (and never a row the database already holds), the parts left in place.

The package: `store.py` (the store: reserve, append, runs and their heartbeats, the reads),
`queries.py` (the read side, each query bounded by what it asks about), `writes.py` (row writes
that keep `open_reservations` in step), `schema.py` + `migrations/` (tables, Alembic revisions),
`parquet.py` (export by night, import of Parquet ledgers).
"""

from __future__ import annotations

import os
import threading

from vidbatch.errors import StorageError
from vidbatch.ledger import LEDGER_SCHEMA
from vidbatch.ledger_store.store import DEAD_AFTER_S, HEARTBEAT_S, LedgerStore
from vidbatch.storage import LocalRoot, OutputRoot

__all__ = ["LedgerStore", "ledger_for", "ledger_url", "configured_url", "use_policy_ledger", "HEARTBEAT_S", "DEAD_AFTER_S",
           "LEDGER_URL_ENV"]

LEDGER_URL_ENV = "VIDBATCH_LEDGER_URL"
PARQUET_PREFIX = "ledger"  # where output roots kept their ledger before it became a database
_STORES: dict[str, LedgerStore] = {}
_MET: set[tuple[str, str]] = set()  # (ledger URL, root URI) pairs whose old Parquet parts were looked for
_POLICY_URL: dict[str, str] = {}  # the running policy's [ledger] url, below --ledger and the environment
_LOCK = threading.Lock()


def ledger_url(root: OutputRoot | None, url: str | None = None) -> str:
    """The ledger URL for `root`: `url`, else $VIDBATCH_LEDGER_URL, else the policy's, else SQLite
    beside a local root."""
    url = configured_url(url)
    if url and "{{" in url:  # prefect deploy leaves a placeholder whose variable was not set
        raise StorageError(f"{LEDGER_URL_ENV} is an unrendered template ({url}): set {LEDGER_URL_ENV} (empty for "
                           "the SQLite file beside a local output root) before `prefect deploy`, then deploy again")
    if url:
        return url
    if isinstance(root, LocalRoot):
        root.path.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(root.path / 'ledger.db').resolve()}"
    if root is None:
        raise StorageError(f"no ledger: give an output root (--out) or a ledger URL (--ledger, {LEDGER_URL_ENV})")
    raise StorageError(f"output root {root.uri} is not a local folder, so its ledger must be a database every "
                       f"machine reaches: set {LEDGER_URL_ENV} (or --ledger), e.g. "
                       "postgresql+psycopg://vidbatch@db.example.com/vidbatch")


def configured_url(url: str | None = None) -> str | None:
    """The ledger URL named anywhere: `url` (--ledger), else $VIDBATCH_LEDGER_URL, else the policy's
    `[ledger] url`; None when none is (then a local root's SQLite file is the ledger)."""
    return url or os.environ.get(LEDGER_URL_ENV) or _POLICY_URL.get("url")


def use_policy_ledger(url: str | None) -> None:
    """Adopt a policy's `[ledger] url` for this process: used where neither --ledger nor
    $VIDBATCH_LEDGER_URL names a ledger."""
    if url:
        _POLICY_URL["url"] = url
    else:
        _POLICY_URL.pop("url", None)


def ledger_for(root: OutputRoot | None, url: str | None = None) -> LedgerStore:
    """The ledger store of `root` (opened and migrated once per process and URL); the first time a
    process meets a root, the root's Parquet ledger from before is imported (once per database)."""
    resolved = ledger_url(root, url)
    with _LOCK:
        store = _STORES.get(resolved)
        if store is None:
            store = _STORES[resolved] = LedgerStore(resolved)
        if root is not None and (resolved, root.uri) not in _MET:
            _MET.add((resolved, root.uri))  # several roots may share one database: each is imported
            parts = root.read_parquet_dir(PARQUET_PREFIX, LEDGER_SCHEMA)
            if parts.height:
                store.import_frame(parts, root.key_uri(PARQUET_PREFIX))
    return store
