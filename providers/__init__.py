"""The provider contract and the registry that maps route ids to providers.

A provider has an id, capability attributes, a pure `estimate_cost(request)`, `unavailable()`
(None when it can serve, else why not), and one verb, `generate(request, workdir, journal) -> Clip`.
The journal links a paid call to the ledger: job ids created earlier for this request (a provider
resumes them and never creates them again), and a hook that records each new job id at once.
The registry builds a run's providers: every route of the policy (`Policy.route_sections`) through
its kind; tests, benches and the sandbox bind factories to route names with `bound`.

Provider *kinds* are code and pluggable: a kind is a `ProviderKind` (its name, the pydantic model
of a route's settings, and how to build a provider from them) that a package announces in the
`vidbatch.provider_kinds` entry-point group, as pluggy/llm/Prefect plugins do. vidbatch's own
(`wan-diffusers`, `openai-videos`, `dashscope`) are announced the same way in its pyproject.toml.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import ValidationError

from vidbatch.errors import PolicyError

if TYPE_CHECKING:  # the contract imports no polars: a GPU box's bench imports the Wan levers alone
    from vidbatch.planner import PricedRoute
    from vidbatch.policy import Policy

__all__ = ["ClipRequest", "Clip", "Journal", "Provider", "ProviderKind", "provider_kinds", "KIND_GROUP",
           "BUILT_IN_KINDS", "kind_of", "settings_of", "resolved_routes", "priced_routes", "Registry", "registry",
           "Guarded"]

KIND_GROUP = "vidbatch.provider_kinds"


@dataclass(frozen=True)
class ClipRequest:
    """What to render. `seconds` is the footage needed (trimmed head + finished clip)."""

    item_id: str
    prompt: str
    seconds: float
    width: int
    height: int
    model: str
    resolution: str = "480p"
    negative_prompt: str = ""
    seed: int = 0
    image: Path | None = None
    remix_job_id: str | None = None  # the provider job whose video this request remixes
    extend_s: float = 0.0            # then extend the clip by this much, continuing from its last frame
    campaign: str = ""               # whose clip: a route may render campaigns differently (Wan profiles)
    lora: str | None = None          # a LoRA of the route to apply (Wan)


@dataclass
class Journal:
    """A request's provider jobs: those created earlier (resume them), and hooks for new ones.

    `on_job(job_id, note)` must persist the id before the provider waits on it, so a killed run
    resumes the job instead of paying for a second one. `reserved_usd` is what the call's
    reservation holds; a provider whose cost grows while it works (GPU time) asks
    `raise_to(usd, why, started)` to grow it before it spends more (None: granted, else why not: then
    it stops; `started`: it has begun spending, so only the caps, not the run's priority order, can refuse). `before_submit()` is called before every
    paid submit (the run's rate limit). `on_paid(cost_usd, job_id)` records the money the moment the
    provider reports the clip made and billed, before it downloads anything (a provider that does
    not call it is recorded as paid when `generate` returns).
    """

    job_ids: tuple[str, ...] = ()
    on_job: Callable[[str, str], None] = lambda job_id, note: None
    before_submit: Callable[[], None] = lambda: None
    on_paid: Callable[[float, str | None], None] = lambda cost_usd, job_id: None
    reserved_usd: float = float("inf")
    raise_to: Callable[..., str | None] = lambda usd, why, started=True: None


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


@runtime_checkable
class Provider(Protocol):
    id: str
    sandbox: bool  # it makes nothing that is paid for: the ledger marks its rows
    max_seconds: float
    image_input: bool
    remix: bool
    extend: bool

    def unavailable(self) -> str | None: ...

    def estimate_cost(self, request: ClipRequest) -> float: ...

    def generate(self, request: ClipRequest, workdir: Path, journal: Journal | None = None) -> Clip: ...


@dataclass(frozen=True)
class ProviderKind:
    """A kind of provider: `settings` validates a route's section of the policy; `build(route name,
    settings)` makes the provider (lazily importing whatever heavy library it needs)."""

    name: str
    settings: type
    build: Callable[[str, Any], "Provider"]
    description: str = ""
    describe: Callable[[Any], dict] = lambda settings: {}  # models, prices, endpoint: for `vidbatch routes`
    # price(settings, route) -> polars expressions adding {route}_model, {route}_size and {route}_cost
    # (null where the route cannot make an item) to a catalog: what the planner prices, pure.
    price: Callable[[Any, str], list] = lambda settings, route: []
    # sandbox(route, settings, stack, latency_s, faults) -> a provider on a loopback server that the
    # ExitStack stops (`--sandbox` runs: nothing paid); None: the kind spends no money to rehearse.
    sandbox: Callable[[str, Any, Any, float, dict], "Provider"] | None = None
    # measured(settings, figures) -> the settings priced with what the ledger measured of this route
    # (price key -> vidbatch.route_settings.MeasuredPrice); None: the kind's prices are list prices.
    measured: Callable[[Any, dict], Any] | None = None


# vidbatch's own kinds, as its pyproject.toml announces them. Known here too, so a run never depends
# on packaging metadata for them (a stale `*.egg-info` in a checkout hides entry points).
BUILT_IN_KINDS = {"wan-diffusers": "vidbatch.providers.wan:KIND",
                  "openai-videos": "vidbatch.providers.openai_video:KIND",
                  "dashscope": "vidbatch.providers.dashscope:KIND",
                  "gemini-veo": "vidbatch.providers.gemini_veo:KIND"}


@functools.cache
def provider_kinds() -> dict[str, ProviderKind]:
    """Every kind, by name: vidbatch's own, and those of installed packages (the
    `vidbatch.provider_kinds` entry points). A kind that fails to load, or a package that claims
    a name another kind has, stops here with the package named."""
    found: dict[str, ProviderKind] = {name: _load(name, value, "vidbatch") for name, value in BUILT_IN_KINDS.items()}
    for point in entry_points(group=KIND_GROUP):
        package = point.dist.name if point.dist else "?"
        if BUILT_IN_KINDS.get(point.name) == point.value:
            continue  # vidbatch's own, announced in its metadata
        if point.name in found:
            raise PolicyError(f"package {package} defines the provider kind {point.name!r}, which another kind has")
        found[point.name] = _load(point.name, point.value, package)
    return found


def kind_of(route: str, kind_name: str) -> ProviderKind:
    """The kind a route names, or a PolicyError saying which kinds are installed."""
    kinds = provider_kinds()
    if kind_name not in kinds:
        raise PolicyError(f"route {route!r} names kind {kind_name!r}, which no installed package provides "
                          f"(installed: {', '.join(sorted(kinds))})")
    return kinds[kind_name]


def _load(name: str, value: str, package: str) -> ProviderKind:
    module, _, attribute = value.partition(":")
    try:
        kind = getattr(importlib.import_module(module), attribute)
    except Exception as err:  # a broken plugin must say which one it is
        raise PolicyError(f"provider kind {name!r} ({value}, package {package}) does not load: "
                          f"{type(err).__name__}: {err}") from err
    if not isinstance(kind, ProviderKind) or kind.name != name:
        raise PolicyError(f"entry point {name!r} of package {package} is not a ProviderKind named {name!r}")
    return kind


Factory = Callable[["Policy"], Provider]


def settings_of(route: str, kind: ProviderKind, settings: Any) -> Any:
    """A route's settings as its kind's model: vidbatch's own kinds are validated by the policy;
    a plugin kind's raw section (`PluginRoute`) is validated here, errors named `routes.NAME.field`."""
    from vidbatch.policy import PluginRoute, error_lines

    if not isinstance(settings, PluginRoute):
        return settings
    try:
        return kind.settings.model_validate(settings.model_extra or {})
    except ValidationError as err:
        raise PolicyError(f"route {route!r} (kind {kind.name}): invalid settings\n"
                          + error_lines(err, ("routes", route))) from err


def resolved_routes(policy: "Policy", measured: dict | None = None) -> dict[str, tuple[ProviderKind, Any]]:
    """Route name -> (its kind, its settings validated by that kind), in the policy's order;
    `measured` (route -> price key -> figure, from the ledger) prices the kinds that measure."""
    resolved = {}
    for route, (kind_name, settings) in policy.route_sections().items():
        kind = kind_of(route, kind_name)
        settings = settings_of(route, kind, settings)
        if kind.measured is not None and (measured or {}).get(route):
            settings = kind.measured(settings, measured[route])
        resolved[route] = (kind, settings)
    return resolved


def priced_routes(policy: "Policy", providers: dict[str, "Provider"],
                  unavailable: dict[str, str] | None = None, measured: dict | None = None) -> list["PricedRoute"]:
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
        offer = RouteOffer(name=route, max_seconds=getattr(provider, "max_footage_s", None),
                           image_input=bool(getattr(provider, "image_input", False)),
                           remix=bool(getattr(provider, "remix", False)),
                           extend=bool(getattr(provider, "extend", False)), unavailable=why,
                           loras=tuple(getattr(provider, "loras", ())))
        priced.append(PricedRoute(offer=offer, price=kind.price(settings, route)))
    return priced


@dataclass
class Registry:
    """Builds a run's providers: each route of the policy through its kind, unless an override
    (tests, benches, the sandbox) binds a factory to that route name, or None to leave it out."""

    factories: dict[str, Factory | None] = field(default_factory=dict)

    def register(self, route: str, factory: Factory) -> None:
        self.factories[route] = factory

    def build(self, policy: "Policy") -> dict[str, Provider]:
        built = {route: kind.build(route, settings) for route, (kind, settings) in resolved_routes(policy).items()
                 if route not in self.factories}
        built.update({route: make(policy) for route, make in self.factories.items() if make is not None})
        return built

    @staticmethod
    def unavailable(providers: dict[str, Provider]) -> dict[str, str]:
        """Route -> why it cannot serve this run (its provider's health check says so)."""
        return {route: why for route, p in providers.items() if (why := p.unavailable())}

    @contextlib.contextmanager
    def bound(self, overrides: dict[str, Factory | None]) -> Iterator[None]:
        """Temporarily bind factories to route names (None: the route is left out of the run)."""
        saved = dict(self.factories)
        self.factories.update(overrides)
        try:
            yield
        finally:
            self.factories.clear()
            self.factories.update(saved)


registry = Registry()


class Guarded:
    """A provider whose every word passes the run's redactor: `unavailable()` reasons and the
    exceptions of `generate` (message redacted, chain cut, cost and job id kept). The run's
    providers are all built guarded (tasks/routes.py), whatever their kind."""

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
