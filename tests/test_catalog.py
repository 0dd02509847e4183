import polars as pl
import pytest

from tests.conftest import catalog
from vidbatch.catalog import validate_catalog, with_fingerprints
from vidbatch.errors import CatalogError


def reasons(rejects: pl.DataFrame) -> dict[tuple[int, str], str]:
    return {(r["row"], r["column"]): r["reason"] for r in rejects.iter_rows(named=True)}


def test_good_rows_pass_with_defaults_and_extra_columns_kept():
    valid, rejects = validate_catalog(catalog([{"notes": "keep me"}, {}]))
    assert rejects.is_empty()
    assert valid["row"].to_list() == [0, 1]
    assert valid["resolution"].to_list() == ["480p", "480p"]
    assert valid["priority"].to_list() == [0, 0]
    assert valid["trim_start_s"].to_list() == [0.0, 0.0]
    assert valid["notes"].to_list() == ["keep me", None]


def test_each_bad_value_is_rejected_with_row_column_and_reason():
    frame = catalog([
        {},                                                  # 0 fine
        {"duration_s": -1.0},                                # 1
        {"aspect": "4:3"},                                   # 2
        {"realism": "photoreal"},                            # 3
        {"prompt": "x" * 32_001},                            # 4
        {"prompt": ""},                                      # 5
        {"storyboard_id": "s"},                              # 6 scene missing
        {"trim_start_s": 1.0, "trim_end_s": 2.0},            # 7 window 1 s but duration 2 s
        {"route": "runway"},                              # 8
        {"max_cost_usd": 0.0},                               # 9
        {"resolution": "1080p"},                             # 10
    ])
    valid, rejects = validate_catalog(frame, ["wan", "sora"])
    assert valid["row"].to_list() == [0]
    got = reasons(rejects)
    assert "must be a number > 0, got -1.0" in got[(1, "duration_s")]
    assert "16:9 | 9:16" in got[(2, "aspect")] and "'4:3'" in got[(2, "aspect")]
    assert "photoreal" in got[(3, "realism")]
    assert "32001 characters" in got[(4, "prompt")]
    assert got[(5, "prompt")] == "missing prompt"
    assert "scene_index is missing" in got[(6, "storyboard_id")]
    assert "lasts 1.0 s but duration_s is 2.0 s" in got[(7, "trim_end_s")]
    assert "wan | sora" in got[(8, "route")]
    assert "> 0" in got[(9, "max_cost_usd")]
    assert "1080p" in got[(10, "resolution")]


def test_extension_and_crossfade_rules():
    frame = catalog([
        {"extend_s": 2.0},                                                          # 0 fine
        {"extend_s": 0.0},                                                          # 1
        {"crossfade_s": 0.5},                                                       # 2 no storyboard
        {"storyboard_id": "a", "scene_index": 0, "crossfade_s": 0.5},              # 3 } two values
        {"storyboard_id": "a", "scene_index": 1, "crossfade_s": 1.0},              # 4 }
        {"storyboard_id": "b", "scene_index": 0, "crossfade_s": 2.5, "extend_s": 0.5},  # 5 fits 2 + 0.5? no
        {"storyboard_id": "b", "scene_index": 1, "campaign": "c2"},                # 6 other campaign
        {"item_id": "r", "remix_of": "i0", "extend_s": 1.0, "duration_s": 1.0},    # 7
    ])
    valid, rejects = validate_catalog(frame)
    assert valid["row"].to_list() == [0]
    got = reasons(rejects)
    assert "extend_s must be a number > 0, got 0.0" in got[(1, "extend_s")]
    assert got[(2, "crossfade_s")] == "crossfade_s needs a storyboard_id"
    assert "ask for different crossfades (0.5, 1.0 s)" in got[(3, "crossfade_s")] == got[(4, "crossfade_s")]
    assert got[(5, "crossfade_s")] == "a crossfade of 2.5 s does not fit in this 2.5 s scene"
    assert "spans 2 campaigns" in got[(6, "storyboard_id")]
    assert "a remix cannot be extended" in got[(7, "extend_s")]


def test_duplicates_and_uncastable_values():
    frame = catalog([{"item_id": "a"}, {"item_id": "a"}, {"duration_s": "ten"},
                     {"storyboard_id": "s", "scene_index": 0}, {"storyboard_id": "s", "scene_index": 0}],
                    ).with_columns(pl.col("duration_s").cast(pl.String))
    frame = frame.with_columns(pl.when(pl.col("item_id") == "i2").then(pl.lit("ten"))
                               .otherwise(pl.col("duration_s")).alias("duration_s"))
    valid, rejects = validate_catalog(frame)
    got = reasons(rejects)
    assert "appears 2 times" in got[(0, "item_id")] and "appears 2 times" in got[(1, "item_id")]
    assert got[(2, "duration_s")] == "cannot read 'ten' as Float64"
    assert (2, "duration_s") in got and len([k for k in got if k == (2, "duration_s")]) == 1
    assert "scene 0 of storyboard 's' appears 2 times" in got[(3, "scene_index")]
    assert valid.is_empty()


def test_missing_required_column_fails_fast_naming_it():
    with pytest.raises(CatalogError, match="lacks required column\\(s\\): realism"):
        validate_catalog(catalog([{}]).drop("realism"))


def test_fingerprint_is_stable_and_changes_with_the_prompt():
    valid, _ = validate_catalog(catalog([{}, {"prompt": "another"}]))
    fp = with_fingerprints(valid)["fingerprint"].to_list()
    assert fp == with_fingerprints(valid)["fingerprint"].to_list()
    assert fp[0] != fp[1] and len(fp[0]) == 16


def test_a_per_item_cap_finer_than_a_micro_dollar_is_rejected_by_name_not_rounded():
    frame = catalog([{"max_cost_usd": 0.1}, {"max_cost_usd": 0.0000001}, {"max_cost_usd": 1.2345678},
                     {"max_cost_usd": 0.000001}])
    valid, rejects = validate_catalog(frame, ["wan", "sora"])
    assert valid["row"].to_list() == [0, 3]  # 0.1 is 100,000 micro-dollars despite its float; $0.000001 is one
    got = reasons(rejects)
    assert "max_cost_usd 1e-7 is finer than the ledger's unit" in got[(1, "max_cost_usd")]
    assert "finer than the ledger's unit" in got[(2, "max_cost_usd")]
