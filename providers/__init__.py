"""The provider contract, and how a run's providers are built from its policy.

A provider has an `id`, `sandbox` (it makes nothing paid for), `capabilities` (a `Capabilities`:
every capability the planner, the runs and `vidbatch routes` read, typed and defaulted), `secrets`
(what the run's redactor must hide: its keys), `unavailable()` (None when it can serve, else why
not) and one verb, `generate(request, workdir, journal) -> Clip`. The journal links a paid call to
the ledger: job ids created earlier for this request (a provider resumes them and never creates
them again), and a hook that records each new job id at once. `build_providers` builds a run's
providers: every route of the policy (`Policy.route_sections`) through its kind, or through the
factory a caller in this process binds to the route's name (tests, benches, the sandbox:
vidbatch.in_process); a provider that does not keep the contract is refused there, named.

Provider *kinds* (vidbatch.kinds, re-exported here) are code and pluggable: a `ProviderKind` that
a package announces in the `vidbatch.provider_kinds` entry-point group, as pluggy/llm/Prefect
plugins do. vidbatch's own (`wan-diffusers`, `openai-videos`, `dashscope`, `gemini-veo`) are
announced the same way in its pyproject.toml, and validate their settings the same way.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from vidbatch.in_process import Factory
from vidbatch.kinds import BUILT_IN_KINDS, KIND_GROUP, ProviderKind, RunSettings, kind_of, provider_kinds
from vidbatch.route_settings import Resolution

if TYPE_CHECKING:  # the contract imports no polars: a GPU box's bench imports the Wan levers alone
    from vidbatch.planner import PricedRoute
    from vidbatch.policy import Policy

__all__ = [
    "ClipRequest",
    "Clip",
    "Journal",
    "Capabilities",
    "Provider",
    "contract_problems",
    "checked",
    "ProviderKind",
    "RunSettings",
    "provider_kinds",
    "KIND_GROUP",
    "BUILT_IN_KINDS",
    "kind_of",
    "resolved_routes",
    "run_settings",
    "Loras",
    "loras_of",
    "priced_routes",
    "build_providers",
    "unavailable_routes",
    "Guarded",
]


@dataclass(frozen=True)
class ClipRequest:
    """What to render. `seconds` is the footage needed (trimmed head + finished clip)."""

    item_id: str
    prompt: str
    seconds: float
    width: int
    height: int
    model: str
    resolution: Resolution = "480p"
    negative_prompt: str = ""
    seed: int = 0
    image: Path | None = None
    remix_job_id: str | None = None  # the provider job whose video this request remixes
    extend_s: float = 0.0  # then extend the clip by this much, continuing from its last frame
    campaign: str = ""  # whose clip: a route may render campaigns differently (Wan profiles)
    lora: str | None = None  # a LoRA of the route to apply (Wan)
    pool: str | None = None  # the route's pool the plan placed it on (Wan: a GPU pool); None: the route picks


@dataclass
class Journal:
    """A request's provider jobs: those created earlier (resume them), and hooks for new ones.

    `on_job(job_id, note)` must persist the id before the provider waits on it, so a killed run
    resumes the job instead of paying for a second one. `reserved_usd` is what the call's
    reservation holds; a provider whose cost grows while it works (GPU time) asks
    `raise_to(usd, why, started)` to grow it before it spends more (None: granted, else why not:
    then it stops; `started`: it has begun spending, so only the caps, not the run's priority
    order, can refuse). `before_submit()` is called before every paid submit (the run's rate
    limit; it raises RunStopped once the run stops). `pause(seconds)` is how a provider waits
    between polls of a job (it raises RunStopped once the run stops: the job is recorded already,
    so the provider lets the exception through and the next run resumes it). `on_paid(cost_usd,
    job_id)` records the money the moment the provider reports the clip made and billed, before it
    downloads anything (a provider that does not call it is recorded as paid when `generate`
    returns).
    """

    job_ids: tuple[str, ...] = ()
    on_job: Callable[[str, str], None] = lambda job_id, note: None
    before_submit: Callable[[], None] = lambda: None
    on_paid: Callable[[float, str | None], None] = lambda cost_usd, job_id: None
    reserved_usd: float = float("inf")
    raise_to: Callable[..., str | None] = lambda usd, why, started=True: None
    pause: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class Clip:
    """A finished generation: a local MP4 and what it cost."""

    path: Path
    seconds: float
    cost_usd: float
    job_id: str | None = None
    detail: str = ""
    sandbox: bool = False
    fps: float | None = None  # the frame rate the route promises (Wan: its model's); QA holds the clip to it
    # what the clip measured of its route's price, for the next reservations (Wan: GPU seconds per
    # full shot, keyed model|resolution|profile); None for list-priced routes
    price_key: str | None = None
    gpu_s_per_shot: float | None = None


@dataclass(frozen=True)
class Capabilities:
    """What a route's provider can do: the one place the planner, the runs and `vidbatch routes`
    read it from. A provider whose abilities change as it learns its endpoint (the Videos API's
    extensions) replaces its `capabilities` (`dataclasses.replace`)."""

    max_clip_s: float  # the longest clip one call makes
    max_footage_s: float | None = None  # the longest footage of one item (clips joined or extended); None: no limit
    image_input: bool = False  # starts a clip from the item's image reference
    remix: bool = False  # remakes a clip it made with a new prompt
    extend: bool = False  # continues a clip it made from its last frame
    loras: tuple[str, ...] = field(default=())  # LoRA names an item may ask it for
    resolutions: tuple[str, ...] = ("480p", "720p")  # the catalog resolutions it makes


@runtime_checkable
class Provider(Protocol):
    id: str
    sandbox: bool  # it makes nothing that is paid for: the ledger marks its rows
    capabilities: Capabilities
    secrets: tuple[str, ...]  # its keys, for the run's redactor (logs, ledger, reports, Prefect)

    def unavailable(self) -> str | None: ...

    def generate(self, request: ClipRequest, workdir: Path, journal: Journal | None = None) -> Clip: ...


def contract_problems(provider: object) -> list[str]:
    """What `provider` lacks of the contract, in words (empty when it keeps it)."""
    problems = [
        f"`{name}` ({kind})"
        for name, kind, ok in (
            ("id", "a str", lambda v: isinstance(v, str)),
            ("sandbox", "a bool", lambda v: isinstance(v, bool)),
            ("capabilities", "a vidbatch.providers.Capabilities", lambda v: isinstance(v, Capabilities)),
            ("secrets", "a tuple of str", lambda v: isinstance(v, tuple) and all(isinstance(s, str) for s in v)),
            ("unavailable", "a method", callable),
            ("generate", "a method", callable),
        )
        if not ok(getattr(provider, name, None))
    ]
    return problems


def resolved_routes(
    policy: "Policy", measured: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, tuple[ProviderKind, Any]]:
    """Route name -> (its kind, its settings validated by that kind), in the policy's order;
    `measured` (route -> price key -> figure, from the ledger) prices the kinds that measure."""
    resolved = {}
    for route, (kind_name, settings) in policy.route_sections().items():
        kind = kind_of(route, kind_name)  # the settings were validated by this kind as the policy loaded
        figures = (measured or {}).get(route)
        if kind.measured is not None and figures:
            settings = kind.measured(settings, figures)
        resolved[route] = (kind, settings)
    return resolved


def run_settings(policy: "Policy") -> dict[str, RunSettings]:
    """Route name -> what a run reads of it, as its kind declares, in the policy's order."""
    return {route: kind.run_settings(settings) for route, (kind, settings) in resolved_routes(policy).items()}


