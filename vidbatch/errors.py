"""The exception tree of vidbatch.

    VidbatchError
    ├── CatalogError          the catalog file itself is unusable (not Parquet, missing column)
    ├── PolicyError           the policy file is invalid
    ├── Deferred              an item was not attempted in this run; a later run picks it up
    │   └── BudgetExceeded    a reservation would break a cap
    ├── StorageError          an output root cannot be read or written
    ├── LayoutError           a key or path would leave its root (vidbatch.layout refuses it)
    ├── RunFailed             a run ended with failed items or storyboards (`summary` says which)
    ├── MediaError            ffmpeg failed or a clip is not what it claims to be
    │   └── QAFailed          a finished clip failed the QA gate (and its one regeneration)
    └── ProviderError         a provider call failed
        ├── TransientProviderError   worth retrying: 429, 5xx, timeouts, lost connections
        ├── ContentRejected          permanent for this item: bad input, moderation
        ├── ProviderUnavailable      the route is gone for this run: no key, model gone, auth
        └── RenderStopped            the caps refused to grow a render's reservation: it stopped
"""

from __future__ import annotations

__all__ = [
    "VidbatchError",
    "CatalogError",
    "PolicyError",
    "Deferred",
    "BudgetExceeded",
    "StorageError",
    "LayoutError",
    "MediaError",
    "QAFailed",
    "RunFailed",
    "ProviderError",
    "TransientProviderError",
    "ContentRejected",
    "ProviderUnavailable",
    "RenderStopped",
]


class VidbatchError(Exception):
    """Base of every error vidbatch raises on purpose."""


class CatalogError(VidbatchError):
    """The catalog as a whole cannot be used (row-level problems become rejects instead)."""


class PolicyError(VidbatchError):
    """The policy file is missing, unreadable or fails validation."""


class Deferred(VidbatchError):
    """The item waits for a later run (its route is gone with no fallback, its source is missing...)."""


class BudgetExceeded(Deferred):
    """Spending would exceed a cap."""


class StorageError(VidbatchError):
    """An output root or catalog URI cannot be read or written."""


class RunFailed(VidbatchError):
    """A run ended with failed items or storyboards (the rest of it stands); `summary` says what."""

    def __init__(self, message: str, summary: dict):
        super().__init__(message)
        self.summary = summary


class LayoutError(VidbatchError):
    """A key under an output root, or a path under a work folder, would leave it (or is built from
    a name that breaks the naming rule): refused before anything is written."""


class MediaError(VidbatchError):
    """ffmpeg failed, or a media file does not match what was expected."""


class QAFailed(MediaError):
    """A finished clip failed the QA gate: wrong length, size or fps, black or frozen stretches."""


class ProviderError(VidbatchError):
    """A provider call failed. `cost_usd` is what the failed call still cost."""

    def __init__(self, message: str, *, cost_usd: float = 0.0, job_id: str | None = None):
        super().__init__(message)
        self.cost_usd = cost_usd
        self.job_id = job_id


class TransientProviderError(ProviderError):
    """A failure that a retry may fix (rate limit, server error, timeout)."""


class ContentRejected(ProviderError):
    """The provider refused this item's input for good (validation, moderation)."""


class ProviderUnavailable(ProviderError):
    """The route cannot serve anything in this run (not configured, model gone, auth)."""


class RenderStopped(ProviderError):
    """A render outgrew its reservation and the caps refused to grow it: it stopped before spending
    more, `cost_usd` is what it used (0 when it was refused before it began). The item waits for a
    later run, like any item a cap refuses."""
