"""Orchestration overhead per clip: the catalog flow with a zero-latency provider, against a bare
Prefect `task.map` of the same count, both on one ephemeral Prefect API in the same process.

The zero-latency provider does no rendering at all (it copies one pre-rendered 1 s MP4), so what
remains is vidbatch's per-clip work: ledger reservation + settlement, trim, asset write, 1 task run.
The flow runs twice in the same process: with the media metadata read by PyAV (as shipped), and
with the earlier reader (regexes over ffmpeg's log, bench/ffmpeg_log_probe.py) patched in.

Walls are taken two ways. "Until returned" stops the clock when the flow returns: a bare task's
wall then leaves out the API server's recording of its task runs (it happens after the flow
returns), while a clip's does not (the server records earlier clips on the same cores meanwhile).
"Until recorded" stops it when the API has recorded every task run of the flow run, on both
sides alike: the fair comparison, and the one the orchestration ratio is given on (the other is
printed beside it). Besides the walls, the CPU each side costs until the API has recorded every
task run: this process, its ffmpeg children and the ephemeral API server's process.
Run: .venv/bin/python bench/orchestration_overhead.py [N]
"""

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import contextlib  # noqa: E402

import polars as pl  # noqa: E402
import psutil  # noqa: E402
from prefect import flow, task  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from vidbatch.flows.produce_catalog import produce_catalog  # noqa: E402
from vidbatch.flows.records import wait_until_recorded  # noqa: E402
from vidbatch.media import testsrc  # noqa: E402
from vidbatch.in_process import InProcess  # noqa: E402
from vidbatch.providers import Capabilities, Clip  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ffmpeg_log_probe  # noqa: E402

import vidbatch.media  # noqa: E402
import vidbatch.tasks.postprod  # noqa: E402
import vidbatch.tasks.stitch  # noqa: E402


@contextlib.contextmanager
def ffmpeg_log_metadata():
    """The earlier metadata reader everywhere vidbatch probes a clip."""
    patched = [(vidbatch.media, "probe"), (vidbatch.media, "probe_headers"), (vidbatch.tasks.postprod, "probe"),
               (vidbatch.tasks.stitch, "probe_headers")]
    saved = [getattr(module, name) for module, name in patched]
    for module, name in patched:
        setattr(module, name, getattr(ffmpeg_log_probe, name))
    try:
        yield
    finally:
        for (module, name), value in zip(patched, saved):
            setattr(module, name, value)


class ZeroLatency:
    id, sandbox, secrets = "wan", False, ()
    capabilities = Capabilities(max_clip_s=5.0)

    def __init__(self, template: Path):
        self.template = template

    def unavailable(self):
        return None

    def generate(self, request, workdir, journal=None):
        path = workdir / f"{request.item_id}.mp4"
        shutil.copyfile(self.template, path)
        return Clip(path=path, seconds=1.0, cost_usd=0.0001)


