"""Google Veo (the `gemini-veo` kind) through the real google-genai SDK against the loopback Veo
server: create, poll, bytes; longer footage as continued clips; resume after kill -9; a lost
reply; a 429 storm and 5xx; refusals; operations that never finish or are forgotten; a gone model."""

import os
import signal
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import REPO
from vidbatch.errors import (ContentRejected, PolicyError, ProviderError, ProviderUnavailable, SubmitUnconfirmed,
                             TransientProviderError)
from vidbatch.media import probe
from vidbatch.providers import ClipRequest, Journal
from vidbatch.providers.gemini_veo import VeoProvider, VeoSettings, clip_plan, price_columns
from vidbatch.redact import Redactor
from vidbatch.sandbox.veo import VeoSandbox

KEY = "veo-express-key-0123456789"
STANDARD, FAST = "veo-3.1-generate-001", "veo-3.1-fast-generate-001"


@pytest.fixture
def veo(monkeypatch):
    monkeypatch.setenv("VEO_API_KEY", KEY)
    with VeoSandbox(api_key=KEY, latency_s=0.3) as box:
        yield box


def provider(box, **settings) -> VeoProvider:
    given = {"base_url": box.base_url, "api_key_env": "VEO_API_KEY", "poll_interval_s": 0.05,
             "create_backoff_s": 0.01, **settings}
    return VeoProvider(VeoSettings(**given), route_id="veo")


def request(item="i0", prompt="a glass of water on a windowsill", seconds=4.0, size=(1280, 720), model=STANDARD,
            **kw) -> ClipRequest:
    return ClipRequest(item_id=item, prompt=prompt, seconds=seconds, width=size[0], height=size[1], model=model,
                       resolution="720p", **kw)


def journal(recorded: list, ids=()) -> Journal:
    return Journal(job_ids=tuple(ids), on_job=lambda job_id, note: recorded.append(job_id))


def test_a_clip_is_created_polled_and_billed_per_second_like_the_service(veo, tmp_path):
    route, recorded = provider(veo), []
    assert route.unavailable() is None
    clip = route.generate(request(seconds=3.5, size=(720, 1280)), tmp_path, journal(recorded))
    info = probe(clip.path)
    assert (info.width, info.height, info.duration_s) == (720, 1280, 4.0)  # the shortest clip that covers it
    assert recorded == [clip.job_id] and clip.job_id.endswith(next(iter(veo.operations)).rpartition("/")[2])
    assert clip.cost_usd == pytest.approx(4 * 0.40) == veo.total_billed_usd()
    assert veo.total_billed_usd() == route.estimate_cost(request(seconds=3.5))
    assert [verb for verb, _, _ in veo.requests].count("predictLongRunning") == 1


def test_longer_footage_is_several_operations_each_continuing_from_the_last_frame(veo, tmp_path):
    route, recorded = provider(veo), []
    clip = route.generate(request(seconds=13.0, model=FAST), tmp_path, journal(recorded))
    assert probe(clip.path).duration_s == pytest.approx(14.0)  # 8 + 6: the fewest clips, then the fewest seconds
    ops = [veo.operations[name] for name in recorded]
    assert [op.seconds for op in ops] == [8, 6] and [op.image for op in ops] == [False, True]
    assert clip.cost_usd == pytest.approx(14 * 0.15) == veo.total_billed_usd()
    assert clip_plan(17.0, [4, 6, 8], 3) == [8, 6, 4] and clip_plan(25.0, [4, 6, 8], 3) is None
    with pytest.raises(ContentRejected, match="longer than"):
        route.estimate_cost(request(seconds=25.0))


KILLED = """
import sys
from pathlib import Path
from vidbatch.providers import ClipRequest, Journal
from vidbatch.providers.gemini_veo import VeoProvider, VeoSettings
route = VeoProvider(VeoSettings(base_url=sys.argv[1], api_key_env="VEO_API_KEY", poll_interval_s=0.05), route_id="veo")
def keep(name, note):
    print(name, flush=True)  # the ledger's role: the operation's name is durable before anything waits
route.generate(ClipRequest(item_id="k", prompt="a slow tide", seconds=12.0, width=1280, height=720,
                           model="veo-3.1-generate-001"), Path(sys.argv[2]), Journal(on_job=keep))
"""


