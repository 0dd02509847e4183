"""The `vidbatch` command line: plan, run, ledger (cli/ledger.py), and the Videos API sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vidbatch.cli.common import (SHOWN, JsonOpt, LedgerOpt, OutOpt, PolicyOpt, SandboxOpt, err_console, fail,
                                 existing_ledger, ndjson, out_console, table)
from vidbatch.cli.ledger import ledger_app
from vidbatch.cli.automations import automations_app
from vidbatch.cli.review import review_app
from vidbatch.cli.routes import routes
from vidbatch import layout
from vidbatch.errors import CatalogError, PolicyError, RunFailed, StorageError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Turn Parquet catalogs of video prompts into clips and a cost ledger.")
app.add_typer(ledger_app, name="ledger")
app.add_typer(review_app, name="review")
app.add_typer(automations_app, name="automations")
app.command("routes")(routes)
@app.command()
def plan(catalog: str, policy: PolicyOpt = None, out: Annotated[Optional[str], typer.Option(
             "--out", help="output root whose ledger counts (settled items, spend tonight)")] = None,
         save: Annotated[Optional[str], typer.Option(
             "--save", help="where the full plan goes (Parquet; default: <out>/plans/ with --out, else "
                            "./vidbatch-plan.parquet)")] = None,
         as_json: JsonOpt = False, sandbox: SandboxOpt = False, ledger_url: LedgerOpt = None) -> None:
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
        valid, rejects = check_catalog(read_catalog(catalog), catalog, list(pol.routes), list(loras_of(pol).by_name),
                                       pol.inputs.roots)
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
    columns = ["item_id", "route", "model", "est_cost_usd", "status", "reason"]
    if as_json:
        ndjson(result.select(columns))
        ndjson(rejects.select(pl.lit("rejected").alias("status"), pl.all()))
        return
    everything = pl.concat([result.select("row", "campaign", *columns),
                            rejects.select(pl.lit("rejected").alias("status"), pl.all())], how="diagonal_relaxed")
    try:
        saved = _save_plan(everything, save, root, layout.plan_file(moment))
    except StorageError as err:
        fail(str(err), 2)
    _print_plan(catalog, night, result, rejects, saved)
    _print_figures(pol, history.measured, result)


def _print_figures(policy, measured: dict, plan) -> None:
    """The price figures the plan's items are estimated at, and where each comes from."""
    from vidbatch.providers import resolved_routes

    for route, (kind, settings) in resolved_routes(policy, measured).items():
        rows = plan.filter(plan["route"] == route)
        models = set(rows["model"].drop_nulls().unique().to_list())  # a deferred item has none: show them all
        figures = {key: f for key, f in kind.describe(settings).get("figures", {}).items()
                   if rows.height and (not models or key.split("|", 1)[0] in models)}
        if figures:
            out_console.print(f"{route} estimates hold (model|resolution|profile):", highlight=False)
        for key, figure in figures.items():
            out_console.print(f"  {key}: {figure['gpu_s_per_shot']:g} GPU s per shot ({figure['source']})",
                              highlight=False, soft_wrap=True)


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
    out_console.print(f"{planned.height:,} planned, est ${planned['est_cost_usd'].sum():,.2f}; "
                      f"{totals['deferred']:,} deferred; {result.filter(status == 'done').height:,} already done; "
                      f"{totals['rejected']:,} rejected rows", highlight=False)
    if look.height:
        out_console.print(table("deferred and rejected, by reason", look, look.columns), soft_wrap=True)
        more = totals["deferred"] + totals["rejected"] - look["items"].sum()
        if more:
            out_console.print(f"  … and {more:,} more deferred or rejected for other reasons", highlight=False)
    out_console.print(f"full plan (every row, with reasons): {saved}", highlight=False, soft_wrap=True)


