"""The `vidbatch` command line: plan, run (cli/run.py), ledger (cli/ledger.py), and the sandboxes."""

from __future__ import annotations

from pathlib import Path
from collections.abc import Mapping
from typing import Annotated, Any, Optional

import typer

from vidbatch.cli.common import (
    SHOWN,
    JsonOpt,
    LedgerOpt,
    PolicyOpt,
    SandboxOpt,
    fail,
    existing_ledger,
    ndjson,
    out_console,
    table,
)
from vidbatch.cli.ledger import ledger_app
from vidbatch.cli.automations import automations_app
from vidbatch.cli.review import review_app
from vidbatch.cli.routes import routes
from vidbatch.cli.run import run
from vidbatch import layout
from vidbatch.errors import CatalogError, PolicyError, StorageError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Turn Parquet catalogs of video prompts into clips and a cost ledger.",
)
app.add_typer(ledger_app, name="ledger")
app.add_typer(review_app, name="review")
app.add_typer(automations_app, name="automations")
app.command("routes")(routes)
app.command("run")(run)


@app.command()
def plan(
    catalog: str,
    policy: PolicyOpt = None,
    out: Annotated[
        Optional[str], typer.Option("--out", help="output root whose ledger counts (settled items, spend tonight)")
    ] = None,
    save: Annotated[
        Optional[str],
        typer.Option(
            "--save",
            help="where the full plan goes (Parquet; default: <out>/plans/ with --out, else ./vidbatch-plan.parquet)",
        ),
    ] = None,
    as_json: JsonOpt = False,
    sandbox: SandboxOpt = False,
    ledger_url: LedgerOpt = None,
) -> None:
    """Forecast routes, models and costs for a catalog without spending anything.

    The terminal gets a summary (by campaign, route and status; the first items that need a look);
    every row goes to the saved Parquet plan, or to standard output as NDJSON with --json."""
    from datetime import datetime, timezone

    import polars as pl

    from vidbatch.inputs import check_catalog
    from vidbatch.tasks.fingerprints import fingerprinted
    from vidbatch.ledger import History
    from vidbatch.policy import load_policy
    from vidbatch.providers import loras_of, priced_routes, unavailable_routes
    from vidbatch.runs import history_keys, night_of, plan_run
    from vidbatch.storage import open_root, read_catalog
    from vidbatch.tasks.run_providers import run_providers

    try:
        pol = load_policy(policy)
        valid, rejects = check_catalog(
            read_catalog(catalog), catalog, list(pol.routes), list(loras_of(pol).by_name), pol.inputs.roots
        )
        root = open_root(out) if out else None
        moment = datetime.now(timezone.utc)
        night = night_of(moment, pol.caps.timezone)
        valid = fingerprinted(valid, pol)
        store = existing_ledger(root, ledger_url, pol.ledger.url)
        history = store.history(history_keys(valid), night) if store else History()
    except (CatalogError, PolicyError, StorageError) as err:
        fail(str(err), 2)
    try:
        with run_providers(pol, sandbox) as (providers, _):
            routes = priced_routes(pol, providers, unavailable_routes(providers), history.measured)
    except PolicyError as err:  # a plugin kind's settings, checked when the kind loads
        fail(str(err), 2)
    result = plan_run(valid, pol, history, routes)
    columns = ["item_id", "route", "model", "pool", "est_cost_usd", "status", "reason"]
    if as_json:
        ndjson(result.select(columns))
        ndjson(rejects.select(pl.lit("rejected").alias("status"), pl.all()))
        return
    everything = pl.concat(
        [result.select("row", "campaign", *columns), rejects.select(pl.lit("rejected").alias("status"), pl.all())],
        how="diagonal_relaxed",
    )
    try:
        saved = _save_plan(everything, save, root, layout.plan_file(moment))
    except StorageError as err:
        fail(str(err), 2)
    _print_plan(catalog, night, result, rejects, saved)
    _print_figures(pol, history.measured, result)


def _print_figures(policy, measured: Mapping[str, Mapping[str, Any]], plan) -> None:
    """The price figures the plan's items are estimated at, and where each comes from."""
    from vidbatch.providers import resolved_routes

    for route, (kind, settings) in resolved_routes(policy, measured).items():
        rows = plan.filter(plan["route"] == route)
        models = set(rows["model"].drop_nulls().unique().to_list())  # a deferred item has none: show them all
        figures = {
            key: f
            for key, f in kind.describe(settings).get("figures", {}).items()
            if rows.height and (not models or key.split("|", 1)[0] in models)
        }
        if figures:
            out_console.print(f"{route} estimates hold (model|resolution|profile[|gpu|memory]):", highlight=False)
        for key, figure in figures.items():
            out_console.print(
                f"  {key}: {figure['gpu_s_per_shot']:g} GPU s per shot ({figure['source']})",
                highlight=False,
                soft_wrap=True,
            )


