"""The fit rule (providers/wan_fit.py) over the default policy's real models: a clip is planned
only where its model fits a pool's card with some memory profile, on the cheapest such pool, and
the plan says which; a model that fits nowhere is refused at plan time with the reason."""

import re

import pytest
from pydantic import ValidationError

from tests.conftest import catalog
from vidbatch.catalog import validate_catalog
from vidbatch.planner import PricedRoute, plan_catalog
from vidbatch.policy import load_policy
from vidbatch.providers.wan_fit import fit_table, place
from vidbatch.providers.wan_pricing import wan_estimate_usd, wan_options
from vidbatch.providers.wan_settings import WanRoute
from vidbatch.route_settings import MeasuredPrice
from vidbatch.routing import RouteOffer

POLICY = load_policy(None)
WAN = POLICY.routes["wan"]
RTX4090 = {"gpu": "RTX 4090", "memory_gib": 24, "usd_per_hour": 0.45, "time_x": 4.5}


def with_pools(pools: dict, **changes) -> WanRoute:
    base = WAN.model_dump()
    return WanRoute.model_validate({**base, "workers": "pool", "pools": pools, **changes})


TWO = with_pools({"rtx4090": RTX4090, "h100": WAN.pools["h100"].model_dump()})


def test_the_cheapest_pool_that_fits_each_model_with_the_fastest_profile_that_fits_there():
    small = place(TWO, "wan2.1-t2v-1.3b", "480p", "stock")
    assert (small.pool, small.memory, small.need_gib) == ("rtx4090", "whole", 19.0)  # 19 + 1.5 headroom <= 24
    assert small.usd_per_shot == pytest.approx(120.0 * 4.5 * 0.45 / 3600)  # $0.0675, not the H100's $0.0833
    big = place(TWO, "wan2.1-t2v-14b", "720p", "stock")
    assert (big.pool, big.memory) == ("h100", "whole")  # group-offload fits the 4090 but costs more
    on_4090 = place(TWO, "wan2.1-t2v-14b", "720p", "stock", pool="rtx4090")
    assert (on_4090.memory, on_4090.need_gib) == ("group-offload", 18.0)  # fp8's 30 GiB does not fit
    assert on_4090.usd_per_shot > big.usd_per_shot
    assert "est. 5.9x whole's GPU time" in on_4090.note() and "(stated, not measured)" in on_4090.note()
    assert big.price_key == "wan2.1-t2v-14b|720p|stock|H100|whole"


def test_measured_prices_count_per_gpu_type_and_can_move_a_model_to_another_card():
    key = "wan2.1-t2v-1.3b|480p|stock|RTX 4090|whole"
    slow = TWO.with_measured({key: MeasuredPrice(gpu_s_per_shot=900.0, clips=20, percentile=0.9, margin=1.25)})
    moved = place(slow, "wan2.1-t2v-1.3b", "480p", "stock")
    assert moved.pool == "h100"  # the 4090 measured 900 s a shot: $0.1125 against the H100's $0.0833
    assert place(slow, "wan2.1-t2v-1.3b", "480p", "stock", pool="rtx4090").source.startswith("measured: p90 of 20")


def test_a_model_that_fits_no_pool_is_refused_at_plan_time_with_the_reason():
    tiny_card = with_pools({"l4": {**RTX4090, "gpu": "T4", "memory_gib": 16}}, workers="local")
    refused = place(tiny_card, "wan2.1-t2v-14b", "720p", "stock")
    assert refused == (
        "wan2.1-t2v-14b 720p fits no GPU pool: the least it needs is 17 GiB (group-offload-fp8); the largest card "
        "leaves 14.5 GiB after headroom (l4 T4, 16 GiB, $0.45/h)"
    )
    assert wan_estimate_usd(tiny_card, "wan2.1-t2v-14b", "720p", 5.0) == float("inf")
    valid, _ = validate_catalog(catalog([{"resolution": "720p", "realism": "low"},
                                         {"resolution": "480p", "realism": "low"}]))
    offer = RouteOffer(name="wan", image_input=True, extend=True)
    plan = plan_catalog(valid, POLICY, [PricedRoute(offer, wan_options(tiny_card, "wan"))]).sort("row")
    assert plan["status"].to_list() == ["deferred", "planned"]  # refused before anything is spent
    assert "wan cannot make this item: wan2.1-t2v-14b 720p fits no GPU pool" in plan["reason"][0]
    assert "on pool l4 (T4): encoder-cpu, needs 8.5 GiB" in plan["reason"][1]  # the fastest that fits
    assert plan["pool"].to_list() == [None, "l4"]


