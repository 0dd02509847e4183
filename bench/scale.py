"""Scale: N clips through a real Prefect server + process worker, from 100 to 10,000.

Starts `prefect server start` (SQLite, loopback) and one worker of the `vidbatch` pool, deploys
infra/prefect.yaml, and runs the `produce-catalog/adhoc` deployment on catalogs of N one-second
items. The Wan model is `source = "testsrc"` (a moving test pattern, no weights), so what is
measured is everything around the model: planning, one task run per clip (paid step, cut, QA, delivery),
ledger writes, the cut, the QA scan, contact sheets, the report.
Per size: wall time of the flow run (server's start/end), clips per minute, seconds per clip, and
the growth of seconds per clip against the first size, and the flow-run process's peak memory.
Baseline, same run: the media work alone
(render + cut + QA scan + contact sheet of one clip, called directly, no Prefect) per clip,
divided by the cores; "orchestration" is what each clip costs beyond that.
With `--before REV`, the same sizes also run on the code of git revision REV (built into a folder
of its own and put first on the worker's PYTHONPATH, its own deployment file and policy), on a
server of its own, after this tree's: per-clip before/after from the same run.
Run: .venv/bin/python bench/scale.py 100 1000 10000 [--before REV]
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import polars as pl

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def policy(path: Path, home: Path = REPO) -> Path:
    text = (home / "catalogs" / "demo-policy.toml").read_text()
    text = text.replace("night_usd = 5.0", "night_usd = 100000.0")
    text = text.replace("campaign_usd = 3.0", "campaign_usd = 100000.0")
    path.write_text(text.replace('source = "tiny"\nsteps = 4', 'source = "testsrc"\nsteps = 4', 1))
    return path


def media_seconds_per_clip(work: Path, pol: Path, n: int = 20) -> float:
    from vidbatch.media import contact_sheet, cut, detect_defects, probe
    from vidbatch.policy import load_policy
    from vidbatch.providers import ClipRequest
    from vidbatch.providers.wan import WanProvider

    route = load_policy(pol).routes["wan"]
    provider = WanProvider(route, route_id="wan")
    provider.generate(ClipRequest(item_id="warm", prompt="p", seconds=1.0, width=256, height=144, model="tiny"), work)
    started = time.perf_counter()
    for i in range(n):
        clip = provider.generate(ClipRequest(item_id=f"m{i}", prompt="p", seconds=1.0, width=256, height=144,
                                             model="tiny", seed=i), work)
        done = cut(clip.path, work / f"m{i}.cut.mp4", 0.0, 1.0)
        probe(done)
        detect_defects(done, black_min_s=1, black_pixel_threshold=0.1, black_picture_ratio=0.98, freeze_min_s=2,
                       freeze_noise_db=-60)
        contact_sheet(done, work / f"m{i}.jpg")
    return (time.perf_counter() - started) / n


class PeakMemory(threading.Thread):
    """The flow-run process's peak resident memory (VmHWM, MiB) while the block runs: the worker
    starts it as `python -m prefect.engine`; read from /proc every 0.5 s (Linux)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak_mib, self.done = 0.0, threading.Event()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.join()

    def run(self) -> None:
        while not self.done.wait(0.5):
            for proc in Path("/proc").glob("[0-9]*"):
                try:
                    if b"prefect.engine" not in (proc / "cmdline").read_bytes():
                        continue
                    for line in (proc / "status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.peak_mib = max(self.peak_mib, int(line.split()[1]) / 1024)
                except OSError:
                    continue


def build_revision(rev: str, work: Path) -> tuple[Path, Path]:
    """The tree of `rev` and a folder with it installed (not editable): (home, site)."""
    home, site = work / f"src-{rev}", work / f"site-{rev}"
    home.mkdir()
    archive = subprocess.run(["git", "archive", rev], cwd=REPO, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(home)], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(home)], check=True)
    # Flow runs start in `home`: its own vidbatch/ folder (without the flows/tasks/providers the
    # install puts inside) would shadow the installed package and mix in this tree's modules.
    shutil.rmtree(home / "vidbatch")
    return home, site


