"""vidbatch: Parquet catalogs of video prompts -> clips, storyboards and a cost ledger.

The pure core (catalog, policy, pricing, planner, ledger, runs, report) imports no prefect, torch,
diffusers or boto3. Flows live in vidbatch.flows, tasks in vidbatch.tasks, providers in
vidbatch.providers.
"""

from vidbatch.catalog import validate_catalog, with_fingerprints
from vidbatch.errors import (BudgetExceeded, CatalogError, ContentRejected, MediaError, PolicyError,
                             ProviderError, ProviderUnavailable, StorageError, TransientProviderError,
                             VidbatchError)
from vidbatch.planner import plan_catalog
from vidbatch.policy import Policy, default_policy, load_policy

__version__ = "0.1.0"

__all__ = [
    "validate_catalog", "with_fingerprints", "plan_catalog", "Policy", "default_policy", "load_policy",
    "VidbatchError", "CatalogError", "PolicyError", "BudgetExceeded", "StorageError", "MediaError",
    "ProviderError", "TransientProviderError", "ContentRejected", "ProviderUnavailable",
]
