"""The values a clip's task run passes along: made (GeneratedClip), passed QA (CheckedClip),
delivered or held for review (FinishedClip), or not made now (Deferral)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vidbatch.ledger import Reservation
from vidbatch.media import MediaInfo
from vidbatch.refusals import Refusal
from vidbatch.runs import ClipJob
from vidbatch.scores import ClipScores
from vidbatch.statuses import ItemStatus

__all__ = ["GeneratedClip", "Deferral", "CheckedClip", "FinishedClip"]


@dataclass(frozen=True)
class GeneratedClip:
    job: ClipJob  # as made: after a fallback, the job on the route that made it
    path: Path
    raw_uri: str
    seconds: float
    cost_usd: float
    reservation: Reservation  # the ledger reservation that paid for it
    job_id: str | None = None
    note: str = ""
    sandbox: bool = False
    fps: float | None = None  # the frame rate its route promised (QA holds the clip to it)
    fell_back_from: tuple[str, ...] = ()  # the routes that went dark before the one that made it


@dataclass(frozen=True)
class Deferral:
    """What a task run that did not make its clip returns: why (for people), and the rule that
    refused it when one did (a cap; another run made or is making it)."""

    reason: str
    refusal: Refusal | None = None

    @property
    def skipped(self) -> bool:
        """Another run made or is making this item: skipped here, not deferred."""
        return self.refusal is not None and self.refusal.another_run_has_it


@dataclass(frozen=True)
class CheckedClip:
    clip: GeneratedClip  # the clip accepted (after a QA regeneration, the second one)
    path: Path  # the finished cut
    info: MediaInfo
    qa: str
    regenerated: bool = False  # QA failed the first clip; this is its one regeneration
    scores: ClipScores | None = None  # [qa.scores]: what the clip measured (None: scoring is off)
    needs_person: str | None = None  # its scores missed their lines (vidbatch.triage): why it waits for review


@dataclass(frozen=True)
class FinishedClip:
    item_id: str
    campaign: str
    asset_uri: str
    sha256: str
    seconds: float
    width: int
    height: int
    route: str = ""
    model: str = ""
    note: str = ""
    qa: str = ""
    sheet_uri: str | None = None
    status: ItemStatus = ItemStatus.FINISHED  # or AWAITING_REVIEW: asset_uri is then its review copy
    est_cost_usd: float = 0.0  # the estimate of the route that made it
    fell_back: bool = False  # made on a fallback: its planned route went dark mid-run
    qa_regenerated: bool = False  # QA failed its first clip; this one passed
    job_id: str | None = None  # the provider's job that made it (a remix of it names that job)
    scores: ClipScores | None = None  # [qa.scores]: what the clip measured (None: scoring is off)
