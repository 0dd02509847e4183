"""The providers of one run: as the policy configures them, or with every paid route on a sandbox,
each guarded by the run's redactor (vidbatch.redact)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager

from vidbatch.policy import Policy
from vidbatch.in_process import Factory
from vidbatch.providers import Guarded, Provider, build_providers, resolved_routes
from vidbatch.redact import Redactor, secret_values

__all__ = ["run_providers"]


@contextmanager
def run_providers(
    policy: Policy,
    sandbox: bool,
    sandbox_latency_s: float = 2.0,
    sandbox_faults: dict | None = None,
    overrides: Mapping[str, Factory | None] | None = None,
) -> Iterator[tuple[dict[str, Provider], Redactor]]:
    """Build the run's providers and its redactor (the keys every route uses, from the environment
    variables its settings name and from the providers themselves). With `sandbox`, every route
    whose kind has a sandbox (the paid APIs) talks to a loopback server of its own, started for
    this run (no money spent; the ledger marks its rows sandbox); `sandbox_faults` (fields of
    vidbatch.sandbox.Faults) rehearses what goes wrong on the OpenAI-Videos routes (the other
    kinds' sandboxes take none from here). `overrides`: route -> the factory a caller in this
    process puts in its place, or None to leave it out (vidbatch.in_process)."""
    overrides = overrides or {}
    with ExitStack() as stack:
        bound = {}
        for route, (kind, settings) in resolved_routes(policy).items() if sandbox else ():
            if kind.sandbox is not None and route not in overrides:  # no loopback for a route put aside
                provider = kind.sandbox(route, settings, stack, sandbox_latency_s, dict(sandbox_faults or {}))
                bound[route] = lambda pol, made=provider: made
        built = build_providers(policy, {**bound, **overrides})
        redactor = Redactor(secret_values(policy.routes.values()) + [s for p in built.values() for s in p.secrets])
        yield {route: Guarded(p, redactor) for route, p in built.items()}, redactor
