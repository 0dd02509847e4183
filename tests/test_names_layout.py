"""The naming rule, the output layout that refuses to leave its root, and the inputs boundary."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import catalog
from vidbatch import layout
from vidbatch.catalog import validate_catalog
from vidbatch.errors import LayoutError
from vidbatch.inputs import check_images, resolve_image
from vidbatch.names import is_safe, problem, with_name_problems
from vidbatch.storage import LocalRoot, S3Root

HOSTILE = ["../../escape", "/abs/path/x", "a/b", "a\\b", "nul\x00byte", "x" * 5000, "..", ".", ".hidden", "",
           "tab\tname", "new\nline", "é" * 129, "日" * 70]
# Text with every kind of trouble in it: separators, dots, control and format characters, any script.
names = st.one_of(st.sampled_from(HOSTILE),
                  st.text(st.characters(codec="utf-8"), max_size=140),
                  st.text(st.sampled_from(list("ab./\\\x00\x1f\u200b-_日ह\u093f")), max_size=12))


@given(names)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_a_name_is_safe_exactly_when_every_key_built_from_it_stays_under_the_root(tmp_path_factory, name):
    root = LocalRoot(tmp_path_factory.getbasetemp() / "out")
    builders = [lambda n: layout.asset(n, "i"), lambda n: layout.asset("c", n), lambda n: layout.storyboard("c", n),
                lambda n: layout.raw_clip(n, n, "0123abcd", 3), lambda n: layout.contact_sheet("r", n, n),
                lambda n: layout.run_table(n, "items"), lambda n: layout.batch_table("r", n)]
    for build in builders:
        if is_safe(name):
            key = build(name)
            assert root.path.resolve() in Path(root.key_uri(key)).resolve().parents
        else:
            with pytest.raises(LayoutError):
                build(name)


@given(st.lists(names, min_size=1, max_size=8))
@settings(max_examples=150)
def test_catalog_validation_applies_the_one_rule_to_every_name_column(ids):
    frame = catalog([{"item_id": f"{n}-{i}" if i else n, "campaign": ids[0], "storyboard_id": n, "scene_index": i}
                     for i, n in enumerate(ids)])
    valid, rejects = validate_catalog(frame)
    for row in valid.iter_rows(named=True):  # what is planned is safe in every name column
        assert all(is_safe(row[c]) for c in ("item_id", "campaign", "storyboard_id"))
    flagged = with_name_problems(frame, ["item_id"])["__name_item_id"].to_list()
    assert [why is None for why in flagged] == [is_safe(n) for n in frame["item_id"].to_list()]


def test_hostile_rows_are_rejected_with_row_column_and_reason():
    frame = catalog([{"item_id": "ok"}, {"item_id": "../../escape"}, {"item_id": "nul\x00x"},
                     {"item_id": "x" * 5000}, {"campaign": "../../x"}, {"storyboard_id": "../s", "scene_index": 0},
                     {"item_id": "日本語_ok", "campaign": "キャンペーン"}])
    valid, rejects = validate_catalog(frame)
    assert valid["item_id"].to_list() == ["ok", "日本語_ok"]
    by_row = {r["row"]: (r["column"], r["reason"]) for r in rejects.iter_rows(named=True)}
    assert by_row[1] == ("item_id", "item_id '../../escape' starts with '.'")
    assert by_row[2][0] == "item_id" and "U+0000" in by_row[2][1] and "\x00" not in rejects["value"][1]
    assert by_row[3][0] == "item_id" and "5000 characters" in by_row[3][1] and len(rejects["value"][2]) < 300
    assert by_row[4] == ("campaign", "campaign '../../x' starts with '.'")
    assert by_row[5] == ("storyboard_id", "storyboard_id '../s' starts with '.'")


def test_the_rule_takes_any_script_and_bounds_names_in_characters_and_bytes():
    assert is_safe("spring-launch_2026.v2") and is_safe("किताब") and is_safe("日本語")
    assert "starts with '.'" in problem("..") and "separator" in problem("a/b")
    assert "at most 128" in problem("a" * 129) and "bytes" in problem("日" * 70)  # 210 bytes in UTF-8
    assert "U+200B" in problem("zero\u200bwidth")


def test_storage_roots_refuse_keys_that_leave_them_even_past_the_layout(tmp_path):
    root = LocalRoot(tmp_path / "out")
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path / "elsewhere")
    for key in ("../x.mp4", "/etc/passwd", "a//b", "a/./b", "a\\..\\b", "link/x.mp4", "a/\x00b"):
        with pytest.raises(LayoutError):
            root.put_file(Path(__file__), key)
    assert not list((tmp_path / "elsewhere").iterdir()) and sorted(p.name for p in tmp_path.iterdir()) == [
        "elsewhere", "out"]
    with pytest.raises(LayoutError):
        S3Root("bucket", "prefix").key_uri("../other-prefix/x")
    with pytest.raises(LayoutError):
        layout.work_path(tmp_path, "..", "x")


def _png(path: Path) -> str:
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(path)
    return str(path)


def test_image_references_stay_beside_the_catalog_or_in_the_policys_roots(tmp_path):
    folder, extra = tmp_path / "catalogs", tmp_path / "shared-images"
    folder.mkdir()
    extra.mkdir()
    _png(folder / "ok.png")
    _png(extra / "brand.png")
    (folder / "notes.png").write_text("not an image")
    (folder / "sneaky.png").symlink_to("/etc/passwd")
    cat = str(folder / "night.parquet")
    rows = catalog([{"image_uri": uri} for uri in (
        "ok.png", str(folder / "ok.png"), str(extra / "brand.png"), "/etc/passwd", "../../../../etc/shadow",
        "sneaky.png", "notes.png", "missing.png", "https://example.com/a.png", "file:///etc/passwd")])
    valid, rejects = validate_catalog(rows)
    kept, refused = check_images(valid, cat, roots=(str(extra),))
    assert kept["row"].to_list() == [0, 1, 2]
    assert kept["image_source"].to_list() == [str(folder / "ok.png"), str(folder / "ok.png"), str(extra / "brand.png")]
    assert kept["image_uri"][0] == "ok.png"  # the catalog's own reference keeps the fingerprint
    why = dict(zip(refused["row"].to_list(), refused["reason"].to_list()))
    assert all("outside the catalog's folder" in why[r] for r in (3, 4, 5))
    assert why[6] == "not an image (PNG, JPEG or WebP)" and "cannot read" in why[7]
    assert "not fetched" in why[8] and "file://" in why[9]
    assert set(refused["column"]) == {"image_uri"}


def test_an_s3_catalogs_relative_images_stay_under_its_prefix():
    assert resolve_image("img/a.png", "s3://b/cat/night.parquet") == ("s3://b/cat/img/a.png", None)
    assert resolve_image("s3://other/x.png", "s3://b/cat/night.parquet") == ("s3://other/x.png", None)
    assert resolve_image("../../x.png", "s3://b/cat/night.parquet")[0] is None
    assert resolve_image("/etc/passwd", "s3://b/cat/night.parquet")[0] is None


def test_a_campaigns_lora_and_route_names_in_a_policy_follow_the_rule(tmp_path):
    from tests.conftest import SHIPPED_DEMO_POLICY
    from vidbatch.errors import PolicyError
    from vidbatch.policy import load_policy

    text = SHIPPED_DEMO_POLICY.read_text().replace("[routes.wan-hosted]", '[routes."../hosted"]').replace(
        '"wan-hosted"', '"../hosted"')
    (tmp_path / "p.toml").write_text(text)
    with pytest.raises(PolicyError, match=r"routes: route name '../hosted' starts with '.'"):
        load_policy(tmp_path / "p.toml")
