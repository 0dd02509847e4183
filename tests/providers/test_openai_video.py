"""The closed route with the real openai SDK against the loopback Videos API server."""

import warnings

import pytest

from tests.conftest import videos_api_policy, closed_provider
from vidbatch.errors import ContentRejected, ProviderUnavailable, TransientProviderError
from vidbatch import media
from vidbatch.media import probe
from vidbatch.providers import ClipRequest, Journal
from vidbatch.providers.openai_video import OpenAIVideoProvider


def request(item="i0", prompt="a cat surfing", seconds=3.0, size=(1280, 720), model="sora-2", **kw):
    return ClipRequest(item_id=item, prompt=prompt, seconds=seconds, width=size[0], height=size[1], model=model, **kw)


def creates(box, kind="create"):
    return [j for j in box.jobs.values() if j.kind == kind]


def submits(box, path="/v1/videos"):
    """The statuses the endpoint answered to creates (the health check's extension probe is not one)."""
    return [status for method, where, status in box.requests if method == "POST" and where == path]


def test_text_to_video_is_a_real_clip_billed_like_the_server(sandbox, tmp_path):
    provider = closed_provider(sandbox)
    recorded = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the SDK's Sora deprecation must not leak; nothing else may warn
        clip = provider.generate(request(), tmp_path, Journal(on_job=lambda job, note: recorded.append(job)))
    info = probe(clip.path)
    assert (info.width, info.height, info.duration_s, info.has_audio) == (1280, 720, 4.0, True)
    assert recorded == [clip.job_id] and clip.sandbox
    assert clip.cost_usd == pytest.approx(0.4) == sandbox.total_billed_usd()
    assert provider.estimate_cost(request()) == pytest.approx(0.4)


def test_long_item_is_one_clip_plus_an_extension(sandbox, tmp_path):
    clip = closed_provider(sandbox).generate(request(seconds=18.0, size=(720, 1280)), tmp_path)
    assert [(j.kind, j.billed_seconds) for j in sandbox.jobs.values()] == [("create", 12), ("extend", 8)]
    assert probe(clip.path).duration_s == 20.0 and clip.cost_usd == pytest.approx(2.0) == sandbox.total_billed_usd()


def test_long_item_as_shots_is_joined(sandbox, tmp_path):
    clip = closed_provider(sandbox, long_clips="shots").generate(request(seconds=16.0), tmp_path)
    assert [j.billed_seconds for j in creates(sandbox)] == [12, 4]
    assert probe(clip.path).duration_s == 16.0 and clip.cost_usd == pytest.approx(1.6)


def test_extend_s_appends_extension_calls_priced_per_segment(sandbox, tmp_path):
    provider = closed_provider(sandbox)
    wanted = request(seconds=4.0, extend_s=3.0)
    clip = provider.generate(wanted, tmp_path)
    assert [(j.kind, j.billed_seconds) for j in sandbox.jobs.values()] == [("create", 4), ("extend", 4)]
    assert probe(clip.path).duration_s == 8.0 and clip.seconds == 8.0
    assert clip.cost_usd == pytest.approx(0.8) == sandbox.total_billed_usd() == provider.estimate_cost(wanted)


def test_shots_are_extended_at_the_last_shot(sandbox, tmp_path):
    clip = closed_provider(sandbox, long_clips="shots").generate(request(seconds=16.0, extend_s=4.0), tmp_path)
    assert [(j.kind, j.billed_seconds) for j in sandbox.jobs.values()] == [("create", 12), ("create", 4),
                                                                          ("extend", 4)]
    assert probe(clip.path).duration_s == 20.0 and clip.cost_usd == pytest.approx(2.0)


def test_image_to_video_uploads_a_reference_fitted_to_the_size(sandbox, tmp_path):
    still = media.testsrc(tmp_path / "still.mp4", 1, 640, 480, 1)
    from vidbatch.media import first_frame

    image = first_frame(still, tmp_path / "still.png")
    clip = closed_provider(sandbox).generate(request(image=image), tmp_path)
    assert probe(clip.path).width == 1280
    assert any(path == "/v1/videos" and status == 200 for _, path, status in sandbox.requests)


