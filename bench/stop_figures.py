"""What a stop costs (issue 28): SIGTERM to a `vidbatch run`, and Ctrl-C to its process group.

N closed-route items (4 s high-realism clips, 2 in flight, 3 s jobs) on a loopback Videos API in
this process; the signal comes the moment the 2nd job exists. Printed per case: the exit code and
seconds to exit, jobs created after the stop, tracebacks printed, processes of the run left behind
20 s later; then the catalog is run again and: jobs per item, items paid twice, ledger vs billed.
With `--before REV`, the same for git revision REV first (installed apart, as bench/scale.py does).

Run: .venv/bin/python bench/stop_figures.py [N] [--signals term,int] [--before REV] [--settle S]
(`--settle`: seconds after the exit before jobs are counted and processes looked for; 20 by default)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import polars as pl  # noqa: E402

from scale import build_revision  # noqa: E402
from tests.cli_runs import cli_env, closed_route_policy, high_realism_catalog, left_behind  # noqa: E402
from vidbatch.ledger_store import open_ledger  # noqa: E402
from vidbatch.sandbox import VideosSandbox  # noqa: E402
from vidbatch.storage import open_root  # noqa: E402

def one_case(work: Path, items: int, how: str, site: Path | None, settle_s: float) -> str:
    """One stop and its rerun; a line of figures."""
    work.mkdir(parents=True)
    with VideosSandbox(latency_s=3.0, poll_after_ms=100) as box:
        policy = closed_route_policy(work / "policy.toml", box)
        catalog = high_realism_catalog(work / "catalog.parquet", items, "stop")
        home = work / "prefect"
        home.mkdir()
        env = cli_env(box, str(home), PREFECT_LOGGING_LEVEL="INFO")
        if site is not None:
            env["PYTHONPATH"] = str(site)
        command = [sys.executable, "-m", "vidbatch.cli", "run", catalog, "--policy", str(policy), "--out",
                   str(work / "out")]

        def start(name: str) -> subprocess.Popen:
            return subprocess.Popen(command, env=env, cwd=work, stdout=open(work / f"{name}.log", "w"),
                                    stderr=subprocess.STDOUT, start_new_session=True)

        run = start("stopped")
        while len(box.jobs) < 2:
            if run.poll() is not None:
                return f"{how}: the run ended before its 2nd job ({(work / 'stopped.log').read_text()[-500:]})"
            time.sleep(0.05)
        stopped_at, jobs_then = time.monotonic(), len(box.jobs)
        if how == "term":
            run.send_signal(signal.SIGTERM)
        else:
            os.killpg(run.pid, signal.SIGINT)
        try:
            code: object = run.wait(timeout=900)
        except subprocess.TimeoutExpired:
            run.kill()
            code = "none (killed after 900 s)"
        exit_s = time.monotonic() - stopped_at
        time.sleep(settle_s)  # then jobs are counted and processes looked for
        after = len(box.jobs) - jobs_then
        tracebacks = (work / "stopped.log").read_text().count("Traceback")
        left = left_behind(str(home))
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        start("rerun").wait(timeout=1800)
        box.latency_s = 0.0
        prompts = [job.prompt for job in box.jobs.values()]
        twice = sum(1 for prompt in set(prompts) if prompts.count(prompt) > 1)
        ledger = open_ledger(open_root(str(work / "out"))).frame()
        spent = ledger.filter(pl.col("status").is_in(["paid", "settled", "failed"]))["cost_usd"].sum()
        return (f"{'SIGTERM' if how == 'term' else 'Ctrl-C'}: exit {code} after {exit_s:.1f} s; jobs created after "
                f"the stop {after}; tracebacks {tracebacks}; processes left {len(left)}; after the rerun "
                f"{len(prompts)} jobs for {items} items, {twice} paid twice, ledger ${spent:.2f} vs billed "
                f"${box.total_billed_usd():.2f}")


def main(items: int, signals: list[str], before: str | None, settle_s: float) -> None:
    with tempfile.TemporaryDirectory(prefix="vidbatch-stop-") as folder:
        work = Path(folder)
        if before:
            _, site = build_revision(before, work)
            for how in signals:
                print(f"before ({before}) {one_case(work / f'before-{how}', items, how, site, settle_s)}", flush=True)
        for how in signals:
            print(f"now {one_case(work / f'now-{how}', items, how, None, settle_s)}", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    rev = args.pop(args.index("--before") + 1) if "--before" in args else None
    chosen = args.pop(args.index("--signals") + 1).split(",") if "--signals" in args else ["term", "int"]
    settle = float(args.pop(args.index("--settle") + 1)) if "--settle" in args else 20.0
    args = [a for a in args if a not in ("--before", "--signals", "--settle")]
    main(int(args[0]) if args else 12, chosen, rev, settle)
