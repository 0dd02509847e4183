"""`vidbatch review`: the clips awaiting review (default), `approve ITEM…`, `reject ITEM… --note`."""

from __future__ import annotations

import getpass
from typing import Annotated, Optional

import typer
from rich.markup import escape

from vidbatch.cli.common import (
    SHOWN,
    JsonOpt,
    LedgerOpt,
    OutOpt,
    PolicyOpt,
    err_console,
    existing_ledger,
    fail,
    ndjson,
    out_console,
    policy_ledger_url,
    table,
)
from vidbatch.errors import PolicyError, StorageError

__all__ = ["review_app"]

review_app = typer.Typer(
    help="Clips awaiting a person's approval (the policy's review section): list (default), approve, reject."
)

CampaignOpt = Annotated[Optional[str], typer.Option("--campaign", help="only this campaign's clips")]
ReviewerOpt = Annotated[Optional[str], typer.Option("--reviewer", help="your name in the ledger (default: $USER)")]
Items = Annotated[list[str], typer.Argument(help="item ids (or campaign/item_id where an id is in two campaigns)")]


def _open(out: str, ledger_url: str | None, policy):
    from vidbatch.storage import open_root

    try:
        root = open_root(out)
        store = existing_ledger(root, ledger_url, policy_ledger_url(policy))
    except (PolicyError, StorageError) as err:
        fail(str(err), 2)
    return root, store


@review_app.callback(invoke_without_command=True)
def review(
    ctx: typer.Context,
    out: OutOpt = "vidbatch-out",
    campaign: CampaignOpt = None,
    as_json: JsonOpt = False,
    ledger_url: LedgerOpt = None,
    policy: PolicyOpt = None,
) -> None:
    """List the clips awaiting review: item, campaign, route, cost, where to watch it."""
    if ctx.invoked_subcommand:
        return
    import polars as pl

    from vidbatch.review_io import PENDING_COLUMNS, pending_clips

    root, store = _open(out, ledger_url, policy)
    pending = pending_clips(root, store, campaign) if store is not None else None
    if as_json:
        if pending is not None:
            ndjson(pending.select(PENDING_COLUMNS))
        return
    if pending is None or not pending.height:
        out_console.print(f"no clip awaits review under {out}" + (f" in campaign {campaign}" if campaign else ""))
        return
    shown = pending.head(SHOWN).with_columns(
        pending["cost_usd"].head(SHOWN).round(4), *(pl.col(c).round(2) for c in ("coherence", "adherence", "motion"))
    )
    out_console.print(
        table(
            f"{pending.height:,} clip(s) awaiting review under {out}",
            shown,
            ["item_id", "campaign", "route", "cost_usd", "coherence", "adherence", "motion", "watch"],
            {"cost_usd": "cost $"},
        ),
        soft_wrap=True,
    )
    if pending.height > SHOWN:
        out_console.print(f"  … and {pending.height - SHOWN:,} more (all: --json, or --campaign)", highlight=False)
    out_console.print(
        "  approve: vidbatch review approve ITEM… --out ROOT; reject: vidbatch review reject ITEM… "
        "--note TEXT [--prompt TEXT] --out ROOT",
        highlight=False,
    )


def _verdicts(pending, decided: dict, items: list[str], verdict: str, note: str, prompt: str):
    """One verdict per named item, each resolved to its campaign (a clip awaiting review, else one
    another reviewer decided: `decide` answers for it); unknown or ambiguous ids refused."""
    from vidbatch.review import ClipVerdict

    campaigns: dict[str, list[str]] = {}
    for c, i in pending.select("campaign", "item_id").iter_rows():
        campaigns.setdefault(i, []).append(c)
    verdicts, problems = [], []
    for name in items:
        campaign, _, item = name.rpartition("/")
        found = [campaign] if campaign else campaigns.get(item) or [c for c, i in decided if i == item]
        if len(found) != 1:
            problems.append(
                f"{name}: "
                + (
                    "no clip of it is awaiting review"
                    if not found
                    else f"in campaigns {', '.join(found)}: name it campaign/{item}"
                )
            )
            continue
        verdicts.append(ClipVerdict(campaign=found[0], item_id=item, verdict=verdict, note=note, prompt=prompt))
    return verdicts, problems


def _decide(
    items: list[str],
    verdict: str,
    note: str,
    prompt: str,
    out: str,
    reviewer: str | None,
    ledger_url: str | None,
    policy,
) -> None:
    from vidbatch.review_io import decide, pending_clips

    root, store = _open(out, ledger_url, policy)
    if store is None:
        fail(f"no ledger under {out}: nothing awaits review there", 2)
    ids = sorted({i.rpartition("/")[2] for i in items})
    pending = pending_clips(root, store, item_ids=ids)
    verdicts, problems = _verdicts(pending, store.verdicts(ids), items, verdict, note, prompt)
    if verdict == "reject" and not note.strip():
        fail("a rejection needs --note saying why (it is recorded in the ledger)", 2)
    if problems:  # nothing is recorded when any name is wrong: a typo does not approve half a list
        fail("; ".join(problems), 2)
    result = decide(root, store, verdicts, reviewer=reviewer or getpass.getuser())
    for uri in result["delivered"]:
        out_console.print(f"approved and delivered -> {uri}", highlight=False, soft_wrap=True)
    for item in result["rejected"]:
        out_console.print(
            f"rejected {item}: the next run makes it again"
            + (" with the edited prompt" if prompt else " with another seed"),
            highlight=False,
        )
    for line in result["taken"] + result["refused"] + result["undelivered"]:
        err_console.print(f"  [yellow]{escape(line)}[/]", highlight=False, soft_wrap=True)
    if result["refused"]:
        raise typer.Exit(1)
    if result["taken"]:  # another reviewer's verdict stands, whether it came first or won the same moment
        raise typer.Exit(2)


@review_app.command()
def approve(
    items: Items,
    out: OutOpt = "vidbatch-out",
    reviewer: ReviewerOpt = None,
    ledger_url: LedgerOpt = None,
    policy: PolicyOpt = None,
) -> None:
    """Approve clips: each is delivered now and never made again; storyboards whose scenes are all
    approved are stitched by the next run of their catalog."""
    _decide(items, "approve", "", "", out, reviewer, ledger_url, policy)


@review_app.command()
def reject(
    items: Items,
    note: Annotated[str, typer.Option("--note", help="why (recorded in the ledger)")],
    out: OutOpt = "vidbatch-out",
    prompt: Annotated[str, typer.Option("--prompt", help="the prompt the next clip is made with")] = "",
    reviewer: ReviewerOpt = None,
    ledger_url: LedgerOpt = None,
    policy: PolicyOpt = None,
) -> None:
    """Reject clips: the next run makes each again with another seed (or --prompt), paid under the
    caps, and holds it for review again."""
    _decide(items, "reject", note, prompt, out, reviewer, ledger_url, policy)