def test_remix_reprompts_an_earlier_video(sandbox, tmp_path):
    provider = closed_provider(sandbox)
    source = provider.generate(request(seconds=8.0), tmp_path)
    remix = provider.generate(request(item="i1", prompt="the same, at night", remix_job_id=source.job_id), tmp_path)
    job = sandbox.jobs[remix.job_id]
    assert job.kind == "remix" and job.remixed_from == source.job_id
    assert remix.cost_usd == pytest.approx(0.8) and sandbox.total_billed_usd() == pytest.approx(1.6)


def test_rate_limits_are_retried_by_the_sdk_honouring_retry_after(sandbox, tmp_path):
    sandbox.faults.rate_limit_next, sandbox.faults.retry_after_s = 2, 0.1
    clip = closed_provider(sandbox).generate(request(), tmp_path)
    assert submits(sandbox) == [429, 429, 200]
    assert len(creates(sandbox)) == 1 and clip.cost_usd == pytest.approx(0.4)


def test_a_429_storm_beyond_the_sdk_retries_is_transient_and_creates_nothing(sandbox, tmp_path):
    sandbox.faults.rate_limit_next, sandbox.faults.retry_after_s = 5, 0.05
    with pytest.raises(TransientProviderError, match="429"):
        closed_provider(sandbox).generate(request(), tmp_path)
    assert creates(sandbox) == []


def test_server_errors_on_reads_are_retried(sandbox, tmp_path):
    provider = closed_provider(sandbox)
    journal = Journal(job_ids=(provider.generate(request(), tmp_path).job_id,))
    sandbox.faults.server_error_next = 2  # the next poll answers 500 twice
    clip = provider.generate(request(), tmp_path, journal)  # resumes the job: no new create
    assert [s for m, p, s in sandbox.requests if m == "GET"][-4:-1] == [500, 500, 200]
    assert len(creates(sandbox)) == 1 and clip.job_id == journal.job_ids[0]


def test_a_submit_whose_reply_was_lost_is_adopted_not_paid_twice(sandbox, tmp_path):
    sandbox.faults.lost_reply_next = 1  # the job is created, the client sees a 502
    recorded = []
    clip = closed_provider(sandbox).generate(request(), tmp_path, Journal(on_job=lambda j, n: recorded.append(j)))
    assert len(creates(sandbox)) == 1 and recorded == [clip.job_id]
    assert submits(sandbox) == [502]  # the SDK did not retry the submit


def test_a_submit_failing_before_any_job_is_transient(sandbox, tmp_path):
    sandbox.faults.server_error_next = 1
    provider = closed_provider(sandbox)
    provider._checked = True  # skip the health check so the 500 hits the submit
    with pytest.raises(TransientProviderError, match="500"):
        provider.generate(request(), tmp_path)
    assert creates(sandbox) == []


def test_moderation_failure_is_permanent_with_the_providers_message(sandbox, tmp_path):
    sandbox.faults.moderate = "forbidden"
    with pytest.raises(ContentRejected, match="moderation_blocked: Your request was blocked") as caught:
        closed_provider(sandbox).generate(request(prompt="something forbidden"), tmp_path)
    assert caught.value.job_id in sandbox.jobs and caught.value.cost_usd == 0.0


def test_bad_input_is_permanent(sandbox, tmp_path):
    with pytest.raises(ContentRejected, match="no price for sora-2 at 1792x1024"):  # caught before any call
        closed_provider(sandbox).generate(request(size=(1792, 1024)), tmp_path)
    optimistic = closed_provider(sandbox, price_usd_per_s={"sora-2": {"1792x1024": 0.1}})
    with pytest.raises(ContentRejected, match="400 invalid_value: size 1792x1024 is not available for sora-2"):
        optimistic.generate(request(size=(1792, 1024)), tmp_path)
    assert sandbox.jobs == {}


def test_a_model_gone_darkens_the_route_for_that_model_only(sandbox, tmp_path):
    provider = closed_provider(sandbox)
    sandbox.faults.gone_models = {"sora-2"}
    with pytest.raises(ProviderUnavailable, match="does not serve sora-2 \\(404: The model 'sora-2' does not exist"):
        provider.generate(request(), tmp_path)
    with pytest.raises(ProviderUnavailable, match="does not serve sora-2"):
        provider.generate(request(item="i1"), tmp_path)  # no further call for that model
    assert provider.unavailable() is None  # the route itself still serves its other models
    clip = provider.generate(request(item="i2", model="sora-2-pro"), tmp_path)
    assert clip.cost_usd == pytest.approx(1.2) == sandbox.total_billed_usd()
    assert submits(sandbox) == [404, 200]  # one refused create of sora-2, one of sora-2-pro


