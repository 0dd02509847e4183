"""`vidbatch run`: refuse mistakes first, run the flow here (or submit it), and end in one line.

Before the temporary Prefect server starts (it takes ~25 s), the policy, the catalog and the output
root are checked here, so a mistake costs a second or two and ends in one line. A run here is
stopped by Ctrl-C (SIGINT) or SIGTERM: the flow stops starting clips, waits for those in flight
(tasks/pipeline.py), and this process prints what was left and exits; the temporary server, which
Ctrl-C at the terminal does not reach (flows/records.py), is stopped after the flow. Prefect's
console handlers print no tracebacks here (they stay in the run's logs in the Prefect UI).

Exit codes: 0 every planned item finished, awaits review or was deferred; 1 an item or storyboard
failed, or a fault (storage, ledger database, disk) stopped the run; 2 a mistake (catalog, policy,
output root); 3 nothing could be made because no route was available; 4 cancelled in Prefect;
130 / 143 stopped by SIGINT / SIGTERM (the next run resumes what was in flight).
"""

from __future__ import annotations

import contextlib
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vidbatch.money import usd_text
from vidbatch import layout
from vidbatch.cli.common import LedgerOpt, OutOpt, PolicyOpt, SandboxOpt, err_console, fail, out_console
from vidbatch.errors import CatalogError, PolicyError, RunFailed, StorageError, VidbatchError

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

__all__ = ["run", "EXIT_FAILED", "EXIT_MISTAKE", "EXIT_NO_ROUTE", "EXIT_CANCELLED"]

EXIT_FAILED, EXIT_MISTAKE, EXIT_NO_ROUTE, EXIT_CANCELLED = 1, 2, 3, 4
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


def run(
    catalog: str,
    policy: PolicyOpt = None,
    out: OutOpt = "vidbatch-out",
    campaign: Annotated[Optional[str], typer.Option(help="only this campaign's rows")] = None,
    sandbox: SandboxOpt = False,
    sandbox_latency: Annotated[float, typer.Option(help="seconds a sandbox job takes")] = 2.0,
    sandbox_faults: Annotated[
        Optional[str], typer.Option(help="with --sandbox: faults to inject, as JSON, e.g. '{\"rate_limit_next\": 3}'")
    ] = None,
    submit: Annotated[
        bool,
        typer.Option("--submit", help="run on the Prefect server's workers (the deployment below) instead of here"),
    ] = False,
    deployment: Annotated[str, typer.Option(help="deployment that --submit runs")] = "produce-catalog/adhoc",
    wait: Annotated[bool, typer.Option("--wait", help="with --submit: wait for the run to end")] = False,
    ledger_url: LedgerOpt = None,
) -> None:
    """Produce a catalog: generate, trim and store clips, and write the ledger."""
    faults = _faults(sandbox_faults, sandbox)
    if ledger_url and submit:
        fail(
            "--ledger applies to a run here; a submitted run opens the ledger its worker is given: set "
            "VIDBATCH_LEDGER_URL in the work pool's (or deployment's) job variables",
            EXIT_MISTAKE,
        )
    if submit:
        _submit(
            deployment,
            wait,
            catalog=_shared(catalog),
            out=_shared(out),
            policy_path=_shared(str(policy)) if policy else None,
            campaign=campaign,
            sandbox=sandbox,
            sandbox_latency_s=sandbox_latency,
            sandbox_faults=faults,
        )
        return
    _check_first(catalog, policy, out, campaign, ledger_url)
    with _signals_end_in_one_line() as stopped:
        summary = _run_here(catalog, policy, out, campaign, sandbox, sandbox_latency, faults, ledger_url, stopped)
    _print_summary(summary)


def _check_first(catalog: str, policy: Path | None, out: str, campaign: str | None, ledger_url: str | None) -> None:
    """The mistakes a run would meet first, refused in one line (exit 2) before anything starts; an
    empty catalog says so (exit 0); a ledger database that cannot be reached, exit 1."""
    from vidbatch.ledger_store import open_ledger
    from vidbatch.policy import load_policy
    from vidbatch.storage import open_root
    from vidbatch.tasks.catalog_io import load_catalog

    try:
        pol = load_policy(policy)
        root = open_root(out)
        root.check()
        valid, rejects, _, _ = load_catalog.fn(catalog, campaign, pol)
    except (CatalogError, PolicyError, StorageError) as err:
        fail(str(err), EXIT_MISTAKE)
    if valid.height == 0 and rejects.height == 0:
        out_console.print(f"{catalog} has no rows: nothing to make", highlight=False, soft_wrap=True)
        raise typer.Exit(0)
    try:
        open_ledger(root, ledger_url, pol.ledger.url)
    except VidbatchError as err:  # LedgerUnavailable, or a ledger URL template left unrendered
        fail(str(err), EXIT_FAILED if not isinstance(err, StorageError) else EXIT_MISTAKE)