def _save_plan(frame, save: str | None, root, key: str) -> str:
    """Write the full plan where asked (a path or URI), under the output root, or in the current folder."""
    from vidbatch.storage import open_root

    if save:
        folder, _, name = save.rpartition("/")
        return open_root(folder or ".").write_parquet(frame, name)
    if root is not None:
        return root.write_parquet(frame, key)
    frame.write_parquet("vidbatch-plan.parquet")
    return str(Path("vidbatch-plan.parquet").resolve())


def _print_plan(catalog: str, night: str, result, rejects, saved: str) -> None:
    import polars as pl

    from vidbatch.report import needs_a_look, plan_groups

    groups = plan_groups(result)
    title = f"plan for {catalog} (night {night}): {result.height:,} items by campaign, route and status"
    out_console.print(table(title, groups.head(SHOWN), groups.columns), soft_wrap=True)
    if groups.height > SHOWN:
        out_console.print(f"  … and {groups.height - SHOWN:,} more groups (all rows: {saved})", highlight=False)
    status = pl.col("status")
    planned = result.filter(status == "planned")
    look, totals = needs_a_look(result, rejects, 10)
    out_console.print(
        f"{planned.height:,} planned, est ${planned['est_cost_usd'].sum():,.2f}; "
        f"{totals['deferred']:,} deferred; {result.filter(status == 'done').height:,} already done; "
        f"{totals['rejected']:,} rejected rows",
        highlight=False,
    )
    if look.height:
        out_console.print(table("deferred and rejected, by reason", look, look.columns), soft_wrap=True)
        more = totals["deferred"] + totals["rejected"] - look["items"].sum()
        if more:
            out_console.print(f"  … and {more:,} more deferred or rejected for other reasons", highlight=False)
    out_console.print(f"full plan (every row, with reasons): {saved}", highlight=False, soft_wrap=True)


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8787,
    latency: Annotated[float, typer.Option(help="seconds each job takes")] = 5.0,
    key: Annotated[str, typer.Option(help="the bearer key it accepts")] = "sk-sandbox",
    max_in_flight: Annotated[Optional[int], typer.Option(help="429 beyond this many jobs in flight")] = None,
    rate_limit_p: Annotated[float, typer.Option(help="chance that a submit answers 429")] = 0.0,
    dashscope: Annotated[
        bool,
        typer.Option("--dashscope", help="serve DashScope's async task API (hosted Wan) instead of the Videos API"),
    ] = False,
    veo: Annotated[
        bool, typer.Option("--veo", help="serve Google Veo's Vertex AI calls (express mode) instead of the Videos API")
    ] = False,
) -> None:
    """Serve a loopback API for rehearsals: the Videos API (Sora contract; point OPENAI_BASE_URL at
    it), with --dashscope the DashScope task API (point DASHSCOPE_HTTP_BASE_URL at it), or with
    --veo Google Veo (set a gemini-veo route's base_url to it, its api_key_env variable to the key)."""
    import time

    from vidbatch.sandbox import DashScopeSandbox, Faults, VeoSandbox, VideosSandbox

    if dashscope and veo:
        fail("--dashscope and --veo each serve one API: run one sandbox per API", 2)
    box: DashScopeSandbox | VeoSandbox | VideosSandbox
    if dashscope:
        box, served = DashScopeSandbox(api_key=key, latency_s=latency), "DashScope"
        url = box.start(port=port)
        exports = f"export DASHSCOPE_HTTP_BASE_URL={url} DASHSCOPE_API_KEY={key}"
    elif veo:
        box, served = VeoSandbox(api_key=key, latency_s=latency), "Veo"
        url = box.start(port=port)
        exports = f'[routes.veo] base_url = "{url}"; export VEO_API_KEY={key} (the route\'s api_key_env)'
    else:
        box, served = (
            VideosSandbox(
                api_key=key, latency_s=latency, faults=Faults(max_in_flight=max_in_flight, rate_limit_p=rate_limit_p)
            ),
            "Videos API",
        )
        url = box.start(port=port)
        exports = f"export OPENAI_BASE_URL={url} OPENAI_API_KEY={key}"
    out_console.print(
        f"{served} sandbox at {url} (billing: {url}/sandbox/billing); Ctrl-C stops it\n  {exports}", highlight=False
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        box.stop()


def main() -> None:
    app()
