"""Hosted Wan (the `dashscope` kind) against the loopback DashScope task API: create, poll,
download; resume after a kill; lost replies reconciled; 429/5xx; FAILED tasks; expired results."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import REPO
from vidbatch.errors import (ContentRejected, ProviderError, ProviderUnavailable, SubmitUnconfirmed,
                             TransientProviderError)
from vidbatch.media import probe
from vidbatch.providers import ClipRequest, Journal
from vidbatch.providers.dashscope import DashScopeProvider, DashScopeSettings
from vidbatch.sandbox.dashscope import DashScopeSandbox

KEY = "sk-dashscope-sandbox"


@pytest.fixture
def hosted(monkeypatch):
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    with DashScopeSandbox(api_key=KEY, latency_s=0.4) as box:
        yield box


def provider(box, **settings) -> DashScopeProvider:
    return DashScopeProvider(DashScopeSettings(base_url=box.base_url, poll_interval_s=0.05, **settings),
                             route_id="wan-hosted")


def request(item="i0", prompt="a paper boat on a pond", seconds=2.0, size=(832, 480), resolution="480p", **kw):
    return ClipRequest(item_id=item, prompt=prompt, seconds=seconds, width=size[0], height=size[1],
                       model="wan-hosted", resolution=resolution, **kw)


def journal(recorded: list, ids=()) -> Journal:
    return Journal(job_ids=tuple(ids), on_job=lambda job_id, note: recorded.append(job_id))


def test_a_clip_is_created_polled_downloaded_and_billed_like_the_server(hosted, tmp_path):
    route, recorded = provider(hosted), []
    assert route.unavailable() is None and route.sandbox
    clip = route.generate(request(), tmp_path, journal(recorded))
    info = probe(clip.path)
    assert (info.width, info.height, info.duration_s) == (832, 480, 5.0)
    assert recorded == [clip.job_id] and clip.sandbox
    assert clip.cost_usd == pytest.approx(5 * 0.036) == hosted.total_billed_usd()
    assert route.estimate_cost(request()) == pytest.approx(clip.cost_usd)
    sent = [path for method, path, _ in hosted.requests if method == "POST"]
    assert len(sent) == 1  # one task, polled until it succeeded
    with pytest.raises(ContentRejected, match="longer than"):
        route.estimate_cost(request(seconds=6.0))


KILLED = """
import sys, time
from pathlib import Path
from vidbatch.providers import ClipRequest, Journal
from vidbatch.providers.dashscope import DashScopeProvider, DashScopeSettings
route = DashScopeProvider(DashScopeSettings(base_url=sys.argv[1], poll_interval_s=0.05), route_id="wan-hosted")
def keep(job_id, note):
    print(job_id, flush=True)  # the ledger's role: the task id is durable before anything waits
route.generate(ClipRequest(item_id="k", prompt="a slow tide", seconds=5.0, width=832, height=480, model="m"),
               Path(sys.argv[2]), Journal(on_job=keep))
