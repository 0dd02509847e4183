"""Post-production tasks: cut a generated clip to the finished window, and write deliverables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from vidbatch.media import cut, probe, sha256_of
from vidbatch.storage import OutputRoot
from vidbatch.tasks.generate import GeneratedClip

__all__ = ["FinishedClip", "trim_clip", "write_asset"]


@dataclass(frozen=True)
class FinishedClip:
    item_id: str
    campaign: str
    asset_uri: str
    sha256: str
    seconds: float
    width: int
    height: int


@task(name="trim-clip", task_run_name="trim {clip.job.item_id}", retries=1, cache_policy=NO_CACHE)
def trim_clip(clip: GeneratedClip) -> Path:
    """Frame-accurate cut to [trim_start_s, trim_start_s + duration_s) at the clip's own fps."""
    job = clip.job
    return cut(clip.path, clip.path.with_name(f"{job.item_id}.cut.mp4"), job.trim_start_s, job.duration_s)


@task(name="write-asset", task_run_name="write {key}", retries=3, retry_delay_seconds=[1, 5, 15],
      cache_policy=NO_CACHE)
def write_asset(root: OutputRoot, path: Path, key: str, item_id: str, campaign: str) -> FinishedClip:
    info = probe(path)
    return FinishedClip(item_id=item_id, campaign=campaign, asset_uri=root.put_file(path, key),
                        sha256=sha256_of(path), seconds=info.duration_s, width=info.width, height=info.height)