@app.command()
def run(catalog: str, policy: PolicyOpt = None, out: OutOpt = "vidbatch-out",
        campaign: Annotated[Optional[str], typer.Option(help="only this campaign's rows")] = None,
        sandbox: SandboxOpt = False,
        sandbox_latency: Annotated[float, typer.Option(help="seconds a sandbox job takes")] = 2.0,
        sandbox_faults: Annotated[Optional[str], typer.Option(
            help='with --sandbox: faults to inject, as JSON, e.g. \'{"rate_limit_next": 3}\'')] = None,
        submit: Annotated[bool, typer.Option("--submit", help="run on the Prefect server's workers (the "
                                             "deployment below) instead of here")] = False,
        deployment: Annotated[str, typer.Option(help="deployment that --submit runs")] = "produce-catalog/adhoc",
        wait: Annotated[bool, typer.Option("--wait", help="with --submit: wait for the run to end")] = False,
        ledger_url: LedgerOpt = None) -> None:
    """Produce a catalog: generate, trim and store clips, and write the ledger."""
    faults = _faults(sandbox_faults, sandbox)
    if ledger_url and submit:
        fail("--ledger applies to a run here; a submitted run opens the ledger its worker is given: set "
              "VIDBATCH_LEDGER_URL in the work pool's (or deployment's) job variables", 2)
    if submit:
        _submit(deployment, wait, catalog=_shared(catalog), out=_shared(out),
                policy_path=_shared(str(policy)) if policy else None, campaign=campaign, sandbox=sandbox,
                sandbox_latency_s=sandbox_latency, sandbox_faults=faults)
        return
    from vidbatch.flows.produce_catalog import produce_catalog
    from vidbatch.in_process import InProcess
    from vidbatch.flows.records import wait_until_recorded

    _start_prefect()
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err_console, transient=False)
    bar = {}

    def listen(event: dict) -> None:
        if event["event"] == "planned":
            bar["id"] = progress.add_task("clips", total=event["total"])
        elif event["event"] == "clip":
            progress.update(bar["id"], advance=1, description=f"{event['item_id']}: {event['outcome']}")

    with progress:  # the ledger URL goes in by hand, never as a parameter: Prefect would store its password
        state = produce_catalog(catalog=catalog, out=out, policy_path=str(policy) if policy else None,
                                campaign=campaign, sandbox=sandbox, sandbox_latency_s=sandbox_latency,
                                sandbox_faults=faults, in_process=InProcess(listeners=(listen,), ledger_url=ledger_url),
                                return_state=True)
    summary = state.result(raise_on_failure=False)
    if isinstance(summary, (CatalogError, PolicyError, StorageError)):
        fail(str(summary), 2)
    if isinstance(summary, RunFailed):
        summary = summary.summary
    elif isinstance(summary, BaseException):
        raise summary
    if not wait_until_recorded(summary["run_id"]):
        err_console.print("  [yellow]the Prefect API had not recorded every task run when vidbatch stopped "
                          "waiting[/] (the ledger and outputs are complete)", highlight=False)
    _print_summary(summary)


def _start_prefect() -> None:
    """The temporary Prefect API up before the run (see flows/records.py), or a clear exit 1."""
    from vidbatch.flows.records import start_ephemeral_api

    try:
        start_ephemeral_api()
    except RuntimeError as err:
        fail(f"the temporary Prefect API did not start: {str(err)[:600]} (set PREFECT_API_URL to use a "
             "running server, or PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS to wait longer)", 1)


def _faults(text: str | None, sandbox: bool) -> dict | None:
    """--sandbox-faults as a dict, or a clear exit 2."""
    import json

    if text is None:
        return None
    if not sandbox:
        fail("--sandbox-faults applies to a --sandbox run only", 2)
    try:
        faults = json.loads(text)
    except json.JSONDecodeError as err:
        fail(f"--sandbox-faults is not JSON: {err}", 2)
    if not isinstance(faults, dict):
        fail("--sandbox-faults must be a JSON object, e.g. '{\"rate_limit_next\": 3}'", 2)
    return faults


def _shared(location: str) -> str:
    """A path a worker elsewhere can use: URIs as they are, local paths made absolute."""
    return location if "://" in location else str(Path(location).expanduser().resolve())


