"""The exception tree of vidbatch.

VidbatchError
├── CatalogError          the catalog file itself is unusable (not Parquet, missing column)
├── PolicyError           the policy file is invalid
├── Deferred              an item was not attempted in this run; a later run picks it up
│   ├── BudgetExceeded    a reservation would break a cap
│   └── RunStopped        the run was stopped (cancel, signal, fault) before the item's call ended
├── StorageError          an output root cannot be read or written
├── RunFault              the run's own infrastructure failed (storage, ledger database, disk): it
│   │                     stops, and its message says what failed and what happens next
│   └── LedgerUnavailable the ledger database cannot be reached, or failed in a statement
├── LayoutError           a key or path would leave its root (vidbatch.layout refuses it)
├── RunFailed             a run ended with failed items or storyboards (`summary` says which)
├── MediaError            ffmpeg failed or a clip is not what it claims to be
│   └── QAFailed          a finished clip failed the QA gate (and its one regeneration)
└── ProviderError         a provider call failed
    ├── TransientProviderError   worth retrying: 429, 5xx, timeouts, lost connections
    ├── ContentRejected          permanent for this item: bad input, moderation
    ├── ProviderUnavailable      the route is gone for this run: no key, model gone, auth
    ├── SubmitUnconfirmed        a submit's reply was lost and the endpoint cannot tell whether it
    │                            made a job: charged its estimate, not sent again; the item waits
    └── RenderStopped            the caps refused to grow a render's reservation: it stopped
"""

from __future__ import annotations

from vidbatch.refusals import Refusal

__all__ = [
    "VidbatchError",
    "CatalogError",
    "PolicyError",
    "Deferred",
    "BudgetExceeded",
    "RunStopped",
    "RunFault",
    "LedgerUnavailable",
    "StorageError",
    "LayoutError",
    "MediaError",
    "QAFailed",
    "RunFailed",
    "ProviderError",
    "TransientProviderError",
    "ContentRejected",
    "ProviderUnavailable",
    "SubmitUnconfirmed",
    "RenderStopped",
]


class VidbatchError(Exception):
    """Base of every error vidbatch raises on purpose."""


class CatalogError(VidbatchError):
    """The catalog as a whole cannot be used (row-level problems become rejects instead)."""


class PolicyError(VidbatchError):
    """The policy file is missing, unreadable or fails validation."""


class Deferred(VidbatchError):
    """The item waits for a later run (its route is gone with no fallback, its source is missing...);
    `refusal`: the rule that refused it, when one did (a cap; another run made or is making it)."""

    def __init__(self, message: str = "", *, refusal: Refusal | None = None):
        super().__init__(message)
        self.refusal = refusal


class BudgetExceeded(Deferred):
    """Spending would exceed a cap."""


class RunStopped(Deferred):
    """The run stopped (vidbatch.stopping) before this item's paid call, or while its job ran at the
    provider: nothing more is sent; a job that exists stays recorded and the next run resumes it."""


class StorageError(VidbatchError):
    """An output root or catalog URI cannot be read or written."""


class RunFault(VidbatchError):
    """The run's own infrastructure failed (the output root, the ledger database, a full disk): the
    run stopped sending paid calls, kept what it paid in the ledger, and ends Failed with this one line."""


class LedgerUnavailable(RunFault):
    """The ledger database cannot be reached (after waiting) or failed inside a statement."""


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
    """A provider call failed. `cost_usd` is what the request's calls cost up to the failure: the
    failed call's own cost plus every call of the same request that finished before it (a 16 s clip
    whose extension fails still paid for its 12 s create)."""

    def __init__(self, message: str, *, cost_usd: float = 0.0, job_id: str | None = None):
        super().__init__(message)
        self.cost_usd = cost_usd
        self.job_id = job_id


class TransientProviderError(ProviderError):
    """A failure that a retry may fix (rate limit, server error, timeout). `ambiguous`: a submit
    that may have created a job nonetheless (a lost reply): reconciled before any retry submits."""

    ambiguous: bool = False


class ContentRejected(ProviderError):
    """The provider refused this item's input for good (validation, moderation)."""


class ProviderUnavailable(ProviderError):
    """The route cannot serve anything in this run (not configured, model gone, auth)."""


class SubmitUnconfirmed(ProviderError):
    """A paid submit whose answer was lost (5xx, a cut connection) and whose fate the endpoint cannot
    tell (it lists no jobs, or the look-up kept failing): the job may exist and bill. `cost_usd`
    charges it at its estimate, so the ledger never shows less than was billed; it is never sent
    again by this attempt, and the item waits for a later run instead of failing."""

    @classmethod
    def charged(cls, submit: str, why: str, lookup: str, estimate: float, *, spent: float = 0.0) -> "SubmitUnconfirmed":
        """The one wording every kind uses: `submit` what was sent, `why` its answer, `lookup` why
        its fate cannot be found out; the cost is the submit's `estimate` plus what the request's
        earlier calls already `spent`."""
        return cls(
            f"{submit}: {why}; whether it made a job cannot be found out ({lookup}): charged its estimate "
            f"(${estimate:.2f}), not sent again; the item waits for a later run",
            cost_usd=spent + estimate,
        )


class RenderStopped(ProviderError):
    """A render outgrew its reservation and the caps refused to grow it: it stopped before spending
    more, `cost_usd` is what it used (0 when it was refused before it began). The item waits for a
    later run, like any item a cap refuses."""
