"""The providers of one run: as the policy configures them, or with the closed route on a sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from vidbatch.policy import Policy
from vidbatch.providers import Provider, registry

__all__ = ["run_providers"]


@contextmanager
def run_providers(policy: Policy, sandbox: bool, sandbox_latency_s: float = 2.0,
                  sandbox_faults: dict | None = None) -> Iterator[dict[str, Provider]]:
    """Build the run's providers. With `sandbox`, the closed route talks to a loopback Videos API
    server started for this run (no money spent; the ledger marks its rows sandbox);
    `sandbox_faults` (fields of vidbatch.sandbox.Faults) rehearses what goes wrong."""
    if not sandbox:
        yield registry.build(policy)
        return
    from vidbatch.providers.openai_video import OpenAIVideoProvider, make_client
    from vidbatch.sandbox import Faults, VideosSandbox

    with VideosSandbox(latency_s=sandbox_latency_s, poll_after_ms=max(50, int(sandbox_latency_s * 100)),
                       faults=Faults(**(sandbox_faults or {}))) as box:
        def closed(pol: Policy) -> Provider:
            return OpenAIVideoProvider(pol.closed, client=make_client(pol.closed, base_url=box.base_url,
                                                                      api_key=box.api_key))

        with registry.bound({"sora": closed}):
            yield registry.build(policy)