def run_sizes(label: str, sizes: list[int], work: Path, home: Path, site: Path | None,
              media_per_core: float) -> dict[int, float]:
    """One server and worker running `home`'s code; prints a row per size; seconds per clip by size."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    pol = policy(work / f"policy-{label}.toml", home)
    env = {**os.environ, "PREFECT_HOME": str(work / f"prefect-{label}"), "PREFECT_API_URL": api,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING",
           "VIDBATCH_HOME": str(home), "VIDBATCH_TIMEZONE": "UTC", "VIDBATCH_NIGHTLY_ACTIVE": "false",
           "VIDBATCH_CATALOG": "unused", "VIDBATCH_OUT": "unused", "VIDBATCH_POLICY": str(pol),
           "VIDBATCH_LEDGER_URL": ""}  # deployed as the runs' ledger: empty, the SQLite file beside each root
    if site is not None:
        env["PYTHONPATH"] = str(site)  # ahead of the editable install of this tree
    processes = [subprocess.Popen([BIN / "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    per_clip = {}
    try:
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        for pool in ("vidbatch", "vidbatch-gpu", "vidbatch-gpu-24gb"):  # infra/prefect.yaml's work pools
            subprocess.run([BIN / "prefect", "work-pool", "create", pool, "--type", "process"], env=env,
                           check=True, capture_output=True)
        subprocess.run([BIN / "prefect", "--no-prompt", "deploy", "--prefect-file", "infra/prefect.yaml", "--all"],
                       env=env, check=True, capture_output=True, cwd=home)
        processes.append(subprocess.Popen([BIN / "prefect", "worker", "start", "--pool", "vidbatch"], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from prefect.deployments import run_deployment
        from prefect.settings import PREFECT_API_URL, temporary_settings

        first = None
        for n in sizes:
            catalog = work / f"catalog-{n}.parquet"
            pl.DataFrame({"item_id": [f"c{i}" for i in range(n)], "campaign": "scale",
                          "prompt": "a moving test pattern", "duration_s": 1.0, "aspect": "16:9",
                          "realism": "low"}).write_parquet(catalog)
            with temporary_settings({PREFECT_API_URL: api}), PeakMemory() as memory:  # this variant's server
                run = run_deployment("produce-catalog/adhoc", timeout=None, parameters={
                    "catalog": str(catalog), "out": str(work / f"out-{label}-{n}"), "policy_path": str(pol)})
            assert run.state.is_completed(), run.state
            wall = (run.end_time - run.start_time).total_seconds()
            per_clip[n] = wall / n
            first = first or per_clip[n]
            print(f"| {label} | {n} | {wall:.1f} | {60 * n / wall:.0f} | {per_clip[n]:.3f} | "
                  f"{per_clip[n] / first:.2f} | {per_clip[n] - media_per_core:.3f} | {memory.peak_mib:.0f} |",
                  flush=True)
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=60)
    return per_clip


def main(sizes: list[int], before: str | None) -> None:
    work = Path(tempfile.mkdtemp(prefix="vidbatch-scale-"))
    (work / "media").mkdir()
    media = media_seconds_per_clip(work / "media", policy(work / "policy-media.toml"))
    cores = os.cpu_count() or 1
    print(f"media work alone: {media:.3f} s per clip ({media / cores:.3f} s per clip over {cores} cores)")
    print("| code | clips | flow wall s | clips/min | s per clip | growth vs first | orchestration s per clip | "
          "flow process peak MiB |")
    print("|---|---|---|---|---|---|---|---|")
    after = run_sizes("this tree", sizes, work, REPO, None, media / cores)
    if before:
        home, site = build_revision(before, work)
        old = run_sizes(before, sizes, work, home, site, media / cores)
        for n in sizes:
            print(f"{n} clips: {after[n]:.3f} s per clip now, {old[n]:.3f} s at {before} "
                  f"({after[n] / old[n]:.2f}×)")


if __name__ == "__main__":
    args = sys.argv[1:]
    rev = args.pop(args.index("--before") + 1) if "--before" in args else None
    sizes = [int(a) for a in args if a != "--before"]
    main(sizes or [100, 1000], rev)