"""


def test_a_task_is_resumed_after_its_process_was_killed_never_created_twice(hosted, tmp_path):
    hosted.latency_s = 3.0
    child = subprocess.Popen([sys.executable, "-c", KILLED, hosted.base_url, str(tmp_path)], stdout=subprocess.PIPE,
                             text=True, cwd=REPO, env={**os.environ, "DASHSCOPE_API_KEY": KEY})
    task_id = child.stdout.readline().strip()
    child.send_signal(signal.SIGKILL)  # mid-poll
    child.wait()
    clip = provider(hosted).generate(request(item="k", prompt="a slow tide", seconds=5.0), tmp_path,
                                     journal([], ids=[task_id]))
    assert clip.job_id == task_id and hosted.creates_per_prompt() == {"a slow tide": 1}
    assert clip.cost_usd == pytest.approx(hosted.total_billed_usd())


def test_a_lost_reply_is_reconciled_to_the_task_it_created(hosted, tmp_path):
    route, recorded = provider(hosted), []
    other = route.generate(request(item="o", prompt="another prompt"), tmp_path, journal([]))  # not to be adopted
    hosted.faults.lost_reply_next = 1
    clip = route.generate(request(), tmp_path, journal(recorded))
    assert recorded == [clip.job_id] != [other.job_id]
    assert hosted.creates_per_prompt() == {"another prompt": 1, "a paper boat on a pond": 1}
    assert hosted.total_billed_usd() == pytest.approx(2 * 5 * 0.036)


def test_throttling_and_server_errors_are_transient_and_a_retry_pays_once(hosted, tmp_path):
    route, recorded = provider(hosted), []
    hosted.faults.throttle_next = 1
    with pytest.raises(TransientProviderError, match="throttled"):
        route.generate(request(), tmp_path, journal(recorded))
    hosted.faults.server_error_next = 1  # the submit answers 500 before creating anything
    with pytest.raises(TransientProviderError, match="no task was created"):
        route.generate(request(), tmp_path, journal(recorded))
    assert not hosted.tasks and not recorded

    def then_fail_the_poll(job_id, note):
        recorded.append(job_id)
        hosted.faults.server_error_next = 1
    first = route.generate(request(), tmp_path, Journal(on_job=then_fail_the_poll))  # a busy poll is asked again
    assert first.job_id == recorded[-1] and ("GET", f"/api/v1/tasks/{first.job_id}", 500) in hosted.requests
    clip = route.generate(request(), tmp_path, journal(recorded, ids=recorded))  # a retry resumes the task
    assert clip.job_id == recorded[0] and len(hosted.tasks) == 1
    assert hosted.total_billed_usd() == pytest.approx(clip.cost_usd)


def test_a_failed_task_costs_nothing_and_an_expired_result_costs_what_was_billed(hosted, tmp_path):
    route = provider(hosted)
    hosted.faults.fail_next = 1
    with pytest.raises(ProviderError, match="FAILED") as failed:
        route.generate(request(), tmp_path, journal([]))
    assert failed.value.cost_usd == 0.0 == hosted.total_billed_usd() and failed.value.job_id
    hosted.faults.url_ttl_s = -1.0  # the result URL has expired by the time it is fetched
    with pytest.raises(ProviderError, match="URL expired") as lost:
        route.generate(request(item="e", prompt="expired"), tmp_path, journal([]))
    assert not isinstance(lost.value, TransientProviderError)
    assert lost.value.cost_usd == pytest.approx(hosted.total_billed_usd()) == pytest.approx(0.18)


def test_a_task_forgotten_by_the_service_is_charged_its_estimate(monkeypatch, tmp_path):
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    with DashScopeSandbox(api_key=KEY, latency_s=0.1, task_ttl_s=0.0) as box:
        with pytest.raises(ProviderError, match="unknown") as gone:
            provider(box).generate(request(), tmp_path, journal([], ids=["0b1c-never-seen"]))
    assert gone.value.cost_usd == pytest.approx(0.18)


def test_no_key_a_refused_key_and_a_gone_model_make_the_route_unavailable(hosted, tmp_path, monkeypatch):
    route = provider(hosted)
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    assert provider(hosted).unavailable() == "no API key (set DASHSCOPE_API_KEY)"
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-wrong")
    assert "refused the API key (401" in provider(hosted).unavailable()
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    hosted.faults.gone_models = {"wan2.1-t2v-turbo"}
    with pytest.raises(ProviderUnavailable, match="Model not exist"):
        route.generate(request(), tmp_path, journal([]))
    assert "model gone" in route.unavailable()
    hosted.faults.gone_models, hosted.faults.inspect = set(), "forbidden"
    with pytest.raises(ContentRejected, match="DataInspectionFailed"):
        provider(hosted).generate(request(prompt="a forbidden thing"), tmp_path, journal([]))
    assert json.dumps(hosted.billing()) == "[]"


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.fixed_dictionaries({
    "duration_s": st.sampled_from([1.0, 2.5, 4.0, 5.0, 6.0]), "trim_start_s": st.sampled_from([0.0, 0.5, 1.5]),
    "resolution": st.sampled_from(["480p", "720p"]), "aspect": st.sampled_from(["16:9", "9:16"]),
    "image_uri": st.sampled_from([None, "s3://b/ref.png"]), "extend_s": st.sampled_from([0.0, 2.0])}),
    min_size=1, max_size=20), t2v_720=st.sampled_from([None, "wan2.1-t2v-plus"]))
def test_the_planners_vectorised_prices_equal_the_providers_estimates(rows, t2v_720):
    import polars as pl

    from vidbatch.providers.dashscope import price_columns

    t2v = {"480p": "wan2.1-t2v-turbo", **({"720p": t2v_720} if t2v_720 else {})}
    config = DashScopeSettings(t2v_model=t2v, clip_seconds=[3, 5])
    frame = pl.DataFrame(rows, schema={"duration_s": pl.Float64, "trim_start_s": pl.Float64, "resolution": pl.String,
                                       "aspect": pl.String, "image_uri": pl.String, "extend_s": pl.Float64})
    priced = frame.with_columns(price_columns(config, "hosted")).to_dicts()
    route = DashScopeProvider(config, route_id="wan-hosted")
    for row in priced:
        width, height = (832, 480) if row["resolution"] == "480p" else (1280, 720)
        ask = ClipRequest(item_id="i", prompt="p", seconds=row["trim_start_s"] + row["duration_s"], width=width,
                          height=height, model="m", resolution=row["resolution"],
                          image=Path("ref.png") if row["image_uri"] else None, extend_s=row["extend_s"])
        try:
            expected = route.estimate_cost(ask)
        except ContentRejected:
            expected = None
        assert (row["hosted_cost"] is None) == (expected is None), row
        if expected is not None:
            assert row["hosted_cost"] == pytest.approx(expected)
            assert row["hosted_size"] == (f"{width}x{height}" if row["aspect"] == "16:9" else f"{height}x{width}")


def test_a_probe_answered_429_retries_and_never_switches_the_route_off(hosted, tmp_path):
    hosted.faults.read_throttle_p = 1.0  # every GET throttled while the route is checked
    route = provider(hosted)
    route.probe_backoff_s = (0.01, 0.01)
    assert route.unavailable() is None  # busy is not gone
    throttled = sum(1 for method, path, status in hosted.requests if status == 429)
    assert throttled == 3  # the first try and two retries, then inconclusive: the route stays on
    hosted.faults.read_throttle_p = 0.2  # a fifth of the polls throttled while six clips are made
    clips = [route.generate(request(item=f"i{n}", prompt=f"boat {n}"), tmp_path / f"i{n}", journal([]))
             for n in range(6) if (tmp_path / f"i{n}").mkdir() is None]
    assert len(clips) == 6 and route.unavailable() is None
    assert hosted.creates_per_prompt() == {f"boat {n}": 1 for n in range(6)}
    assert any(status == 429 for _, _, status in hosted.requests[throttled + 1:])


def test_without_a_task_list_the_route_serves_and_a_lost_reply_is_charged_not_resubmitted(hosted, tmp_path):
    hosted.faults.task_list = False
    route = provider(hosted)
    assert route.unavailable() is None and route.can_list is False
    assert route.generate(request(), tmp_path, journal([])).cost_usd == pytest.approx(5 * 0.036)
    hosted.faults.lost_reply_next = 1
    with pytest.raises(SubmitUnconfirmed, match="no task list to reconcile") as err:
        route.generate(request(item="lost", prompt="a lost reply"), tmp_path, journal([]))
    assert err.value.cost_usd == pytest.approx(route.estimate_cost(request()))  # recorded at its estimate
    assert not isinstance(err.value, TransientProviderError)  # so nothing retries it blindly
    assert hosted.creates_per_prompt()["a lost reply"] == 1