def _run_here(catalog, policy, out, campaign, sandbox, sandbox_latency, faults, ledger_url, stopped: dict) -> dict:
    """The flow in this process, with a progress bar; its summary, or an exit in one line."""
    from vidbatch.flows.produce_catalog import produce_catalog
    from vidbatch.flows.records import wait_until_recorded
    from vidbatch.in_process import InProcess
    from vidbatch.tasks.run_labels import NO_ROUTE

    _start_prefect()
    _console_without_tracebacks()
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )
    bar = {}

    def listen(event: dict) -> None:
        if event["event"] == "planned":
            bar["id"] = progress.add_task("clips", total=event["total"])
        elif event["event"] == "clip":
            progress.update(bar["id"], advance=1, description=f"{event['item_id']}: {event['outcome']}")
        elif event["event"] == "stopped":
            stopped["line"] = event["line"]

    with progress:  # the ledger URL goes in by hand, never as a parameter: Prefect would store its password
        state = produce_catalog(
            catalog=catalog,
            out=out,
            policy_path=str(policy) if policy else None,
            campaign=campaign,
            sandbox=sandbox,
            sandbox_latency_s=sandbox_latency,
            sandbox_faults=faults,
            in_process=InProcess(listeners=(listen,), ledger_url=ledger_url),
            return_state=True,
        )
    summary = state.result(raise_on_failure=False)
    if state.is_cancelled() or state.is_crashed():
        fail(state.message or f"the run ended {state.name}", EXIT_CANCELLED if state.is_cancelled() else EXIT_FAILED)
    if isinstance(summary, (CatalogError, PolicyError)):
        fail(str(summary), EXIT_MISTAKE)
    if isinstance(summary, RunFailed):
        summary = summary.summary
    elif isinstance(summary, BaseException):  # a fault (storage, ledger database, disk): its one line
        fail(str(summary), EXIT_FAILED)
    if not isinstance(summary, dict):  # a run's result is its summary, or the error above
        fail(f"the run ended {state.name} without a summary", EXIT_FAILED)
    if not wait_until_recorded(summary["run_id"]):
        err_console.print(
            "  [yellow]the Prefect API had not recorded every task run when vidbatch stopped "
            "waiting[/] (the ledger and outputs are complete)",
            highlight=False,
        )
    if state.name == NO_ROUTE:
        summary["exit_code"] = EXIT_NO_ROUTE
    return summary