class Loras(NamedTuple):
    """The LoRAs of a policy's routes, as their kinds declare them."""

    by_name: dict[str, Any]  # the names a catalog may use -> the kind's settings of each
    campaign_defaults: dict[str, str]  # campaign -> its default LoRA name
    identity: dict[str, Callable[[], str]]  # name -> what the LoRA adds to an item's fingerprint


def loras_of(policy: "Policy") -> Loras:
    """The policy's LoRAs: where two routes define one name, or one campaign's default, the first
    route listed wins."""
    found: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    identity: dict[str, Callable[[], str]] = {}
    for declared in reversed(list(run_settings(policy).values())):
        found.update(declared.loras)
        defaults.update(declared.campaign_loras)
        if declared.lora_identity is not None:
            identity.update(
                {name: functools.partial(declared.lora_identity, name, lora) for name, lora in declared.loras.items()}
            )
    return Loras(found, defaults, identity)


def priced_routes(
    policy: "Policy",
    providers: dict[str, "Provider"],
    unavailable: dict[str, str] | None = None,
    measured: Mapping[str, Mapping[str, Any]] | None = None,
) -> list["PricedRoute"]:
    """Every route of the policy as the planner sees it: its capabilities (from its provider),
    whether it can serve this run, and its kind's price expressions (with what the ledger
    `measured`, for kinds whose price is measured)."""
    from vidbatch.planner import PricedRoute
    from vidbatch.routing import RouteOffer

    unavailable = unavailable or {}
    priced = []
    for route, (kind, settings) in resolved_routes(policy, measured).items():
        provider = providers.get(route)
        why = unavailable.get(route) or (None if provider is not None else "left out of this run")
        can = provider.capabilities if provider is not None else Capabilities(max_clip_s=0.0)
        offer = RouteOffer(
            name=route,
            max_footage_s=can.max_footage_s,
            image_input=can.image_input,
            remix=can.remix,
            extend=can.extend,
            unavailable=why,
            loras=can.loras,
            resolutions=can.resolutions,
        )
        priced.append(PricedRoute(offer=offer, price=kind.price(settings, route)))
    return priced


