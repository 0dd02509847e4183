"""Policy files written before routes were configuration keep loading. Pure: dicts in, dicts out.

The old shape had two fixed sections and a routing rule written for them:

    [wan] ...        -> [routes.wan]  kind = "wan-diffusers"
    [closed] ...     -> [routes.sora] kind = "openai-videos"
    [routing] closed_for_realism, wan_max_coherent_s, fallback_to_wan_for_realism
                     -> prefer / long_after_s / long, the same decisions as orders

For a realism level the old rule sent to the closed route (or any item longer than
`wan_max_coherent_s`), the order is sora, then wan when `fallback_to_wan_for_realism` lists the
level; for the rest it is wan alone (the old rule never moved a Wan item to the closed route).
"""

from __future__ import annotations

from vidbatch.route_settings import REALISMS

__all__ = ["from_legacy", "LEGACY_ROUTING"]

LEGACY_ROUTING = {
    "closed_for_realism": ["high"],
    "wan_max_coherent_s": 5.0,
    "fallback_to_wan_for_realism": ["low", "medium"],
}


def from_legacy(data: dict) -> dict:
    """The policy in the routes shape; a file already in it comes back unchanged. A file mixing the
    two shapes is refused (pydantic reports the ValueError under the policy's name)."""
    legacy_sections = [name for name in ("wan", "closed") if name in data]
    routing = data.get("routing", {})
    legacy_rules = [key for key in LEGACY_ROUTING if key in routing]
    if not legacy_sections and not legacy_rules:
        return data
    if "routes" in data:
        old = ", ".join([f"[{name}]" for name in legacy_sections] + [f"routing.{key}" for key in legacy_rules])
        raise ValueError(
            f"this policy mixes [routes.*] with the old shape ({old}); move them into "
            f"[routes.NAME] sections and routing.prefer (see README, 'Policy file')"
        )
    if not legacy_sections:
        raise ValueError(
            f"routing.{legacy_rules[0]} belongs to the old policy shape, which also needs "
            f"[wan] and [closed]; write routing.prefer instead (see README, 'Policy file')"
        )
    converted = {key: value for key, value in data.items() if key not in ("wan", "closed", "routing")}
    converted["routes"] = {
        **({"wan": {"kind": "wan-diffusers", **data["wan"]}} if "wan" in data else {}),
        **({"sora": {"kind": "openai-videos", **data["closed"]}} if "closed" in data else {}),
    }
    rules = {**LEGACY_ROUTING, **{key: routing[key] for key in legacy_rules}}
    other = {key: value for key, value in routing.items() if key not in LEGACY_ROUTING}
    converted["routing"] = {**_orders(rules, set(converted["routes"])), **other}
    return converted


def _orders(rules: dict, routes: set[str]) -> dict:
    def keep(order: list[str]) -> list[str]:
        return [route for route in order if route in routes]

    closed_first = {
        r: keep(["sora"] + (["wan"] if r in rules["fallback_to_wan_for_realism"] else [])) for r in REALISMS
    }
    prefer = {r: closed_first[r] if r in rules["closed_for_realism"] else keep(["wan"]) for r in REALISMS}
    return {"prefer": prefer, "long_after_s": rules["wan_max_coherent_s"], "long": closed_first}