def _submit(deployment: str, wait: bool, **parameters) -> None:
    """Create a run of `deployment` on the Prefect server (PREFECT_API_URL) for its workers."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    if not PREFECT_API_URL.value():
        fail("--submit needs a Prefect server: set PREFECT_API_URL (see README, Operating)", 2)
    try:
        run = run_deployment(deployment, parameters={k: v for k, v in parameters.items() if v is not None},
                             timeout=None if wait else 0)
    except Exception as err:  # prefect raises several types: name the deployment and the cause
        fail(f"cannot submit to {deployment} at {PREFECT_API_URL.value()}: {type(err).__name__}: {err}", 2)
    ui = PREFECT_UI_URL.value()
    message = f" ({run.state.message})" if wait and run.state.message and not run.state.is_completed() else ""
    out_console.print(f"submitted flow run {run.name} ({run.id}) of {deployment}: {run.state.name}{message}"
                      + (f"\n  {ui}/runs/flow-run/{run.id}" if ui else ""), highlight=False, soft_wrap=True)
    if wait and not run.state.is_completed():
        raise typer.Exit(1)


def _print_summary(summary: dict) -> None:
    counts = summary["status_counts"]
    out_console.print(f"run {summary['run_id']} (night {summary['night']}) -> {summary['out']}", soft_wrap=True)
    out_console.print("  " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
                      + f"; rejected rows: {summary['rejected_rows']}")
    out_console.print(f"  estimated ${summary['est_cost_usd']:.4f}, actual ${summary['cost_usd']:.4f}")
    if summary["rejected_rows"]:
        out_console.print(f"  rejects: {summary['out']}/{layout.run_table(summary['run_id'], 'rejects')}")
    for route, why in summary["unavailable"].items():
        out_console.print(f"  [yellow]route {route} unavailable[/]: {why}", highlight=False)
    more = summary.get("more", {})
    for kind, label, field in (("fell_back", "fell back", "reason"), ("deferred", "deferred", "reason"),
                               ("qa_regenerated", "QA regenerated", "qa")):
        for item in summary[kind]:
            out_console.print(f"  [yellow]{label}[/] {item['item_id']}: {item[field]}", highlight=False)
        if more.get(kind):
            out_console.print(f"  … and {more[kind]:,} more {label}", highlight=False)
    for board in summary["storyboards"]:
        colour = {"stitched": "green", "done": "green", "failed": "red"}.get(board["status"], "yellow")
        where = f" -> {board['asset_uri']}" if board["asset_uri"] else ""
        out_console.print(f"  storyboard {board['storyboard_id']}: [{colour}]{board['status']}[/] "
                          f"({board['reason']}){where}", highlight=False, soft_wrap=True)
    if summary["status_counts"].get("awaiting_review"):
        out_console.print(f"  [yellow]{summary['status_counts']['awaiting_review']} clip(s) await review[/]: "
                          f"vidbatch review --out {summary['out']}"
                          + (f" (or the review runs {', '.join(summary['reviews'])})" if summary.get("reviews") else ""),
                          highlight=False, soft_wrap=True)
    for failure in summary["failed"]:
        err_console.print(f"  [red]failed[/] {failure['item_id']}: {failure['reason']}", highlight=False)
    if more.get("failed"):
        err_console.print(f"  … and {more['failed']:,} more failed", highlight=False)
    if any(more.values()):
        out_console.print(f"  every item: {summary['out']}/{layout.run_table(summary['run_id'], 'items')}", highlight=False,
                          soft_wrap=True)
    out_console.print(f"  report: {summary['report']}", highlight=False, soft_wrap=True)
    if summary["failed"] or any(b["status"] == "failed" for b in summary["storyboards"]):
        raise typer.Exit(1)


@app.command()
def sandbox(port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8787,
            latency: Annotated[float, typer.Option(help="seconds each job takes")] = 5.0,
            key: Annotated[str, typer.Option(help="the bearer key it accepts")] = "sk-sandbox",
            max_in_flight: Annotated[Optional[int], typer.Option(help="429 beyond this many jobs in flight")] = None,
            rate_limit_p: Annotated[float, typer.Option(help="chance that a submit answers 429")] = 0.0,
            dashscope: Annotated[bool, typer.Option("--dashscope", help="serve DashScope's async task API "
                                                    "(hosted Wan) instead of the Videos API")] = False,
            veo: Annotated[bool, typer.Option("--veo", help="serve Google Veo's Vertex AI calls (express mode) "
                                              "instead of the Videos API")] = False) -> None:
    """Serve a loopback API for rehearsals: the Videos API (Sora contract; point OPENAI_BASE_URL at
    it), with --dashscope the DashScope task API (point DASHSCOPE_HTTP_BASE_URL at it), or with
    --veo Google Veo (set a gemini-veo route's base_url to it, its api_key_env variable to the key)."""
    import time

    from vidbatch.sandbox import DashScopeSandbox, Faults, VeoSandbox, VideosSandbox

    if dashscope and veo:
        fail("--dashscope and --veo each serve one API: run one sandbox per API", 2)
    if dashscope:
        box, served = DashScopeSandbox(api_key=key, latency_s=latency), "DashScope"
        url = box.start(port=port)
        exports = f"export DASHSCOPE_HTTP_BASE_URL={url} DASHSCOPE_API_KEY={key}"
    elif veo:
        box, served = VeoSandbox(api_key=key, latency_s=latency), "Veo"
        url = box.start(port=port)
        exports = f'[routes.veo] base_url = "{url}"; export VEO_API_KEY={key} (the route\'s api_key_env)'
    else:
        box, served = VideosSandbox(api_key=key, latency_s=latency, faults=Faults(
            max_in_flight=max_in_flight, rate_limit_p=rate_limit_p)), "Videos API"
        url = box.start(port=port)
        exports = f"export OPENAI_BASE_URL={url} OPENAI_API_KEY={key}"
    out_console.print(f"{served} sandbox at {url} (billing: {url}/sandbox/billing); "
                      f"Ctrl-C stops it\n  {exports}", highlight=False)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        box.stop()


def main() -> None:
    app()

