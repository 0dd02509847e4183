"""Provider kinds: what a kind declares, and where the kinds are found. Pure (pydantic aside).

A kind is code and pluggable: a `ProviderKind` (its name, the pydantic model of a route's
settings, how to build a provider, its price expressions for the planner, what a run reads of its
routes) that a package announces in the `vidbatch.provider_kinds` entry-point group. vidbatch's
own kinds are announced the same way in its pyproject.toml, and known here by module name too.
The core knows no kind by name: the policy validates each `[routes.NAME]` section with the model
of the kind it names (`kind_of`), loaded by name, built-in or plugin alike.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from vidbatch.errors import PolicyError

__all__ = ["ProviderKind", "RunSettings", "provider_kinds", "kind_of", "KIND_GROUP", "BUILT_IN_KINDS"]

KIND_GROUP = "vidbatch.provider_kinds"


@dataclass(frozen=True)
class RunSettings:
    """What a run reads of a route's settings, declared by its kind (`ProviderKind.run_settings`);
    everything else in the settings is the kind's own business."""

    concurrency: int = 1  # clips of one run in flight on the route at once
    global_limits: bool = False  # hold `concurrency` and `submits_per_minute` across runs (Prefect limits)
    submits_per_minute: float = 60.0
    workers: str = "local"  # "pool": rendered in batches by the GPU work pool (flows/render_wan.py)
    deployment: str = ""  # the batch deployment a pool's workers serve
    pool_deployments: dict = field(default_factory=dict)  # a job's pool -> its deployment (one per GPU type)
    batch_size: int = 1
    batch_attempts: int = 1
    loras: dict = field(default_factory=dict)  # LoRA name -> the kind's settings of it
    campaign_loras: dict = field(default_factory=dict)  # campaign -> its default LoRA name
    lora_identity: Callable[[str, Any], str] | None = None  # (name, LoRA) -> what it adds to a fingerprint


@dataclass(frozen=True)
class ProviderKind:
    """A kind of provider: `settings` validates a route's section of the policy; `build(route name,
    settings)` makes the provider (lazily importing whatever heavy library it needs)."""

    name: str
    settings: type[BaseModel]
    build: Callable[[str, Any], Any]  # -> a vidbatch.providers.Provider
    description: str = ""
    describe: Callable[[Any], dict] = lambda settings: {}  # models, prices, endpoint: for `vidbatch routes`
    # price(settings, route) -> polars expressions adding {route}_model, {route}_size and {route}_cost
    # (null where the route cannot make an item) to a catalog: what the planner prices, pure.
    price: Callable[[Any, str], list] = lambda settings, route: []
    # sandbox(route, settings, stack, latency_s, faults) -> a provider on a loopback server that the
    # ExitStack stops (`--sandbox` runs: nothing paid); None: the kind spends no money to rehearse.
    sandbox: Callable[[str, Any, Any, float, dict], Any] | None = None
    # measured(settings, figures) -> the settings priced with what the ledger measured of this route
    # (price key -> vidbatch.route_settings.MeasuredPrice); None: the kind's prices are list prices.
    measured: Callable[[Any, Mapping[str, Any]], Any] | None = None
    # run_settings(settings) -> RunSettings: what a run reads of the route (slots, limits, where it runs, LoRAs)
    run_settings: Callable[[Any], RunSettings] = lambda settings: RunSettings()


# vidbatch's own kinds, as its pyproject.toml announces them. Known here too, so a run never depends
# on packaging metadata for them (a stale `*.egg-info` in a checkout hides entry points).
BUILT_IN_KINDS = {
    "wan-diffusers": "vidbatch.providers.wan:KIND",
    "openai-videos": "vidbatch.providers.openai_video:KIND",
    "dashscope": "vidbatch.providers.dashscope:KIND",
    "gemini-veo": "vidbatch.providers.gemini_veo:KIND",
}


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
        raise PolicyError(
            f"route {route!r} names kind {kind_name!r}, which no installed package provides "
            f"(installed: {', '.join(sorted(kinds))})"
        )
    return kinds[kind_name]


def _load(name: str, value: str, package: str) -> ProviderKind:
    module, _, attribute = value.partition(":")
    try:
        kind = getattr(importlib.import_module(module), attribute)
    except Exception as err:  # a broken plugin must say which one it is
        raise PolicyError(
            f"provider kind {name!r} ({value}, package {package}) does not load: {type(err).__name__}: {err}"
        ) from err
    if not isinstance(kind, ProviderKind) or kind.name != name:
        raise PolicyError(f"entry point {name!r} of package {package} is not a ProviderKind named {name!r}")
    return kind