def test_an_operation_is_resumed_after_its_process_was_killed_never_created_twice(veo, tmp_path):
    veo.latency_s = 3.0
    child = subprocess.Popen([sys.executable, "-c", KILLED, veo.base_url, str(tmp_path)], stdout=subprocess.PIPE,
                             text=True, cwd=REPO, env={**os.environ, "VEO_API_KEY": KEY})
    first = child.stdout.readline().strip()
    child.send_signal(signal.SIGKILL)  # mid-operation: the first of two clips is still running
    child.wait()
    veo.latency_s = 0.3
    recorded = [first]
    clip = provider(veo).generate(request(item="k", prompt="a slow tide", seconds=12.0), tmp_path,
                                  journal(recorded, ids=[first]))
    assert recorded[0] == first and len(recorded) == 2  # the first resumed, only the second created
    assert veo.creates_per_prompt() == {"a slow tide": 2}
    assert clip.cost_usd == pytest.approx(veo.total_billed_usd()) == pytest.approx(12 * 0.40)


def test_a_lost_reply_is_charged_its_estimate_and_never_sent_again(veo, tmp_path):
    route, recorded = provider(veo), []
    veo.faults.lost_reply_next = 1
    with pytest.raises(SubmitUnconfirmed, match="not sent again") as lost:
        route.generate(request(), tmp_path, journal(recorded))
    assert not isinstance(lost.value, TransientProviderError)
    assert lost.value.cost_usd == pytest.approx(4 * 0.40) and not recorded
    assert veo.creates_per_prompt() == {"a glass of water on a windowsill": 1}  # it was made once: no second create


def test_a_429_storm_and_server_errors_are_retried_without_a_second_create(veo, tmp_path):
    route, recorded = provider(veo), []
    veo.faults.exhausted_next = 10  # a storm longer than the create's own attempts
    with pytest.raises(TransientProviderError, match="RESOURCE_EXHAUSTED.*nothing was created"):
        route.generate(request(), tmp_path, journal(recorded))
    assert not veo.operations and not recorded and route.unavailable() is None  # busy is not gone
    veo.faults.exhausted_next = 2  # shorter than the attempts: made, once
    veo.faults.server_error_next = 0

    def then_fail_polls(name, note):
        recorded.append(name)
        veo.faults.server_error_next = 3  # the next polls answer 503: asked again
    clip = route.generate(request(), tmp_path, Journal(on_job=then_fail_polls))
    assert len(veo.operations) == 1 and clip.job_id == recorded[0]
    assert sum(status == 429 for _, _, status in veo.requests) == 4 + 2  # four attempts, then two before it was made
    assert sum(status == 503 for _, _, status in veo.requests) == 3
    assert veo.total_billed_usd() == pytest.approx(clip.cost_usd)


def test_a_refusal_costs_nothing_and_a_refused_continuation_costs_what_was_made(veo, tmp_path):
    route = provider(veo)
    veo.faults.refuse = "forbidden"
    with pytest.raises(ContentRejected, match="safety filter.*You have not been charged") as refused:
        route.generate(request(prompt="a forbidden scene"), tmp_path, journal([]))
    assert refused.value.cost_usd == 0.0 == veo.total_billed_usd() and refused.value.job_id
    veo.faults.refuse = None
    ok = route.generate(request(prompt="a harmless scene", seconds=8.0), tmp_path, journal([]))
    assert veo.total_billed_usd() == pytest.approx(ok.cost_usd)


def test_an_operation_that_never_finishes_is_transient_and_one_forgotten_is_charged(veo, tmp_path):
    route, recorded = provider(veo, poll_deadline_s=0.5), []
    veo.faults.never_finish = "endless"
    with pytest.raises(TransientProviderError, match="still running at the poll deadline") as running:
        route.generate(request(prompt="an endless corridor"), tmp_path, journal(recorded))
    assert running.value.job_id == recorded[0] and veo.total_billed_usd() == 0.0
    veo.operation_ttl_s = 0.0  # by the time a later run asks, the service has forgotten it
    with pytest.raises(ProviderError, match="unknown to Veo") as forgotten:
        route.generate(request(prompt="an endless corridor"), tmp_path, journal([], ids=recorded))
    assert forgotten.value.cost_usd == pytest.approx(4 * 0.40)  # whether it billed is unknown: its estimate
    assert len(veo.operations) == 1  # resumed, never created again