def build_providers(policy: "Policy", overrides: Mapping[str, Factory | None] | None = None) -> dict[str, Provider]:
    """A run's providers: each route of the policy through its kind, unless `overrides` (what a
    caller in this process hands the run: vidbatch.in_process) binds a factory to that route's
    name, or None to leave the route out."""
    overrides = overrides or {}
    built = {
        route: checked(route, kind.name, kind.build(route, settings))
        for route, (kind, settings) in resolved_routes(policy).items()
        if route not in overrides
    }
    built.update(
        {
            route: checked(route, "bound in this process", make(policy))
            for route, make in overrides.items()
            if make is not None
        }
    )
    return built


def checked(route: str, kind: str, provider: Provider) -> Provider:
    """`provider`, once it keeps the contract; else a PolicyError naming the route, its kind and
    what is missing (a plugin written against an older contract stops here, not mid-run)."""
    from vidbatch.errors import PolicyError

    problems = contract_problems(provider)
    if problems:
        raise PolicyError(
            f"route {route!r} (kind {kind}): its provider has no {', no '.join(problems)}: "
            f"see the README, 'Adding a kind'"
        )
    return provider


def unavailable_routes(providers: Mapping[str, Provider]) -> dict[str, str]:
    """Route -> why it cannot serve this run (its provider's health check says so)."""
    return {route: why for route, p in providers.items() if (why := p.unavailable())}


class Guarded:
    """A provider whose every word passes the run's redactor: `unavailable()` reasons and the
    exceptions of `generate` (message redacted, chain cut, cost and job id kept). The run's
    providers are all built guarded (tasks/run_providers.py), whatever their kind."""

    def __init__(self, inner: Provider, redact):
        self._inner, self._redact = inner, redact

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def unavailable(self) -> str | None:
        return self._redact.optional(self._inner.unavailable())

    def generate(self, request: ClipRequest, workdir: Path, journal: Journal | None = None) -> Clip:
        try:
            return self._inner.generate(request, workdir, journal)
        except Exception as err:
            raise self._redact.error(err) from None