def test_health_check_and_keys(sandbox, monkeypatch):
    sandbox.faults.api_gone = True
    assert "does not serve the Videos API (410" in closed_provider(sandbox).unavailable()
    sandbox.faults.api_gone = False
    wrong = closed_provider(sandbox)
    wrong._client = wrong._client.with_options(api_key="sk-wrong")
    why = wrong.unavailable()
    assert "refused the API key (401" in why and "sk-wrong" not in why
    assert OpenAIVideoProvider(videos_api_policy().routes["sora"], route_id="sora").unavailable() == (
        "no API key for https://api.openai.com/v1 (set OPENAI_API_KEY)")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://user:secret@127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-secret")
    unreachable = OpenAIVideoProvider(videos_api_policy().routes["sora"], route_id="sora")
    assert unreachable.endpoint == "http://127.0.0.1:9/v1"  # credentials never reach logs or ledgers
    assert "unreachable" in unreachable.unavailable()


def test_poll_deadline_leaves_the_job_to_resume(sandbox, tmp_path):
    sandbox.latency_s = 5.0
    provider = closed_provider(sandbox, poll_deadline_s=0.5)
    recorded = []
    with pytest.raises(TransientProviderError, match="poll deadline") as caught:
        provider.generate(request(), tmp_path, Journal(on_job=lambda j, n: recorded.append(j)))
    assert caught.value.job_id == recorded[0]
    sandbox.latency_s = 0.3
    clip = provider.generate(request(), tmp_path, Journal(job_ids=tuple(recorded)))
    assert clip.job_id == recorded[0] and len(creates(sandbox)) == 1


@pytest.mark.parametrize("failing", [1, 2, 3])
@pytest.mark.parametrize("long_clips", ["extend", "shots"])
def test_a_failed_call_carries_the_cost_of_the_calls_finished_before_it(sandbox, tmp_path, failing, long_clips):
    """A 24 s item with a 4 s extension is three paid calls; whichever fails, the error says what
    the calls before it billed (issue 27: a failed extension left $0.00 in the ledger for $3.60 billed)."""
    sandbox.faults.failing_submits = {failing}
    with pytest.raises(ContentRejected, match="internal_error") as caught:
        closed_provider(sandbox, long_clips=long_clips).generate(request(seconds=24.0, extend_s=4.0), tmp_path)
    assert len(sandbox.jobs) == failing  # nothing after the failed call was sent
    assert caught.value.cost_usd == pytest.approx(sandbox.total_billed_usd()) == pytest.approx(1.2 * (failing - 1))


@pytest.mark.parametrize("listing", [500, 400])
def test_a_lost_create_whose_look_up_fails_is_charged_its_estimate_never_a_refusal(sandbox, tmp_path, listing):
    """The create made a job but its answer was lost; the job list answers 500 past every retry (a
    storm) or 400 (a gateway that lists nothing): the submit stays unconfirmed, charged its estimate,
    never filed as a content refusal and never sent again (issue 27: 'ContentRejected: reconcile')."""
    from vidbatch.errors import SubmitUnconfirmed

    provider = closed_provider(sandbox)
    assert provider.unavailable() is None
    sandbox.faults.lost_reply_next, sandbox.faults.list_status = 1, listing
    with pytest.raises(SubmitUnconfirmed, match="charged its estimate \\(\\$0.40\\), not sent again") as caught:
        provider.generate(request(), tmp_path)
    assert caught.value.cost_usd == pytest.approx(0.4) and not isinstance(caught.value, ContentRejected)
    assert len(creates(sandbox)) == 1 and submits(sandbox) == [502]  # the job the lost reply made, and no other
    listed = [status for method, where, status in sandbox.requests if method == "GET" and where == "/v1/videos"]
    assert listed.count(listing) == (5 if listing == 500 else 1)  # a storm is asked again (with backoff)
