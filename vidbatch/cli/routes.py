"""`vidbatch routes`: each route of a policy with its kind, models, prices, capabilities and
whether it can serve right now (the provider's own health check: key, endpoint, libraries)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Optional

import typer

from vidbatch.cli.common import JsonOpt, LedgerOpt, PolicyOpt, existing_ledger, fail, out_console
from vidbatch.errors import PolicyError, StorageError

__all__ = ["routes"]


def routes(
    policy: PolicyOpt = None,
    as_json: JsonOpt = False,
    check: Annotated[
        bool, typer.Option("--check/--no-check", help="ask each route whether it can serve now (endpoints are called)")
    ] = True,
    out: Annotated[
        Optional[str], typer.Option("--out", help="output root whose ledger's measured prices count")
    ] = None,
    ledger_url: LedgerOpt = None,
) -> None:
    """The policy's routes: kind, models, prices (and the figures reservations hold, from the policy
    or measured by the ledger), what they can do, and whether each is available."""
    from vidbatch.policy import load_policy
    from vidbatch.providers import resolved_routes
    from vidbatch.storage import open_root

    try:
        pol = load_policy(policy)
        store = existing_ledger(open_root(out) if out else None, ledger_url, pol.ledger.url)
        measured = store.measured() if store else {}
        rows = [
            {**_describe(name, kind, settings, check), "order": _places(pol, name)}
            for name, (kind, settings) in resolved_routes(pol, measured).items()
        ]
    except (PolicyError, StorageError) as err:
        fail(str(err), 2)
    if as_json:
        for row in rows:
            out_console.file.write(json.dumps(row) + "\n")
        return
    for row in rows:
        state = (
            "[green]available[/]"
            if row["available"]
            else "not checked"
            if row["available"] is None
            else f"[red]unavailable[/]: {row['unavailable']}"
        )
        can = row["capabilities"]
        footage = can["max_footage_s"]
        abilities = [
            f"clips up to {can['max_clip_s']:g} s",
            f"items up to {footage:g} s" if footage is not None else "longer items joined",
            *(
                name if can[key] else f"no {name}"
                for key, name in (("image_input", "image input"), ("extend", "extend"), ("remix", "remix"))
            ),
        ]
        out_console.print(f"[bold]{row['route']}[/] ({row['kind']}, {row['where']})  {state}", soft_wrap=True)
        out_console.print(f"  models  {_flat(row['models'])}", highlight=False, soft_wrap=True)
        out_console.print(f"  prices  {_flat(row['prices'])}", highlight=False, soft_wrap=True)
        for key, figure in (row.get("figures") or {}).items():  # what a reservation holds, and why
            out_console.print(
                f"  holds   {key}: {figure['gpu_s_per_shot']:g} GPU s per shot ({figure['source']})",
                highlight=False,
                soft_wrap=True,
            )
        out_console.print(f"  can     {' · '.join(abilities)}", highlight=False, soft_wrap=True)
        if row.get("profiles"):
            out_console.print(
                "  speed   "
                + " · ".join(
                    f"{name}" + (f" ({', '.join(p['campaigns'])})" if p["campaigns"] else "")
                    for name, p in row["profiles"].items()
                )
                + f"; default {row.get('default_profile', 'stock')}",
                highlight=False,
                soft_wrap=True,
            )
        if row.get("loras"):
            out_console.print(f"  LoRAs   {' · '.join(row['loras'])}", highlight=False, soft_wrap=True)
        if row.get("fit"):  # the memory profiles the fit table names, and what each does
            out_console.print(
                "  memory  "
                + " · ".join(f"{name} ({', '.join(m['levers'])})" for name, m in (row.get("memory") or {}).items()),
                highlight=False,
                soft_wrap=True,
            )
        _print_fit(row.get("fit") or [])
        places = [f"{realism} #{n}" for realism, n in row["order"]["prefer"].items()] + [
            f"long {realism} #{n}" for realism, n in row["order"]["long"].items()
        ]
        out_console.print(
            f"  order   {' · '.join(places) or 'in no order: only items that name it'}", highlight=False, soft_wrap=True
        )


def _print_fit(fit: list[dict]) -> None:
    """The fit table: each model and resolution the route routes to, on each pool, held how and
    at what price per full shot; `*` marks the pool the planner chooses (the cheapest that fits)."""
    if not fit:
        return
    out_console.print("  fit     model resolution: pool memory-profile GiB $/shot (* chosen)", highlight=False)
    lines: dict[str, list[str]] = {}
    for f in fit:
        cell = (
            f"{f['pool']} {f['memory']} {f['need_gib']:g} GiB ${f['usd_per_shot']:.4f}{' *' if f['chosen'] else ''}"
            if f["fits"]
            else f"{f['pool']} does not fit"
        )
        lines.setdefault(f"{f['model']} {f['resolution']}", []).append(cell)
    for key, cells in lines.items():
        out_console.print(f"          {key}: {' · '.join(cells)}", highlight=False, soft_wrap=True)


def _places(policy, route: str) -> dict:
    """Where the route stands in the policy's orders: realism level -> 1-based place."""
    prefs = policy.preferences()
    long = {} if prefs.long_after_s is None else prefs.long
    return {
        "prefer": {r: order.index(route) + 1 for r, order in prefs.by_realism.items() if route in order},
        "long": {r: order.index(route) + 1 for r, order in long.items() if route in order},
    }


def _flat(value) -> str:
    """A nested mapping on one line: `t2v: 480p=tiny 720p=tiny; i2v: …`."""
    if not isinstance(value, dict):
        return str(value)
    if all(not isinstance(v, dict) for v in value.values()):
        return " ".join(f"{k}={v}" for k, v in value.items())
    return "; ".join(f"{k}: {_flat(v)}" for k, v in value.items())


def _describe(name: str, kind, settings, check: bool) -> dict:
    from vidbatch.providers import checked

    provider = checked(name, kind.name, kind.build(name, settings))  # a plugin that breaks the contract: named
    why = provider.unavailable() if check else None
    about = kind.describe(settings)
    return {
        "route": name,
        "kind": kind.name,
        "models": about.get("models"),
        "prices": about.get("prices"),
        **{
            key: about[key]
            for key in ("profiles", "default_profile", "loras", "figures", "memory", "fit")
            if key in about
        },
        "where": about.get("where"),
        "capabilities": {
            **asdict(provider.capabilities),
            "loras": list(provider.capabilities.loras),
            "resolutions": list(provider.capabilities.resolutions),
        },
        "available": why is None if check else None,
        "unavailable": why,
    }
