"""What the `vidbatch` commands share: options, consoles, failing with an exit code, tables,
NDJSON, and opening the ledger a command names."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer
from rich.console import Console
from rich.table import Table

__all__ = [
    "out_console",
    "err_console",
    "PolicyOpt",
    "OutOpt",
    "JsonOpt",
    "LedgerOpt",
    "SandboxOpt",
    "fail",
    "table",
    "ndjson",
    "policy_ledger_url",
    "existing_ledger",
    "LEDGER_HEADERS",
    "SHOWN",
]

out_console = Console()
err_console = Console(stderr=True)

PolicyOpt = Annotated[Optional[Path], typer.Option("--policy", help="policy TOML (default: the shipped one)")]
OutOpt = Annotated[str, typer.Option("--out", help="output root: a folder or s3://bucket/prefix")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output, one JSON object per line")]
LedgerOpt = Annotated[
    Optional[str],
    typer.Option(
        "--ledger", help="ledger database URL (default: $VIDBATCH_LEDGER_URL, else SQLite beside a local --out)"
    ),
]
SandboxOpt = Annotated[
    bool,
    typer.Option(
        "--sandbox",
        help="every paid route on a loopback server of its kind: no money spent, ledger rows marked sandbox",
    ),
]


def fail(message: str, code: int) -> NoReturn:
    """The command's one line (its text as it is: `[redacted]` is not markup) and its exit code."""
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def table(title: str, frame, columns: list[str], headers: dict[str, str] | None = None) -> Table:
    """A rich table of a few rows: free text wraps; ids, dates and numbers keep their full width."""
    shown = Table(title=title, show_lines=False)
    rows = [[_cell(v) for v in row] for row in frame.select(columns).iter_rows()]
    for index, column in enumerate(columns):
        free_text = column.startswith(("reason", "first items"))
        widest = max((len(row[index]) for row in rows), default=0)
        shown.add_column(
            (headers or {}).get(column, column), overflow="fold", min_width=None if free_text else min(widest, 24)
        )
    for row in rows:
        shown.add_row(*row)
    return shown


LEDGER_HEADERS = {"failed_calls": "failed", "est_usd": "est $", "actual_usd": "actual $"}
SHOWN = 40  # rows of any table a person reads at the terminal; the rest is in a file or --json


def policy_ledger_url(policy) -> str | None:
    """A --policy's `[ledger] url` (a path, or a loaded Policy), below --ledger and the environment."""
    if policy is None:
        return None
    from vidbatch.policy import Policy, load_policy

    return (policy if isinstance(policy, Policy) else load_policy(policy)).ledger.url


def existing_ledger(root, url: str | None, policy_url: str | None = None):
    """`root`'s ledger store, or None when there is no root (or a local one not made yet) and no URL."""
    from vidbatch.ledger_store import configured_url, open_ledger
    from vidbatch.storage import LocalRoot

    if not configured_url(url, policy_url) and (
        root is None or (isinstance(root, LocalRoot) and not root.path.exists())
    ):
        return None
    return open_ledger(root, url, policy_url)


def ndjson(frame) -> None:
    """Rows as NDJSON on standard output, written by polars (no Python object per row)."""
    sys.stdout.flush()
    frame.write_ndjson(sys.stdout.buffer)
    sys.stdout.buffer.flush()
