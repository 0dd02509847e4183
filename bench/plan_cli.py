"""`vidbatch plan` on a big catalog, both views, against validate+plan measured in the same run.

Each step is its own process (imports included), timed by wall clock, peak RSS from wait4:
  baseline   read + validate + fingerprint + plan_run, nothing printed (what the command must do)
  human      `vidbatch plan CATALOG` (summary at the terminal, full plan saved as Parquet)
  json       `vidbatch plan CATALOG --json` (every row as NDJSON on stdout)
Run: .venv/bin/python bench/plan_cli.py [N]   (default 1,000,000 rows)
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from plan_throughput import synthetic  # noqa: E402

BASELINE = """
import sys
from vidbatch.catalog import validate_catalog, with_fingerprints
from vidbatch.ledger import History
from vidbatch.policy import load_policy
from vidbatch.providers import build_providers, priced_routes, unavailable_routes
from vidbatch.runs import plan_run
from vidbatch.storage import read_catalog
policy = load_policy(None)
valid, rejects = validate_catalog(read_catalog(sys.argv[1]), list(policy.routes))
providers = build_providers(policy)
plan = plan_run(with_fingerprints(valid), policy, History(),
                priced_routes(policy, providers, unavailable_routes(providers)))
print(plan.height, rejects.height)
"""


def measure(command: list[str], stdout_path: Path, cwd: Path) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MiB and lines printed by one process."""
    with open(stdout_path, "wb") as sink:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.PIPE, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command} failed: {process.stderr.read().decode()[-2000:]}")
    with open(stdout_path, "rb") as printed:
        lines = sum(1 for _ in printed)
    return wall, usage.ru_maxrss / 1024, lines


def main(n: int) -> None:
    vidbatch = str(Path(sys.executable).parent / "vidbatch")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        catalog = folder / "catalog.parquet"
        synthetic(n).write_parquet(catalog)
        runs = {
            "baseline validate+plan": [sys.executable, "-c", BASELINE, str(catalog)],
            "plan (human summary)": [vidbatch, "plan", str(catalog), "--save", str(folder / "plan.parquet")],
            "plan --json": [vidbatch, "plan", str(catalog), "--json"],
        }
        results = {name: measure(command, folder / f"{i}.out", folder)
                   for i, (name, command) in enumerate(runs.items())}
        summary = (folder / "1.out").read_text()
    base = results["baseline validate+plan"][0]
    print(f"rows {n:,}; python {sys.version.split()[0]}; {os.cpu_count()} cores")
    print("| view | wall s | vs baseline | peak RSS MiB | lines printed |")
    print("|---|---:|---:|---:|---:|")
    for name, (wall, rss, lines) in results.items():
        print(f"| {name} | {wall:.2f} | {wall / base:.2f}x | {rss:,.0f} | {lines:,} |")
    print("\nhuman view as printed:\n" + summary)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
