"""vidbatch: Parquet catalogs of video prompts -> clips, storyboards and a cost ledger.

The pure core (catalog, policy, pricing, planner, ledger, runs, report) imports no prefect, torch,
diffusers or boto3. Flows live in vidbatch.flows, tasks in vidbatch.tasks, providers in
vidbatch.providers.
"""

import importlib

# Exported names -> their module, imported on first use (PEP 562): `import vidbatch.route_settings`
# on a GPU box without polars (bench/wan_speed.py there) must not import the whole core.
_EXPORTS = {
    "validate_catalog": "vidbatch.catalog",
    "with_fingerprints": "vidbatch.catalog",
    "plan_catalog": "vidbatch.planner",
    "Policy": "vidbatch.policy",
    "default_policy": "vidbatch.policy",
    "load_policy": "vidbatch.policy",
    **{
        name: "vidbatch.errors"
        for name in (
            "VidbatchError",
            "CatalogError",
            "PolicyError",
            "BudgetExceeded",
            "StorageError",
            "MediaError",
            "ProviderError",
            "TransientProviderError",
            "ContentRejected",
            "ProviderUnavailable",
        )
    },
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vidbatch' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "validate_catalog",
    "with_fingerprints",
    "plan_catalog",
    "Policy",
    "default_policy",
    "load_policy",
    "VidbatchError",
    "CatalogError",
    "PolicyError",
    "BudgetExceeded",
    "StorageError",
    "MediaError",
    "ProviderError",
    "TransientProviderError",
    "ContentRejected",
    "ProviderUnavailable",
]