def test_no_key_a_refused_key_and_a_gone_model_make_the_route_unavailable(veo, tmp_path, monkeypatch):
    monkeypatch.delenv("VEO_API_KEY")
    assert provider(veo).unavailable() == "no API key (set VEO_API_KEY)"
    monkeypatch.setenv("VEO_API_KEY", "wrong-key-0123456789")
    refused = provider(veo)
    with pytest.raises(ProviderUnavailable, match="refused"):
        refused.generate(request(), tmp_path, journal([]))
    assert "refused" in refused.unavailable()
    monkeypatch.setenv("VEO_API_KEY", KEY)
    veo.faults.gone_models = {STANDARD}
    route = provider(veo)
    with pytest.raises(ProviderUnavailable, match=f"model {STANDARD} is gone"):
        route.generate(request(), tmp_path, journal([]))
    with pytest.raises(ProviderUnavailable, match=f"model {STANDARD} is gone"):
        route.generate(request(item="again"), tmp_path, journal([]))  # not asked again
    assert route.unavailable() is None and veo.total_billed_usd() == 0.0  # its other models still serve


def test_an_endpoint_that_echoes_the_key_in_an_error_is_redacted(veo, tmp_path):
    veo.faults.echo_headers, veo.faults.gone_models = True, {STANDARD}
    route = provider(veo)
    with pytest.raises(ProviderUnavailable) as gone:
        route.generate(request(), tmp_path, journal([]))
    assert KEY in str(gone.value)  # the endpoint did echo it...
    assert KEY not in Redactor(route.secrets)(str(gone.value))  # ...and the run's redactor removes it


def test_settings_refuse_an_unpriced_model_and_a_bad_endpoint(tmp_path):
    with pytest.raises(ValueError, match="has no price at 720p"):
        VeoSettings(model_by_realism={"high": "veo-4-preview"})
    with pytest.raises(ValueError, match="credentials"):
        VeoSettings(base_url="https://user:pw@example.com")
    from vidbatch.policy import load_policy
    from vidbatch.providers import resolved_routes

    text = ((REPO / "catalogs" / "demo-policy.toml").read_text()
            + '\n[routes.veo2]\nkind = "gemini-veo"\nclip_seconds = []\n')
    path = tmp_path / "policy.toml"
    path.write_text(text)  # the error names the policy's field
    with pytest.raises(PolicyError, match=r"routes\.veo2\.clip_seconds"):
        resolved_routes(load_policy(path))


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.fixed_dictionaries({
    "duration_s": st.sampled_from([1.0, 4.0, 5.5, 8.0, 9.0, 14.0, 16.5, 24.0, 30.0]),
    "trim_start_s": st.sampled_from([0.0, 0.5, 2.0]), "resolution": st.sampled_from(["480p", "720p"]),
    "aspect": st.sampled_from(["16:9", "9:16"]), "realism": st.sampled_from(["low", "medium", "high"]),
    "extend_s": st.sampled_from([0.0, 2.0])}), min_size=1, max_size=20),
    seconds=st.sampled_from([[4, 6, 8], [8], [5, 7]]), only_720=st.booleans())
def test_the_planners_vectorised_prices_equal_the_providers_estimates(rows, seconds, only_720):
    import polars as pl

    config = VeoSettings(clip_seconds=seconds, resolution_for={"720p": "1080p"} if only_720 else
                         {"480p": "720p", "720p": "720p"})
    frame = pl.DataFrame(rows, schema={"duration_s": pl.Float64, "trim_start_s": pl.Float64, "resolution": pl.String,
                                       "aspect": pl.String, "realism": pl.String, "extend_s": pl.Float64})
    priced = frame.with_columns(price_columns(config, "veo")).to_dicts()
    route = VeoProvider(config, route_id="veo")
    for row in priced:
        ask = ClipRequest(item_id="i", prompt="p", seconds=row["trim_start_s"] + row["duration_s"], width=1, height=1,
                          model=config.model_by_realism[row["realism"]], resolution=row["resolution"],
                          extend_s=row["extend_s"])
        try:
            expected = route.estimate_cost(ask)
        except ContentRejected:
            expected = None
        assert (row["veo_cost"] is None) == (expected is None), row
        if expected is not None:
            assert row["veo_cost"] == pytest.approx(expected) and row["veo_model"] == ask.model
