"""The `openai-videos` kind through the real LiteLLM proxy (issue 27): the plain path, remix, long
clips, 429 and 5xx storms, a lost reply, a model the gateway does not serve, and a gateway that
cannot route extensions or list jobs. Money: what each item is charged is what the service billed,
or its estimate where the gateway hides whether a job was made (never less than billed)."""

from __future__ import annotations

import pytest

from tests.conftest import videos_api_policy
from tests.gateway import MASTER_KEY, UPSTREAM_KEY, billed_by_prompt, litellm_proxy
from vidbatch.errors import ContentRejected, ProviderUnavailable, SubmitUnconfirmed
from vidbatch.media import probe
from vidbatch.providers import ClipRequest, Journal
from vidbatch.providers.openai_video import OpenAIVideoProvider, make_client
from vidbatch.redact import Redactor
from vidbatch.sandbox import Faults, VideosSandbox


@pytest.fixture(scope="module")
def upstream():
    with VideosSandbox(api_key=UPSTREAM_KEY, latency_s=0.3, poll_after_ms=50) as box:
        yield box


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    with litellm_proxy(upstream.base_url, tmp_path_factory.mktemp("litellm")) as url:
        yield url


@pytest.fixture
def box(upstream, gateway):
    """The upstream service, with no faults and an empty request log for this test."""
    upstream.book.faults, upstream.book.latency_s = Faults(), 0.3
    upstream.requests.clear()
    return upstream


def through(gateway, **route_changes) -> OpenAIVideoProvider:
    route = videos_api_policy().routes["sora"].model_copy(update={"base_url": gateway, **route_changes})
    return OpenAIVideoProvider(route, client=make_client(route, api_key=MASTER_KEY), route_id="sora")


def request(item, prompt, seconds=4.0, model="sora-2", **kw):
    return ClipRequest(item_id=item, prompt=prompt, seconds=seconds, width=1280, height=720, model=model, **kw)


def upstream_submits(box) -> list[int]:
    return [status for method, path, status in box.requests if method == "POST" and path == "/v1/videos"]


def test_the_plain_path_through_the_gateway_create_remix_and_long_clips_as_shots(box, gateway, tmp_path):
    provider = through(gateway)
    assert provider.unavailable() is None
    # LiteLLM 1.108 lists no jobs and routes no extensions
    assert not provider.can_list and not provider.capabilities.extend
    recorded = []
    clip = provider.generate(request("g0", "gw a harbour at dawn"), tmp_path,
                             Journal(on_job=lambda j, n: recorded.append(j)))
    assert probe(clip.path).duration_s == 4.0 and recorded == [clip.job_id]
    remix = provider.generate(request("g1", "gw the harbour at night", remix_job_id=clip.job_id), tmp_path)
    (tmp_path / "long").mkdir()
    long = provider.generate(request("g2", "gw a long pan", seconds=16.0), tmp_path / "long")
    assert probe(long.path).duration_s == 16.0 and "create 12s + create 4s" in long.detail  # shots, not an extension
    with pytest.raises(ProviderUnavailable, match="does not route extensions"):
        provider.generate(request("g3", "gw extended", extend_s=4.0), tmp_path)  # passed over, nothing sent
    billed = billed_by_prompt(box)
    assert (clip.cost_usd, remix.cost_usd, long.cost_usd) == pytest.approx(
        (billed["gw a harbour at dawn"], billed["gw the harbour at night"], billed["gw a long pan"]))
    assert "gw extended" not in billed and len(box.jobs) >= 4
    assert [kind for kind in (j.kind for j in box.jobs.values()) if kind == "extend"] == []


def test_429s_are_retried_by_vidbatch_and_5xx_creates_are_sent_once(box, gateway, tmp_path):
    provider = through(gateway)
    box.faults.rate_limit_next, box.faults.retry_after_s = 2, 0.1
    clip = provider.generate(request("r0", "gw rate limited"), tmp_path)
    assert upstream_submits(box) == [429, 429, 200] and clip.cost_usd == pytest.approx(0.4)
    box.requests.clear()
    box.faults.server_error_next = 1  # the create answers 500: whether a job exists, the gateway cannot say
    with pytest.raises(SubmitUnconfirmed, match="lists no jobs.*charged its estimate") as caught:
        provider.generate(request("r1", "gw server error"), tmp_path)
    assert upstream_submits(box) == [500]  # the gateway did not send the create again (retries off)
    assert caught.value.cost_usd == pytest.approx(0.4) and "gw server error" not in billed_by_prompt(box)


def test_a_lost_reply_through_the_gateway_is_one_job_charged_as_billed(box, gateway, tmp_path):
    box.faults.lost_reply_next = 1  # the service makes the job, the answer never arrives
    with pytest.raises(SubmitUnconfirmed) as caught:
        through(gateway).generate(request("l0", "gw lost reply"), tmp_path)
    made = [j for j in box.jobs.values() if j.prompt == "gw lost reply"]
    assert len(made) == 1 and upstream_submits(box) == [502]
    box.book.latency_s = 0.0  # the job the lost reply made finishes, and bills
    assert caught.value.cost_usd == pytest.approx(billed_by_prompt(box)["gw lost reply"])  # charged what it billed


def test_a_model_the_gateway_does_not_serve_darkens_the_route_for_that_model(box, gateway, tmp_path):
    prices = {**videos_api_policy().routes["sora"].price_usd_per_s, "sora-3": {"1280x720": 0.2}}
    provider = through(gateway, price_usd_per_s=prices)
    with pytest.raises(ProviderUnavailable, match="does not serve sora-3 \\(400: .*Invalid model name"):
        provider.generate(request("m0", "gw new model", model="sora-3"), tmp_path)
    assert provider.unavailable() is None  # the route serves its other models
    assert provider.generate(request("m1", "gw old model"), tmp_path).cost_usd == pytest.approx(0.4)
    with pytest.raises(ProviderUnavailable):
        provider.generate(request("m2", "gw new model again", model="sora-3"), tmp_path)  # not asked again
    assert "gw new model again" not in billed_by_prompt(box)


def test_a_refusal_through_the_gateway_is_still_a_refusal_and_echoed_keys_are_redacted(box, gateway, tmp_path):
    box.faults.reject_prompt, box.faults.echo_headers = "forbidden", True  # the service repeats the gateway's headers
    provider = through(gateway)
    with pytest.raises(ContentRejected, match="400") as caught:
        provider.generate(request("x0", "gw something forbidden"), tmp_path)
    clean = Redactor(provider.secrets)(str(caught.value))  # what the run's ledger, logs and Prefect see
    assert UPSTREAM_KEY not in clean and MASTER_KEY not in clean and "[redacted]" in clean
