"""The ledger as Parquet, for analysis (polars, DuckDB) and for ledgers kept as Parquet before.

`export_nights` writes one file per night under a folder or `s3://` prefix, Hive-style
(`night=YYYY-MM-DD/ledger.parquet`), so `pl.scan_parquet(DEST, hive_partitioning=True)` or
DuckDB's `read_parquet('DEST/**/*.parquet', hive_partitioning = true)` read it as one table.
`read_ledger_parquet` reads any Parquet file or folder with the ledger's columns.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from vidbatch.errors import StorageError
from vidbatch.ledger import LEDGER_SCHEMA, OPTIONAL_COLUMNS, current_names
from vidbatch.ledger_store.store import LedgerStore
from vidbatch.storage import open_root

__all__ = ["export_nights", "read_ledger_parquet"]


def export_nights(store: LedgerStore, dest: str) -> dict[str, int]:
    """Write the whole ledger under `dest`, one Parquet file per night, a night at a time (memory
    stays one night's); rows per night."""
    root = open_root(dest)
    written = {}
    for night in store.nights():
        frame = store.frame(night=night).drop("night")
        root.write_parquet(frame, f"night={night}/ledger.parquet")
        written[night] = frame.height
    return written


def read_ledger_parquet(path: str) -> pl.DataFrame:
    """Ledger rows from a Parquet file, or every `*.parquet` under a folder (recursively; local).
    A file whose columns are not the ledger's is refused, naming what is missing."""
    local = Path(path)
    files = sorted(local.rglob("*.parquet")) if local.is_dir() else [local]
    if not files or not all(f.exists() for f in files):
        raise StorageError(f"no Parquet ledger at {path}")
    frames = []
    for file in files:
        try:
            frame = current_names(pl.read_parquet(file))  # an export from before revision 0005 says provider
        except (OSError, pl.exceptions.PolarsError) as err:
            raise StorageError(f"cannot read {file} as Parquet: {err}") from err
        missing = [c for c in LEDGER_SCHEMA if c not in frame.columns and c not in ("night", *OPTIONAL_COLUMNS)]
        if missing:
            raise StorageError(f"{file} is not a vidbatch ledger: it lacks column(s) {', '.join(missing)}")
        if "night" not in frame.columns:  # exported per night: the night is in the folder name
            night = next((p.split("=", 1)[1] for p in file.parts if p.startswith("night=")), None)
            if night is None:
                raise StorageError(f"{file} has no night column and is not under a night=YYYY-MM-DD folder")
            frame = frame.with_columns(pl.lit(night, pl.String).alias("night"))
        frame = frame.with_columns(
            pl.lit(None, LEDGER_SCHEMA[c]).alias(c) for c in OPTIONAL_COLUMNS if c not in frame.columns
        )
        frames.append(frame.select(list(LEDGER_SCHEMA)).cast(pl.Schema(LEDGER_SCHEMA)))
    return pl.concat(frames)
