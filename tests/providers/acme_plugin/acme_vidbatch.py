"""acme-video: a provider kind written from vidbatch's README ("Adding a kind"), outside vidbatch.

Its clips are ffmpeg test patterns (vidbatch.media.testsrc) billed at `usd_per_s`; a real kind
would call its service here, journaling each job id before it waits."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from pydantic import BaseModel, ConfigDict

from vidbatch.media import testsrc
from vidbatch.providers import Capabilities, Clip, ClipRequest, Journal, ProviderKind


class AcmeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    usd_per_s: float = 0.05
    clip_s: float = 4.0


class AcmeProvider:
    sandbox = False
    secrets: tuple[str, ...] = ()

    def __init__(self, route: str, settings: AcmeSettings):
        self.id, self.settings = route, settings
        self.capabilities = Capabilities(max_clip_s=settings.clip_s, max_footage_s=settings.clip_s)

    def unavailable(self) -> str | None:
        return None

    def generate(self, request: ClipRequest, workdir: Path, journal: Journal | None = None) -> Clip:
        journal = journal or Journal()
        journal.on_job(f"acme-{request.item_id}", "acme job")
        path = testsrc(workdir / f"acme-{request.item_id}.mp4", request.seconds, request.width, request.height, 16)
        return Clip(path=path, seconds=request.seconds, cost_usd=request.seconds * self.settings.usd_per_s,
                    job_id=f"acme-{request.item_id}", fps=16)


def price(settings: AcmeSettings, route: str) -> list:
    fits = pl.col("duration_s") <= settings.clip_s
    return [pl.when(fits).then(pl.lit("acme-1")).alias(f"{route}_model"),
            pl.when(fits).then(pl.lit("832x480")).alias(f"{route}_size"),
            pl.when(fits).then(pl.col("duration_s") * settings.usd_per_s).alias(f"{route}_cost")]


KIND = ProviderKind(name="acme-video", settings=AcmeSettings, build=AcmeProvider, price=price,
                    description="Acme's video API (a test plugin)",
                    describe=lambda s: {"models": "acme-1", "prices": f"${s.usd_per_s}/s", "where": "acme"})
