"""`vidbatch ledger`: spend by night, export as Parquet, import Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidbatch.money import usd_text
from vidbatch.cli.common import (
    LEDGER_HEADERS,
    SHOWN,
    JsonOpt,
    LedgerOpt,
    OutOpt,
    PolicyOpt,
    existing_ledger,
    fail,
    ndjson,
    out_console,
    policy_ledger_url,
    table,
)
from vidbatch.errors import PolicyError, StorageError

__all__ = ["ledger_app"]

ledger_app = typer.Typer(help="The cost ledger: spend by night (default), export as Parquet, import Parquet.")


@ledger_app.callback(invoke_without_command=True)
def ledger(
    ctx: typer.Context,
    out: OutOpt = "vidbatch-out",
    as_json: JsonOpt = False,
    ledger_url: LedgerOpt = None,
    policy: PolicyOpt = None,
) -> None:
    """Spend by night, campaign and route: estimated vs actual (newest nights first)."""
    if ctx.invoked_subcommand:
        return
    import polars as pl

    from vidbatch.storage import open_root

    try:
        store = existing_ledger(open_root(out), ledger_url, policy_ledger_url(policy))
    except (PolicyError, StorageError) as err:
        fail(str(err), 2)
    if as_json:
        if store is not None:
            ndjson(store.spend(["night", "campaign", "route"]))
        return
    nights = store.nights(SHOWN) if store is not None else []
    if not nights:
        out_console.print(f"no spend recorded under {out}")
        return
    # The newest nights' groups only: what the terminal shows costs the same with a year of history.
    groups = store.spend(["night", "campaign", "route"], nights=nights).sort(
        "night", "campaign", "route", descending=[True, False, False]
    )
    out_console.print(table(f"ledger {out}", groups.head(SHOWN), groups.columns, LEDGER_HEADERS), soft_wrap=True)
    if groups.height > SHOWN or len(nights) == SHOWN:
        older = " and older nights" if len(nights) == SHOWN else ""
        out_console.print(
            f"  … and {max(groups.height - SHOWN, 0):,} more rows{older} (all rows: --json)", highlight=False
        )
    span = f"{nights[-1]} to {nights[0]}" if len(nights) > 1 else nights[0]
    by_route = groups.group_by("route").agg(pl.exclude("night", "campaign").sum()).sort("route")
    out_console.print(table(f"by route, {span}", by_route, by_route.columns, LEDGER_HEADERS))
    out_console.print(
        f"total actual {usd_text(by_route['actual_usd'].sum())} "
        f"(estimated {usd_text(by_route['est_usd'].sum())}), {span}",
        highlight=False,
    )


@ledger_app.command("export")
def ledger_export(
    dest: Annotated[str, typer.Argument(help="folder or s3://bucket/prefix")],
    out: OutOpt = "vidbatch-out",
    ledger_url: LedgerOpt = None,
    policy: PolicyOpt = None,
) -> None:
    """Write the ledger as Parquet, one file per night (DEST/night=YYYY-MM-DD/ledger.parquet)."""
    from vidbatch.ledger_store import open_ledger
    from vidbatch.ledger_store.parquet import export_nights
    from vidbatch.storage import open_root

    try:
        written = export_nights(open_ledger(open_root(out), ledger_url, policy_ledger_url(policy)), dest)
    except (PolicyError, StorageError) as err:
        fail(str(err), 2)
    out_console.print(f"exported {sum(written.values()):,} rows in {len(written)} night(s) to {dest}", highlight=False)


@ledger_app.command("import")
def ledger_import(
    path: Annotated[str, typer.Argument(help="a Parquet file or folder with the ledger's columns")],
    out: OutOpt = "vidbatch-out",
    ledger_url: LedgerOpt = None,
    policy: PolicyOpt = None,
) -> None:
    """Add the rows of a Parquet ledger (a file, or a folder such as an export) once; a second
    import of the same path adds nothing."""
    from vidbatch.ledger_store import open_ledger
    from vidbatch.ledger_store.parquet import read_ledger_parquet
    from vidbatch.storage import open_root

    try:
        frame = read_ledger_parquet(path)
        store = open_ledger(open_root(out), ledger_url, policy_ledger_url(policy))
        added = store.import_frame(frame, str(Path(path).resolve()))
    except (PolicyError, StorageError) as err:
        fail(str(err), 2)
    out_console.print(
        f"imported {added:,} rows from {path}" if added else f"{path} was imported before: nothing added",
        highlight=False,
    )
