"""Item fingerprints that cover the files an item's output depends on (its LoRA). No Prefect here:
`vidbatch plan` calls it too, and must not pay for importing an orchestrator to plan."""

from __future__ import annotations

import polars as pl

from vidbatch.catalog import with_campaign_loras, with_fingerprints
from vidbatch.policy import Policy
from vidbatch.providers import loras_of

__all__ = ["fingerprinted"]


def fingerprinted(valid: pl.DataFrame, policy: Policy | None) -> pl.DataFrame:
    """Valid rows with their campaign's default LoRA filled in and a `fingerprint` that covers the
    LoRA's file: its content hash is read here, once per LoRA (an unreadable one is marked so, and
    its items fail with the reason when they render)."""
    if policy is None:
        return with_fingerprints(valid)
    loras = loras_of(policy)
    valid = with_campaign_loras(valid, loras.campaign_defaults)
    names = [name for name in valid["lora"].unique().to_list() if name is not None] if "lora" in valid.columns else []
    ids = {name: loras.identity[name]() for name in names if name in loras.identity}
    if ids:
        valid = valid.with_columns(
            pl.col("lora").replace_strict(ids, default=None, return_dtype=pl.String).alias("lora_id")
        )
    return with_fingerprints(valid)
