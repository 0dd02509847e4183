"""The `openai-videos` kind's settings: any endpoint speaking the OpenAI Videos API. Pure pydantic."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from vidbatch.route_settings import Realism, Strict, checked_endpoint

__all__ = ["OpenAIVideosSettings"]


class OpenAIVideosSettings(Strict):
    """An `openai-videos` route: any endpoint speaking the OpenAI Videos API (Sora, gateways,
    vLLM-Omni Wan servers), priced per second."""

    kind: Literal["openai-videos"] = "openai-videos"
    model_by_realism: dict[Realism, str] = {"low": "sora-2", "medium": "sora-2", "high": "sora-2-pro"}
    price_usd_per_s: dict[str, dict[str, PositiveFloat]]
    clip_seconds: list[PositiveInt] = [4, 8, 12]
    extension_seconds: list[PositiveInt] = [4, 8, 12, 16, 20]
    long_clips: Literal["extend", "shots"] = "extend"
    concurrency: PositiveInt = Field(4, description="jobs in flight at once, across every run sharing the ledger")
    submits_per_minute: PositiveFloat = Field(
        60.0, description="paid submits per minute, across every run sharing the ledger (a minute's burst)"
    )
    global_limits: bool = Field(
        True,
        description="share concurrency and submits_per_minute with every "
        "run on the same ledger (kept in the ledger); false: this run's own only",
    )
    base_url: str | None = Field(None, description="else the SDK's OPENAI_BASE_URL, else api.openai.com")
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        description="the environment variable that holds the key; the key itself never goes in a policy file",
    )
    max_retries: int = Field(2, ge=0, description="SDK retries of reads, and of submits refused with 429")
    request_timeout_s: PositiveFloat = 60.0
    poll_deadline_s: PositiveFloat = 1800.0

    @field_validator("base_url")
    @classmethod
    def _endpoint(cls, url: str | None) -> str | None:
        return checked_endpoint(url, "named by api_key_env (default OPENAI_API_KEY)")

    @model_validator(mode="after")
    def _models_priced(self) -> "OpenAIVideosSettings":
        for realism, model in self.model_by_realism.items():
            if model not in self.price_usd_per_s:
                raise ValueError(f"model '{model}' (realism {realism}) has no price in price_usd_per_s")
        return self
