"""What the kinds' settings models share: realism levels, resolutions, endpoint and name checks,
and what the ledger measured of a price. Pure pydantic.

Each kind owns its settings model (providers/wan_settings.py, providers/openai_video_settings.py,
providers/dashscope.py, providers/gemini_veo.py, or a plugin's module); the policy validates a
`[routes.NAME]` section with the model of the kind it names (vidbatch.kinds).
"""

from __future__ import annotations

from typing import Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, PositiveFloat, PositiveInt

from vidbatch.names import problem

__all__ = [
    "MeasuredPrice",
    "Realism",
    "REALISMS",
    "Resolution",
    "Strict",
    "endpoint_problem",
    "checked_endpoint",
    "check_names",
]

Realism = Literal["low", "medium", "high"]
REALISMS: tuple[Realism, ...] = get_args(Realism)  # the one list: catalogs, policies and routing read it
Resolution = Literal["480p", "720p"]


class Strict(BaseModel):
    # money and seconds are finite; an error never quotes a value (a URL may hold a password)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, hide_input_in_errors=True)


def endpoint_problem(url: str, key_env: str) -> str | None:
    """Why `url` cannot be a paid route's endpoint (None when it can): http(s) only, a host, a
    numeric port, and no credentials in it (the key goes in the environment variable `key_env`)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError as err:
        return f"is not a usable URL ({err})"
    if parts.scheme not in ("http", "https"):
        return f"must be an http:// or https:// URL, got scheme '{parts.scheme or 'none'}'"
    if not parts.hostname:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return (
            f"holds credentials (user:password@); remove them: the key goes in the environment variable "
            f"{key_env}, never in a URL or a policy file"
        )
    return None


def checked_endpoint(url: str | None, key_env: str) -> str | None:
    why = endpoint_problem(url, key_env) if url is not None else None
    if why:
        raise ValueError(why)
    return url


def check_names(kind: str, names) -> None:
    for name in names:
        why = problem(name)
        if why:
            raise ValueError(f"{kind} name '{name}' {why}")


class MeasuredPrice(Strict):
    """What the ledger measured of a price (vidbatch.measured): a high percentile of the newest
    settled clips of one price key, with a margin."""

    gpu_s_per_shot: PositiveFloat
    clips: PositiveInt
    percentile: float
    margin: float

    def source(self) -> str:
        return f"measured: p{self.percentile * 100:g} of {self.clips} clip(s) x {self.margin:g}"
