"""Provider kinds are discovered through the `vidbatch.provider_kinds` entry points: vidbatch's own,
and a third-party package's, installed the way pip installs one (a dist-info folder on sys.path)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

LIST_KINDS = """
import json, sys
from vidbatch.providers import provider_kinds
try:
    kinds = provider_kinds()
except Exception as err:
    print(json.dumps({"error": f"{type(err).__name__}: {err}"}))
else:
    print(json.dumps({"kinds": {name: kind.settings.__name__ for name, kind in kinds.items()},
                      "heavy": sorted(m for m in ("torch", "diffusers", "openai", "google.genai")
                                      if m in sys.modules)}))
"""


def kinds_seen(extra_path: Path | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(extra_path)} if extra_path else dict(os.environ)
    done = subprocess.run([sys.executable, "-c", LIST_KINDS], capture_output=True, text=True, env=env,
                          cwd=Path(extra_path or REPO).parent, check=True)
    return json.loads(done.stdout)


def plugin(folder: Path, module: str, body: str, target: str) -> Path:
    """A package `acme-video` as pip would leave it: its module and a dist-info with entry points."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(body)
    info = folder / "acme_video-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-video\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[vidbatch.provider_kinds]\nacme-video = {target}\n")
    return folder


def test_vidbatchs_own_kinds_load_without_heavy_libraries_and_are_announced_as_entry_points():
    from importlib.metadata import entry_points

    from vidbatch.providers import BUILT_IN_KINDS, KIND_GROUP

    seen = kinds_seen()
    ours = {"wan-diffusers": "WanRoute", "openai-videos": "OpenAIVideosSettings", "dashscope": "DashScopeSettings",
            "gemini-veo": "VeoSettings"}
    assert {name: seen["kinds"].get(name) for name in ours} == ours  # and any kind a plugin installed here
    assert seen["heavy"] == []  # torch, diffusers, openai and google-genai load when a provider works, not before
    announced = {p.name: p.value for p in entry_points(group=KIND_GROUP) if p.dist and p.dist.name == "vidbatch"}
    assert announced == BUILT_IN_KINDS  # pyproject.toml and the code agree


def test_a_third_party_package_adds_a_kind_without_touching_vidbatch(tmp_path):
    body = ("from pydantic import BaseModel\nfrom vidbatch.providers import ProviderKind\n"
            "class AcmeSettings(BaseModel):\n    endpoint: str = 'https://acme.example'\n"
            "KIND = ProviderKind(name='acme-video', settings=AcmeSettings, build=lambda route, s: None)\n")
    seen = kinds_seen(plugin(tmp_path / "site", "acme_kind", body, "acme_kind:KIND"))
    assert seen["kinds"]["acme-video"] == "AcmeSettings" and "dashscope" in seen["kinds"]


def test_a_broken_plugin_is_named_not_ignored(tmp_path):
    seen = kinds_seen(plugin(tmp_path / "site", "acme_kind", "KIND = None\n", "acme_kind:MISSING"))
    assert seen["error"].startswith("PolicyError: provider kind 'acme-video' (acme_kind:MISSING, package acme-video)")
    seen = kinds_seen(plugin(tmp_path / "other", "acme_kind", "KIND = None\n", "acme_kind:KIND"))
    assert seen["error"] == ("PolicyError: entry point 'acme-video' of package acme-video is not a ProviderKind "
                             "named 'acme-video'")


