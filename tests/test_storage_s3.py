"""s3:// catalogs and output roots through boto3, against a real S3 HTTP server on loopback (moto)."""

import boto3
import polars as pl
import pytest

from tests.conftest import DEMO_POLICY, catalog, ledger_of
from tests.conftest import produce
from vidbatch.providers.testsrc import TestsrcProvider
from vidbatch.storage import open_root


@pytest.fixture()
def s3(moto_s3):
    client = boto3.client("s3")
    client.create_bucket(Bucket="studio")
    return client


@pytest.mark.usefixtures("prefect_api")
def test_catalog_and_outputs_on_s3(s3, tmp_path, monkeypatch):
    monkeypatch.setenv("VIDBATCH_LEDGER_URL", f"sqlite:///{tmp_path / 'shared-ledger.db'}")
    local = tmp_path / "c.parquet"
    catalog([{}, {"aspect": "bad"}]).write_parquet(local)
    s3.upload_file(str(local), "studio", "catalogs/night.parquet")
    summary = produce("s3://studio/catalogs/night.parquet", out="s3://studio/runs",
                              policy_path=str(DEMO_POLICY), providers={"wan": lambda policy: TestsrcProvider()})
    assert summary["status_counts"] == {"finished": 1} and summary["rejected_rows"] == 1
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="studio", Prefix="runs/")["Contents"]}
    assert "runs/assets/c1/i0.mp4" in keys
    ledger = ledger_of("s3://studio/runs")
    settled = ledger.filter(pl.col("status") == "settled")
    assert settled["asset_uri"].to_list()[0].startswith("s3://studio/runs/raw/c1/i0-")


def test_uploads_are_checksummed_multipart_and_idempotent(s3, tmp_path):
    import os

    from vidbatch.storage import sha256_of

    s3.put_bucket_versioning(Bucket="studio", VersioningConfiguration={"Status": "Enabled"})
    root = open_root("s3://studio/out")
    root.multipart_threshold = root.multipart_chunksize = 5 << 20  # S3's smallest part
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(12 << 20))
    assert root.put_file(big, "assets/c/big.mp4") == "s3://studio/out/assets/c/big.mp4"
    head = s3.head_object(Bucket="studio", Key="out/assets/c/big.mp4", ChecksumMode="ENABLED")
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    assert head["Metadata"]["sha256"] == sha256_of(big) and head.get("ChecksumSHA256")
    root.put_file(big, "assets/c/big.mp4")  # a retried task: the same bytes are not sent again

    def versions():
        return s3.list_object_versions(Bucket="studio", Prefix="out/assets/c/big.mp4").get("Versions", [])

    assert len(versions()) == 1
    big.write_bytes(os.urandom(6 << 20))  # a regenerated clip replaces the old one
    root.put_file(big, "assets/c/big.mp4")
    assert len(versions()) == 2
    body = s3.get_object(Bucket="studio", Key="out/assets/c/big.mp4")["Body"].read()
    assert body == big.read_bytes()


@pytest.mark.usefixtures("prefect_api")
def test_an_s3_output_root_without_a_shared_ledger_is_refused(s3, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from vidbatch.cli import app

    monkeypatch.delenv("VIDBATCH_LEDGER_URL", raising=False)
    local = tmp_path / "c.parquet"
    catalog([{}]).write_parquet(local)
    result = CliRunner().invoke(app, ["run", str(local), "--policy", str(DEMO_POLICY), "--out", "s3://studio/runs"])
    assert result.exit_code == 2
    assert "VIDBATCH_LEDGER_URL" in result.output and "s3://studio/runs" in result.output


@pytest.mark.usefixtures("prefect_api")
def test_on_s3_the_report_and_held_clips_are_links_the_ui_opens_and_approval_delivers(s3, tmp_path, monkeypatch):
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from vidbatch.review import ClipVerdict
    from vidbatch.review_io import decide, pending_clips
    from vidbatch.ledger_store import open_ledger

    monkeypatch.setenv("VIDBATCH_LEDGER_URL", f"sqlite:///{tmp_path / 'shared-ledger.db'}")
    policy = tmp_path / "review.toml"
    policy.write_text(DEMO_POLICY.read_text() + "\n[review]\nall = true\n")
    local = tmp_path / "c.parquet"
    catalog([{"duration_s": 1.0}]).write_parquet(local)
    summary = produce(str(local), out="s3://studio/held", policy_path=str(policy),
                      providers={"wan": lambda policy: TestsrcProvider()})
    assert summary["status_counts"] == {"awaiting_review": 1}
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[summary["run_id"]])))
    link = next(a for a in artifacts if a.key == "report-link").data
    url = link.split("](", 1)[1][:-1]
    assert url.startswith("http") and "Signature=" in url  # presigned
    assert "vidbatch run" in httpx.get(url).text  # the presigned link opens the report
    [sheet] = [a.data for a in artifacts if a.type == "image"]
    assert httpx.get(sheet).content[:3] == b"\xff\xd8\xff"  # the held clip's contact sheet, a JPEG

    root = open_root("s3://studio/held")
    store = open_ledger(root)
    [held] = pending_clips(root, store, urls=True).to_dicts()
    assert held["watch"].startswith("http") and httpx.get(held["watch"]).status_code == 200
    result = decide(root, store, [ClipVerdict(campaign="c1", item_id="i0", verdict="approve")], reviewer="ann")
    assert result["delivered"] == ["s3://studio/held/assets/c1/i0.mp4"]
    assert s3.head_object(Bucket="studio", Key="held/assets/c1/i0.mp4")["ContentLength"] > 0
