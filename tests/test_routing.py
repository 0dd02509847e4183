"""Route choice as a pure function of capabilities and preferences (vidbatch.routing), with properties."""

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from vidbatch.routing import Preferences, RouteOffer, candidates

ITEM_SCHEMA = {"row": pl.Int64, "realism": pl.String, "seconds": pl.Float64, "has_image": pl.Boolean,
               "is_remix": pl.Boolean, "extend_s": pl.Float64, "resolution": pl.String, "forced": pl.String}


def items(rows: list[dict]) -> pl.DataFrame:
    base = {"realism": "low", "seconds": 4.0, "has_image": False, "is_remix": False, "extend_s": 0.0,
            "resolution": "480p", "forced": None}
    return pl.DataFrame([{**base, "row": n, **row} for n, row in enumerate(rows)], schema=ITEM_SCHEMA)


GPU = RouteOffer("gpu-wan", image_input=True, extend=True)
HOSTED = RouteOffer("hosted-wan", max_footage_s=5.0, image_input=True)
GATEWAY = RouteOffer("realism-gateway", max_footage_s=60.0, image_input=True, remix=True, extend=True,
                     resolutions=("720p",))
PREFS = Preferences(by_realism={"low": ["gpu-wan", "hosted-wan"], "high": ["realism-gateway", "hosted-wan"]},
                    long_after_s=5.0, long={"low": ["realism-gateway", "gpu-wan"]})


def test_order_capabilities_and_reasons():
    got = candidates(items([
        {},                                                   # 0: low, fits the GPU first
        {"seconds": 8.0},                                     # 1: long: the long order, hosted cannot anyway
        {"realism": "high", "resolution": "720p"},            # 2: gateway, then hosted
        {"realism": "high"},                                  # 3: gateway has no 480p: passed over
        {"is_remix": True},                                   # 4: only a remix-capable route
        {"forced": "hosted-wan", "seconds": 9.0},             # 5: forced to a route that cannot: none
        {"forced": "nowhere"},                                # 6: a route nobody configured
    ]), [GPU, HOSTED, GATEWAY], PREFS).sort("row")
    routes = got["routes"].to_list()
    assert routes == [["gpu-wan", "hosted-wan"], ["gpu-wan"], ["realism-gateway", "hosted-wan"], ["hosted-wan"],
                      [], [], []]
    assert got["preferred"].to_list() == ["gpu-wan", "realism-gateway", "realism-gateway", "realism-gateway",
                                          "gpu-wan", "hosted-wan", "nowhere"]
    why = passed_over(got)
    assert why[0] is None and why[2] is None
    assert why[1] == "realism-gateway has no 480p model"
    assert why[3] == "realism-gateway has no 480p model"
    assert why[4] == "gpu-wan cannot remix; hosted-wan cannot remix"
    assert why[5] == "hosted-wan makes at most 5.0 s, the item needs 9.0 s"
    assert why[6] == "nowhere is not a configured route"


def passed_over(got) -> list[str | None]:
    """Per item: why each route before its first able one was skipped ("; "-joined; None if none)."""
    out = []
    for skipped, ranks in zip(got["skipped"].to_list(), got["route_ranks"].to_list()):
        before = [s["why"] for s in sorted(skipped, key=lambda s: s["rank"]) if not ranks or s["rank"] < ranks[0]]
        out.append("; ".join(before) or None)
    return out


def test_an_unavailable_route_is_passed_over_with_its_reason():
    down = RouteOffer("gpu-wan", image_input=True, extend=True, unavailable="GPU pool has no workers")
    got = candidates(items([{}]), [down, HOSTED, GATEWAY], PREFS)
    assert got["routes"].to_list() == [["hosted-wan"]]
    assert passed_over(got)[0] == "gpu-wan is unavailable (GPU pool has no workers)"


OFFER = st.builds(RouteOffer, name=st.sampled_from(["a", "b", "c", "d"]),
                  max_footage_s=st.one_of(st.none(), st.sampled_from([4.0, 5.0, 12.0])), image_input=st.booleans(),
                  remix=st.booleans(), extend=st.booleans(),
                  resolutions=st.sampled_from([("480p",), ("720p",), ("480p", "720p")]),
                  unavailable=st.one_of(st.none(), st.just("down")))
ITEM = st.fixed_dictionaries({"realism": st.sampled_from(["low", "medium", "high"]),
                              "seconds": st.sampled_from([2.0, 4.0, 5.0, 8.0, 20.0]), "has_image": st.booleans(),
                              "is_remix": st.booleans(), "extend_s": st.sampled_from([0.0, 3.0]),
                              "resolution": st.sampled_from(["480p", "720p"]),
                              "forced": st.one_of(st.none(), st.sampled_from(["a", "b", "e"]))})
ORDER = st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=1, max_size=4, unique=True)


@settings(max_examples=200, deadline=None)
@given(offers=st.lists(OFFER, min_size=1, max_size=4, unique_by=lambda o: o.name),
       rows=st.lists(ITEM, min_size=1, max_size=12),
       orders=st.fixed_dictionaries({"low": ORDER, "medium": ORDER, "high": ORDER}), long_order=ORDER)
def test_every_candidate_can_make_its_item_in_the_policys_order(offers, rows, orders, long_order):
    prefs = Preferences(by_realism=orders, long_after_s=5.0, long={r: long_order for r in orders})
    by_name = {o.name: o for o in offers}
    got = candidates(items(rows), offers, prefs).sort("row")
    for item, routes in zip(rows, got["routes"].to_list()):
        order = ([item["forced"]] if item["forced"] else long_order if item["seconds"] > 5.0
                 else orders[item["realism"]])
        assert routes == [r for r in order if r in routes]  # the policy's order, nothing added
        for name in order:
            offer = by_name.get(name)
            able = (offer is not None and offer.unavailable is None and (offer.remix or not item["is_remix"])
                    and (offer.image_input or not item["has_image"]) and (offer.extend or not item["extend_s"])
                    and item["resolution"] in offer.resolutions
                    and (offer.max_footage_s is None or item["seconds"] + item["extend_s"] <= offer.max_footage_s))
            assert (name in routes) == able, (name, item, offer)