def test_every_kind_prices_a_catalog_for_the_planner_under_its_routes_name():
    from tests.conftest import catalog
    from vidbatch.catalog import validate_catalog
    from vidbatch.policy import default_policy
    from vidbatch.providers import provider_kinds
    from vidbatch.providers.dashscope import DashScopeSettings

    policy = default_policy()
    settings = {"wan-diffusers": policy.routes["wan"], "openai-videos": policy.routes["gateway"],
                "dashscope": DashScopeSettings()}
    valid, _ = validate_catalog(catalog([{"duration_s": 4.0}, {"duration_s": 4.0, "aspect": "9:16"},
                                         {"duration_s": 30.0, "realism": "high"}]))
    for name, kind in provider_kinds().items():
        if name not in settings:
            continue  # a third-party kind installed here: not ours to price
        priced = valid.with_columns(kind.price(settings[name], "r1"))
        assert {"r1_model", "r1_size", "r1_cost"} <= set(priced.columns), name
        assert priced["r1_cost"][0] > 0 and priced["r1_size"][1] in ("480x832", "720x1280"), name
    assert valid.with_columns(provider_kinds()["dashscope"].price(DashScopeSettings(), "r1"))["r1_cost"][2] is None


PLUGIN_ROUTE = """
import json, sys
from vidbatch.errors import PolicyError
from vidbatch.policy import load_policy
from vidbatch.providers import build_providers, priced_routes
try:
    policy = load_policy(sys.argv[1])  # each section validated by its kind, as the policy loads
    providers = build_providers(policy)
except PolicyError as err:
    print(json.dumps({"error": str(err)}))
else:
    routes = priced_routes(policy, providers)
    print(json.dumps({"built": {name: type(p).__name__ for name, p in providers.items()},
                      "priced": [r.name for r in routes], "endpoint": providers["acme"].endpoint}))
"""


def test_a_plugin_kinds_route_is_validated_by_its_own_settings_and_priced_by_its_kind(tmp_path):
    from tests.conftest import DEMO_POLICY

    body = ("import polars as pl\nfrom pydantic import BaseModel, ConfigDict\n"
            "from vidbatch.providers import Capabilities, ProviderKind\n"
            "class AcmeSettings(BaseModel):\n    model_config = ConfigDict(extra='forbid')\n"
            "    endpoint: str\n    usd_per_s: float = 0.05\n"
            "class Acme:\n    def __init__(self, s): self.endpoint = s.endpoint\n"
            "    id, sandbox, secrets, capabilities = 'acme', False, (), Capabilities(max_clip_s=5.0)\n"
            "    def unavailable(self): return None\n    def generate(self, request, workdir, journal=None): ...\n"
            "def price(s, route):\n"
            "    return [pl.lit('acme-1').alias(f'{route}_model'), pl.lit('832x480').alias(f'{route}_size'),\n"
            "            (pl.col('duration_s') * s.usd_per_s).alias(f'{route}_cost')]\n"
            "KIND = ProviderKind(name='acme-video', settings=AcmeSettings, build=lambda route, s: Acme(s),\n"
            "                    price=price)\n")
    site = plugin(tmp_path / "site", "acme_kind", body, "acme_kind:KIND")
    env = {**os.environ, "PYTHONPATH": str(site)}

    def run(section: str) -> dict:
        path = tmp_path / "policy.toml"
        path.write_text(DEMO_POLICY.read_text() + section)
        done = subprocess.run([sys.executable, "-c", PLUGIN_ROUTE, str(path)], capture_output=True, text=True,
                              env=env, check=True)
        return json.loads(done.stdout)

    good = run('\n[routes.acme]\nkind = "acme-video"\nendpoint = "https://acme.example"\n')
    assert good == {"built": {"wan": "WanProvider", "sora": "OpenAIVideoProvider", "acme": "Acme"},
                    "priced": ["wan", "sora", "acme"], "endpoint": "https://acme.example"}
    bad = run('\n[routes.acme]\nkind = "acme-video"\nendpont = "https://acme.example"\n')
    assert bad["error"].endswith("invalid policy\n  routes.acme.endpoint: Field required\n"
                                 "  routes.acme.endpont: Extra inputs are not permitted")  # one path for every kind
    unknown = run('\n[routes.acme]\nkind = "acme-vidoe"\n')
    assert unknown["error"].startswith("route 'acme' names kind 'acme-vidoe', which no installed package provides")