def test_a_plan_across_two_pools_places_each_item_and_prices_it_on_that_card():
    valid, _ = validate_catalog(catalog([{"resolution": "480p", "realism": "low", "duration_s": 4.0},
                                         {"resolution": "720p", "realism": "low", "duration_s": 4.0},
                                         {"resolution": "480p", "realism": "low", "duration_s": 2.0,
                                          "extend_s": 2.0}]))
    offer = RouteOffer(name="wan", image_input=True, extend=True)
    plan = plan_catalog(valid, POLICY, [PricedRoute(offer, wan_options(TWO, "wan"))]).sort("row")
    assert plan["pool"].to_list() == ["rtx4090", "h100", "rtx4090"]
    assert "on pool rtx4090 (RTX 4090): whole, needs 19 GiB" in plan["reason"][0]
    for row, (model, res, seconds, extend) in enumerate([("wan2.1-t2v-1.3b", "480p", 4.0, 0.0),
                                                          ("wan2.1-t2v-14b", "720p", 4.0, 0.0),
                                                          ("wan2.1-t2v-1.3b", "480p", 2.0, 2.0)]):
        assert plan["est_cost_usd"][row] == pytest.approx(wan_estimate_usd(TWO, model, res, seconds, extend))
    # the extension's i2v model renders on the same card: group-offload on the 4090 (whole needs 47 GiB)
    extension = place(TWO, "wan2.1-i2v-14b-480p", "480p", "stock", pool="rtx4090")
    assert extension.memory == "group-offload"


def test_fit_table_and_pool_settings_are_checked():
    rows = {(r["model"], r["resolution"], r["pool"]): r for r in fit_table(TWO)}
    assert rows[("wan2.1-t2v-14b", "720p", "rtx4090")]["memory"] == "group-offload"
    assert rows[("wan2.1-t2v-14b", "720p", "h100")]["chosen"]
    assert rows[("wan2.1-t2v-1.3b", "480p", "rtx4090")]["chosen"]
    with pytest.raises(ValidationError, match="state either gpu_usd_per_hour .* or pools"):
        with_pools({"rtx4090": RTX4090}, gpu_usd_per_hour=1.0)
    with pytest.raises(ValidationError, match="workers = 'local' renders on this machine's GPU, but 2 pools"):
        with_pools({"a": RTX4090, "b": RTX4090}, workers="local")
    models = WAN.model_dump()["models"]
    models["wan2.1-t2v-1.3b"]["memory"]["swap"] = {"gib": {"480p": 1.0}}
    with pytest.raises(ValidationError, match="memory names memory profile 'swap', which memory_profiles"):
        with_pools({"a": RTX4090}, workers="local", models=models)
    assert TWO.deployment_of("rtx4090") == "render-wan/rtx4090"


def two_pool_policy(tmp_path):
    """The default policy with a 24 GB pool beside its H100 one, rendered by GPU workers."""
    from importlib.resources import files

    text = (files("vidbatch") / "policy_default.toml").read_text()
    text = text.replace('kind = "wan-diffusers"\n', 'kind = "wan-diffusers"\nworkers = "pool"\n', 1)
    text = re.sub(r'source = "Wan-AI/[^"]*"', 'source = "testsrc"', text)  # no weights here: a rehearsal
    text = text.replace("[routes.wan.pools.h100]\n", '[routes.wan.pools.rtx4090]\ngpu = "RTX 4090"\nmemory_gib = 24\n'
                        'usd_per_hour = 0.45\ntime_x = 4.5\n\n[routes.wan.pools.h100]\n', 1)
    path = tmp_path / "two-pools.toml"
    path.write_text(text)
    return path


def test_routes_prints_the_fit_table_and_plan_the_pool_of_each_item(tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO

    policy = two_pool_policy(tmp_path)
    routes = subprocess.run([sys.executable, "-m", "vidbatch.cli", "routes", "--policy", str(policy), "--no-check"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert routes.returncode == 0, routes.stderr
    assert "wan2.1-t2v-14b 720p: rtx4090 group-offload 18 GiB $1.3440 · h100 whole 60 GiB $1.2764 *" in routes.stdout
    assert "wan2.1-t2v-14b 480p: rtx4090 fp8 22 GiB $0.3645 * · h100 whole 45 GiB $0.4167" in routes.stdout
    assert "wan2.1-t2v-1.3b 480p: rtx4090 whole 19 GiB $0.0675 * · h100 whole 19 GiB $0.0833" in routes.stdout
    plan = subprocess.run([sys.executable, "-m", "vidbatch.cli", "plan", str(REPO / "catalogs" / "sample.parquet"),
                           "--policy", str(policy), "--json"], capture_output=True, text=True, cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    import json

    rows = [json.loads(line) for line in plan.stdout.splitlines()]
    wan = [r for r in rows if r.get("route") == "wan" and r.get("status") == "planned"]
    assert wan and all(r["pool"] in ("rtx4090", "h100") for r in wan)
    assert all("on pool " + r["pool"] in r["reason"] for r in wan)


@pytest.mark.parametrize("name", ["../up", "a/b", "nul\x00", ""])
def test_a_hostile_pool_name_is_refused_at_policy_load(name):
    with pytest.raises(ValidationError, match="pool name"):
        with_pools({name: RTX4090}, workers="local")
