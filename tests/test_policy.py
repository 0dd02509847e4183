"""The policy file: routes as named sections over provider kinds, preferences, the old shape."""

import pytest

from tests.conftest import DEMO_POLICY, REPO, SHIPPED_DEMO_POLICY, videos_api_policy
from vidbatch.errors import PolicyError
from vidbatch.policy import load_policy
from vidbatch.providers.dashscope import DashScopeSettings
from vidbatch.providers.openai_video_settings import OpenAIVideosSettings
from vidbatch.providers.wan_settings import WanRoute

LEGACY = REPO / "tests" / "legacy-policy.toml"


def write(tmp_path, text: str) -> str:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return str(path)


def test_routes_are_named_sections_of_any_kind_in_the_order_written():
    policy = load_policy(SHIPPED_DEMO_POLICY)
    assert {name: kind for name, (kind, _) in policy.route_sections().items()} == {
        "wan": "wan-diffusers", "wan-hosted": "dashscope", "sora": "openai-videos", "veo": "gemini-veo"}
    assert isinstance(policy.route_settings("wan-hosted"), DashScopeSettings)
    from vidbatch.providers import resolved_routes
    from vidbatch.providers.gemini_veo import VeoSettings

    assert isinstance(resolved_routes(policy)["veo"][1], VeoSettings)  # a kind's own settings, validated by it
    prefs = policy.preferences()
    assert prefs.by_realism["medium"] == ["wan-hosted", "wan", "sora"] and prefs.long_after_s == 5.0
    assert prefs.long["high"] == ["sora", "veo"] and prefs.by_realism["high"] == ["sora", "veo", "wan-hosted"]


def test_two_routes_of_one_kind_and_default_orders(tmp_path):
    text = DEMO_POLICY.read_text().split("[routing]")[0]  # caps only
    sora = videos_api_policy().routes["sora"]
    prices = ('"sora-2" = { "1280x720" = 0.10, "720x1280" = 0.10 }\n'
              '"sora-2-pro" = { "1280x720" = 0.30, "720x1280" = 0.30 }\n')
    for name in ("gateway-a", "gateway-b"):
        text += f'[routes.{name}]\nkind = "openai-videos"\nbase_url = "https://{name}.example/v1"\n' \
                f'[routes.{name}.price_usd_per_s]\n{prices}'
    policy = load_policy(write(tmp_path, text))
    assert [type(s) for s in policy.routes.values()] == [OpenAIVideosSettings, OpenAIVideosSettings]
    assert policy.routes["gateway-b"].base_url == "https://gateway-b.example/v1" != sora.base_url
    # without [routing], every realism level may use every route, in the order they are written
    assert policy.preferences().by_realism == {r: ["gateway-a", "gateway-b"] for r in ("low", "medium", "high")}


def test_the_old_shape_loads_as_routes_wan_and_sora_with_the_same_decisions():
    old, new = load_policy(LEGACY), load_policy(DEMO_POLICY)
    assert isinstance(old.routes["wan"], WanRoute) and isinstance(old.routes["sora"], OpenAIVideosSettings)
    assert old.routes == new.routes and old.preferences() == new.preferences()
    assert old.preferences().by_realism == {"low": ["wan"], "medium": ["wan"], "high": ["sora"]}
    assert old.preferences().long == {"low": ["sora", "wan"], "medium": ["sora", "wan"], "high": ["sora"]}


def test_the_old_routing_rule_converts_field_by_field(tmp_path):
    text = LEGACY.read_text().replace('fallback_to_wan_for_realism = ["low", "medium"]',
                                      'fallback_to_wan_for_realism = ["high"]')
    text = text.replace('closed_for_realism = ["high"]', 'closed_for_realism = ["medium", "high"]')
    prefs = load_policy(write(tmp_path, text)).preferences()
    assert prefs.by_realism == {"low": ["wan"], "medium": ["sora"], "high": ["sora", "wan"]}
    assert prefs.long == {"low": ["sora"], "medium": ["sora"], "high": ["sora", "wan"]}


@pytest.mark.parametrize("change, message", [
    (lambda t: t + '\n[closed]\nconcurrency = 2\n', "mixes [routes.*] with the old shape ([closed])"),
    (lambda t: t.replace('long_after_s = 5.0', 'wan_max_coherent_s = 5.0'),
     "mixes [routes.*] with the old shape (routing.wan_max_coherent_s)"),
    (lambda t: t.replace('high = ["sora"] }\nlong_after', 'high = ["sora", "runway"] }\nlong_after'),
     "routing.prefer.high names 'runway', which no [routes.NAME] section defines (routes: wan, sora)"),
    (lambda t: t.replace('high = ["sora"] }\nlong_after', 'high = ["sora", "sora"] }\nlong_after'),
     "routing.prefer.high names a route twice"),
    (lambda t: t.replace('"sora-2-pro" = { "1280x720" = 0.30, "720x1280" = 0.30 }', ''),
     "routes.sora: model 'sora-2-pro' (realism high) has no price"),
    (lambda t: t.replace('max_shot_frames = 81', 'max_shot_frames = 80'), "routes.wan: max_shot_frames"),
    (lambda t: t.replace('kind = "openai-videos"', 'kind = "openai-videos"\nconcurrency = 0'),
     "routes.sora.concurrency: Input should be greater than 0"),
])
def test_a_bad_policy_names_the_field_at_fault(tmp_path, change, message):
    with pytest.raises(PolicyError) as err:
        load_policy(write(tmp_path, change(DEMO_POLICY.read_text())))
    assert message in str(err.value)


def test_a_policy_needs_a_route(tmp_path):
    with pytest.raises(PolicyError, match="routes: Field required"):
        load_policy(write(tmp_path, DEMO_POLICY.read_text().split("[routing]")[0]))