@contextlib.contextmanager
def _signals_end_in_one_line():
    """SIGTERM raises Prefect's TerminationSignal here too (Prefect installs the same inside a flow,
    and re-sends the signal to the handler it found), so that both signals end the same way: the
    flow has stopped and drained (tasks/pipeline.py), then one line and exit 130 or 143."""
    from prefect.exceptions import TerminationSignal
    from rich.markup import escape

    def terminate(signum, _frame) -> None:
        raise TerminationSignal(signum)

    stopped: dict = {}
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield stopped
    except (KeyboardInterrupt, TerminationSignal) as interrupt:
        number = getattr(interrupt, "signal", signal.SIGINT)
        name = signal.Signals(number).name
        line = stopped.get("line", "no clip was in flight; the next run makes every item")
        err_console.print(f"[bold yellow]stopped by {name}:[/] {escape(line)}", highlight=False, soft_wrap=True)
        raise typer.Exit(SIGNAL_EXIT.get(number, 1)) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _console_without_tracebacks() -> None:
    """Prefect's console handlers print each record's first line only: a failed task's traceback stays
    in the run's logs (the Prefect UI), and the terminal gets vidbatch's one-line reasons."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for logger in [logging.getLogger(), *logging.root.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", ()):
            if isinstance(handler, PrefectConsoleHandler) and not isinstance(handler.formatter, _NoTraceback):
                handler.setFormatter(_NoTraceback(handler.formatter or logging.Formatter()))


class _NoTraceback(logging.Formatter):
    """A formatter that formats a record without its traceback or stack (and leaves the record as it was)."""

    def __init__(self, inner: logging.Formatter):
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


def _start_prefect() -> None:
    """The temporary Prefect API up before the run (see flows/records.py), or a clear exit 1."""
    from vidbatch.flows.records import start_ephemeral_api

    try:
        start_ephemeral_api()
    except RuntimeError as err:
        fail(
            f"the temporary Prefect API did not start: {str(err)[:600]} (set PREFECT_API_URL to use a "
            "running server, or PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS to wait longer)",
            1,
        )


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

    from vidbatch.tasks.run_labels import NO_ROUTE

    if not PREFECT_API_URL.value():
        fail("--submit needs a Prefect server: set PREFECT_API_URL (see README, Operating)", 2)
    try:
        run: FlowRun = run_deployment(  # type: ignore[assignment]  # sync_compatible: a FlowRun here
            deployment, parameters={k: v for k, v in parameters.items() if v is not None}, timeout=None if wait else 0
        )
    except Exception as err:  # prefect raises several types: name the deployment and the cause
        fail(f"cannot submit to {deployment} at {PREFECT_API_URL.value()}: {type(err).__name__}: {err}", 2)
    ui, state = PREFECT_UI_URL.value(), run.state
    assert state is not None  # the API gives a created flow run its Scheduled state
    message = f" ({state.message})" if wait and state.message and not state.is_completed() else ""
    out_console.print(
        f"submitted flow run {run.name} ({run.id}) of {deployment}: {state.name}{message}"
        + (f"\n  {ui}/runs/flow-run/{run.id}" if ui else ""),
        highlight=False,
        soft_wrap=True,
    )
    if wait and state.is_cancelled():
        raise typer.Exit(EXIT_CANCELLED)
    if wait and state.name == NO_ROUTE:
        raise typer.Exit(EXIT_NO_ROUTE)
    if wait and not state.is_completed():
        raise typer.Exit(EXIT_FAILED)


def _print_summary(summary: dict) -> None:
    """The run's summary at the terminal; every text from the run is printed as it is (escaped:
    `[redacted]` or a catalog's brackets are not markup)."""
    from rich.markup import escape as e

    counts = summary["status_counts"]
    out_console.print(f"run {summary['run_id']} (night {summary['night']}) -> {summary['out']}", soft_wrap=True)
    out_console.print(
        "  "
        + (", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "no items")
        + f"; rejected rows: {summary['rejected_rows']}"
    )
    out_console.print(f"  estimated {usd_text(summary['est_cost_usd'])}, actual {usd_text(summary['cost_usd'])}")
    if summary["rejected_rows"]:
        out_console.print(f"  rejects: {summary['out']}/{layout.run_table(summary['run_id'], 'rejects')}")
    for route, why in summary["unavailable"].items():
        out_console.print(f"  [yellow]route {route} unavailable[/]: {e(why)}", highlight=False)
    more = summary.get("more", {})
    for kind, label, field in (
        ("fell_back", "fell back", "reason"),
        ("deferred", "deferred", "reason"),
        ("qa_regenerated", "QA regenerated", "qa"),
    ):
        for item in summary[kind]:
            out_console.print(f"  [yellow]{label}[/] {e(item['item_id'])}: {e(str(item[field]))}", highlight=False)
        if more.get(kind):
            out_console.print(f"  … and {more[kind]:,} more {label}", highlight=False)
    for board in summary["storyboards"]:
        colour = {"stitched": "green", "done": "green", "failed": "red"}.get(board["status"], "yellow")
        where = f" -> {board['asset_uri']}" if board["asset_uri"] else ""
        out_console.print(
            f"  storyboard {e(board['storyboard_id'])}: [{colour}]{board['status']}[/] "
            f"({e(str(board['reason']))}){e(where)}",
            highlight=False,
            soft_wrap=True,
        )
    if summary["status_counts"].get("awaiting_review"):
        runs = f" (or the review runs {', '.join(summary['reviews'])})" if summary.get("reviews") else ""
        out_console.print(
            f"  [yellow]{summary['status_counts']['awaiting_review']} clip(s) await review[/]: "
            f"vidbatch review --out {summary['out']}{runs}",
            highlight=False,
            soft_wrap=True,
        )
    for failure in summary["failed"]:
        err_console.print(f"  [red]failed[/] {e(failure['item_id'])}: {e(str(failure['reason']))}", highlight=False)
    if more.get("failed"):
        err_console.print(f"  … and {more['failed']:,} more failed", highlight=False)
    if any(more.values()):
        out_console.print(
            f"  every item: {summary['out']}/{layout.run_table(summary['run_id'], 'items')}",
            highlight=False,
            soft_wrap=True,
        )
    out_console.print(f"  report: {summary['report']}", highlight=False, soft_wrap=True)
    if summary["failed"] or any(b["status"] == "failed" for b in summary["storyboards"]):
        raise typer.Exit(EXIT_FAILED)
    if summary.get("exit_code") == EXIT_NO_ROUTE:
        err_console.print(
            "[bold red]nothing could be made:[/] no route of the policy is available (the reasons "
            "above); every item waits for a run that has one",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_NO_ROUTE)