def recorded(flow_run_id, expected: int, name_like: str | None = None, poll_s: float = 0.05) -> float:
    """Wait until the API has recorded `expected` task runs of the flow run (named like
    `name_like`) Completed; returns when (perf_counter)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (FlowRunFilter, FlowRunFilterId, TaskRunFilter, TaskRunFilterName,
                                                TaskRunFilterStateType)

    completed = TaskRunFilter(state={"type": TaskRunFilterStateType(any_=["COMPLETED"])},
                              name=TaskRunFilterName(like_=name_like) if name_like else None)
    with get_client(sync_client=True) as client:
        while True:
            last = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                                         task_run_filter=completed, offset=expected - 1, limit=1)
            if last:  # the expected-th one is there (a cheap poll: it costs the API one row)
                return time.perf_counter()
            time.sleep(poll_s)


@task
def noop(i: int) -> int:
    return i


@flow(task_runner=ThreadPoolTaskRunner(max_workers=8))
def bare(n: int) -> None:
    noop.map(range(n)).wait()


def main(n: int) -> None:
    scratch = Path(tempfile.mkdtemp())
    template = testsrc(scratch / "t.mp4", 1.0, 256, 144, 16)
    rows = [{"item_id": f"c{i}", "campaign": "bench", "prompt": "p", "duration_s": 0.5, "aspect": "16:9",
             "realism": "low"} for i in range(n)]
    pl.DataFrame(rows).write_parquet(scratch / "catalog.parquet")
    bare(2)  # warm the ephemeral API so neither side pays its start-up
    bares: dict[str, list[float]] = {"returned": [], "recorded": [], "cpu": []}

    def bare_task_map() -> None:
        cpu0 = cpu_s()
        t0 = time.perf_counter()
        bare_run = bare(n, return_state=True).state_details.flow_run_id
        bares["returned"].append((time.perf_counter() - t0) / n * 1000)
        bares["recorded"].append((recorded(bare_run, n) - t0) / n * 1000)
        wait_until_recorded(str(bare_run))
        bares["cpu"].append((cpu_s() - cpu0) / n * 1000)

    cpus = {"ffmpeg-log": [], "pyav": []}
    recorded_at = {"ffmpeg-log": [], "pyav": []}

    def produce(out: str) -> float:
        hands = InProcess(providers={"wan": lambda policy: ZeroLatency(template)})
        reader = "ffmpeg-log" if "legacy" in out else "pyav"
        cpu_before = cpu_s()
        started = time.perf_counter()
        summary = produce_catalog(str(scratch / "catalog.parquet"), out=str(scratch / out),
                                  policy_path=str(HERE.parent / "catalogs" / "demo-policy.toml"), in_process=hands)
        wall = time.perf_counter() - started
        assert summary["status_counts"] == {"finished": n}, summary
        recorded_at[reader].append(recorded(summary["run_id"], n, name_like=" on wan") - started)
        wait_until_recorded(summary["run_id"])
        cpus[reader].append((cpu_s() - cpu_before) / n * 1000)
        return wall

    walls = {"ffmpeg-log": [], "pyav": []}
    for round_ in range(2):  # alternated, so no variant always runs on a warmer machine
        bare_task_map()
        with ffmpeg_log_metadata():
            walls["ffmpeg-log"].append(produce(f"out-legacy-{round_}"))
        walls["pyav"].append(produce(f"out-{round_}"))
    media = {"ffmpeg-log": [], "pyav": []}
    media_cpu = []
    for round_ in range(2):
        with ffmpeg_log_metadata():
            media["ffmpeg-log"].append(media_work_ms(template, scratch / f"media-legacy-{round_}", 30))
        before = cpu_s()
        media["pyav"].append(media_work_ms(template, scratch / f"media-{round_}", 30))
        media_cpu.append((cpu_s() - before) / 30 * 1000)
    report(n, bare_ms=mean(bares["returned"]), bare_recorded_ms=mean(bares["recorded"]), bare_cpu=mean(bares["cpu"]),
           walls=walls,
           recorded=recorded_at, media=media, cpus=cpus, media_cpu=media_cpu)


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def report(n: int, *, bare_ms: float, bare_recorded_ms: float, bare_cpu: float, walls: dict, recorded: dict,
           media: dict, cpus: dict, media_cpu: list) -> None:
    legacy_ms, ours_ms = (mean(walls[k]) / n * 1000 for k in ("ffmpeg-log", "pyav"))
    ours_recorded_ms = mean(recorded["pyav"]) / n * 1000
    legacy_media, ours_media = (mean(media[k]) for k in ("ffmpeg-log", "pyav"))
    cores = os.cpu_count() or 1
    print(f"clips per flow run                             {n} (each variant and the bare map twice, alternated)")
    print(f"bare task.map                                  {bare_ms:.1f} ms/task until returned, "
          f"{bare_recorded_ms:.1f} ms/task until recorded")
    print(f"produce_catalog, metadata from ffmpeg's log    {legacy_ms:.1f} ms/clip until returned (runs: "
          f"{', '.join(f'{w:.2f} s' for w in walls['ffmpeg-log'])})")
    print(f"produce_catalog, metadata from PyAV            {ours_ms:.1f} ms/clip until returned, "
          f"{ours_recorded_ms:.1f} ms/clip until recorded (runs: {', '.join(f'{w:.2f} s' for w in walls['pyav'])})")
    spread = ours_media / cores
    fair, returned = ours_recorded_ms - spread, ours_ms - spread
    print(f"orchestration per clip beyond the media work    {fair:.1f} ms = {fair / bare_recorded_ms:.1f}x a bare "
          "task, "
          f"both until recorded (until returned: {returned:.1f} ms = {returned / bare_ms:.1f}x); the clip's wall less "
          f"its media work spread over {cores} cores")
    clip_cpu, work_cpu = mean(cpus["pyav"]), mean(media_cpu)
    print(f"CPU until recorded (this process, ffmpeg, API)  bare task {bare_cpu:.1f} ms; clip {clip_cpu:.1f} ms, of "
          f"which media work {work_cpu:.1f} ms; orchestration CPU per clip {clip_cpu - work_cpu:.1f} ms = "
          f"{(clip_cpu - work_cpu) / bare_cpu:.1f}x a bare task")
    print(f"post-production media work per clip, alone     {ours_media:.1f} ms with PyAV, {legacy_media:.1f} ms with "
          f"ffmpeg's log ({legacy_media / ours_media:.2f}x)  [cut, probe, QA scan, contact sheet; one thread]")


def cpu_s() -> float:
    """CPU seconds so far of this process, its ended children (ffmpeg) and its live ones (the API server)."""
    times = os.times()
    live = sum(sum(child.cpu_times()[:2]) for child in psutil.Process().children(recursive=True))
    return times.user + times.system + times.children_user + times.children_system + live


def media_work_ms(source: Path, folder: Path, clips: int) -> float:
    """The media steps a clip's finish runs on each clip, one clip after another, in ms per clip."""
    from vidbatch.media import contact_sheet, cut, detect_defects, probe

    folder.mkdir()
    started = time.perf_counter()
    for i in range(clips):
        made = cut(source, folder / f"{i}.mp4", 0.0, 0.5)
        probe(made)
        detect_defects(made, black_min_s=0.5, black_pixel_threshold=0.1, black_picture_ratio=0.98,
                       freeze_min_s=1.0, freeze_noise_db=-60.0)
        contact_sheet(made, folder / f"{i}.jpg")
    return (time.perf_counter() - started) / clips * 1000


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
