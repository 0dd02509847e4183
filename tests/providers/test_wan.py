"""The Wan route with tiny components built in code: the real diffusers pipeline, on CPU."""

from pathlib import Path

import pytest

from vidbatch.errors import ContentRejected
from vidbatch.media import probe, sha256_of
from vidbatch.policy import load_policy
from vidbatch.providers import ClipRequest
from vidbatch.providers import wan_loading as wan_module
from vidbatch.providers.wan import WanProvider, build_tiny_pipeline, pipeline_loads
from tests.conftest import DEMO_POLICY

ROUTE = load_policy(DEMO_POLICY).routes["wan"]


def request(**overrides) -> ClipRequest:
    base = dict(item_id="w1", prompt="a dog runs on the beach", seconds=1.0, width=256, height=144,
                model="tiny", seed=7)
    return ClipRequest(**{**base, **overrides})


def test_generates_a_16fps_mp4_of_the_asked_size_and_length(tmp_path):
    clip = WanProvider(ROUTE, route_id="wan").generate(request(), tmp_path)
    info = probe(clip.path)
    assert (info.width, info.height, info.fps) == (256, 144, 16.0)
    assert info.frames == 17 and clip.seconds == 17 / 16
    assert clip.cost_usd > 0 and "seed 7" in clip.detail


def test_seed_is_honoured(tmp_path):
    provider = WanProvider(ROUTE, route_id="wan")
    a = provider.generate(request(item_id="a"), tmp_path)
    b = provider.generate(request(item_id="b"), tmp_path)
    c = provider.generate(request(item_id="c", seed=8), tmp_path)
    assert sha256_of(a.path) == sha256_of(b.path)
    assert sha256_of(a.path) != sha256_of(c.path)


def test_long_items_are_several_shots_joined(tmp_path):
    clip = WanProvider(ROUTE, route_id="wan").generate(request(seconds=6.0), tmp_path)
    assert probe(clip.path).frames == 2 * 49 and "2 shot(s)" in clip.detail


def test_pipeline_is_loaded_once_per_process(tmp_path):
    provider = WanProvider(ROUTE, route_id="wan")
    provider.generate(request(item_id="x"), tmp_path)
    before = pipeline_loads()
    WanProvider(ROUTE, route_id="wan").generate(request(item_id="y"), tmp_path)
    assert pipeline_loads() == before


def test_real_loading_code_reads_a_saved_checkpoint(tmp_path, monkeypatch):
    """from_pretrained on a local path, as production does with a hub id or a mirror."""
    checkpoint = tmp_path / "wan-tiny"
    build_tiny_pipeline().save_pretrained(checkpoint)
    entry = ROUTE.models["tiny"].model_copy(update={"source": str(checkpoint)})
    route = ROUTE.model_copy(update={"models": {"tiny": entry}})
    monkeypatch.setattr(wan_module, "_PIPELINES", {})
    clip = WanProvider(route, route_id="wan").generate(request(), tmp_path)
    reference = WanProvider(ROUTE, route_id="wan").generate(request(item_id="ref"), tmp_path)
    assert probe(clip.path).frames == 17
    assert sha256_of(clip.path) == sha256_of(reference.path)  # same weights, same seed, same clip


def test_bad_size_is_rejected_before_any_gpu_work(tmp_path):
    with pytest.raises(ContentRejected, match="not divisible by 16"):
        WanProvider(ROUTE, route_id="wan").generate(request(width=250), tmp_path)
    assert not list(Path(tmp_path).glob("*.mp4"))


class Spy:
    """The real pipeline, watched: records what each call was given and what it returned."""

    def __init__(self, pipe):
        self.pipe, self.calls, self.outputs = pipe, [], []
        self.scheduler, self.transformer, self.vae = pipe.scheduler, pipe.transformer, pipe.vae

    def __getattr__(self, name):  # everything else (LoRA calls, config) is the real pipeline's
        return getattr(self.pipe, name)

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        self.outputs.append(self.pipe(**kwargs))
        return self.outputs[-1]


def test_extension_continues_from_the_last_frame_with_the_i2v_model(tmp_path, monkeypatch):
    import numpy as np

    provider = WanProvider(ROUTE, route_id="wan")
    spies = {}
    for name in (ROUTE.t2v_model["480p"], ROUTE.i2v_model["480p"]):
        entry = ROUTE.models[name]
        spies[entry.task] = Spy(wan_module._pipeline(entry, ROUTE))
        monkeypatch.setitem(wan_module._PIPELINES, (entry.source, entry.task, "cpu"), spies[entry.task])
    clip = provider.generate(request(extend_s=1.0), tmp_path)
    info = probe(clip.path)
    assert info.frames == 17 + 16 and clip.seconds == 33 / 16  # a 17-frame i2v shot, its first frame dropped
    assert "+ extension 16 frames (i2v from the last frame)" in clip.detail
    [call] = spies["i2v"].calls
    assert call["num_frames"] == 17
    last_rendered = (spies["t2v"].outputs[-1].frames[0][-1].clip(0, 1) * 255).round().astype(np.uint8)
    assert np.array_equal(np.asarray(call["image"]), last_rendered)
    assert provider.estimate_cost(request(extend_s=1.0)) > provider.estimate_cost(request())
    assert clip.cost_usd > 0


def test_extension_without_an_i2v_model_is_refused_before_rendering(tmp_path):
    route = ROUTE.model_copy(update={"i2v_model": {}})
    with pytest.raises(ContentRejected, match="extending needs an image-to-video model"):
        WanProvider(route, route_id="wan").generate(request(extend_s=1.0), tmp_path)


def test_testsrc_source_renders_a_moving_pattern_without_weights(tmp_path):
    from vidbatch.media import detect_defects

    route = ROUTE.model_copy(update={"models": {**ROUTE.models,
                                                "tiny": ROUTE.models["tiny"].model_copy(update={"source": "testsrc"})}})
    clip = WanProvider(route, route_id="wan").generate(request(seconds=2.0, extend_s=1.0), tmp_path)
    info = probe(clip.path)
    assert (info.width, info.height, info.frames) == (256, 144, 33 + 16)  # extension still runs the i2v model
    assert detect_defects(clip.path, black_min_s=0.5, black_pixel_threshold=0.1, black_picture_ratio=0.98,
                          freeze_min_s=0.5, freeze_noise_db=-60.0) == []


def test_loading_prints_nothing_a_user_cannot_act_on(tmp_path):
    """The in-code preset in bf16 keeps diffusers' float32 modules (no cast warning), and the i2v
    pipeline gets the PIL image processor without transformers' torchvision notice."""
    import subprocess
    import sys

    code = ("import torch\n"
            "from vidbatch.policy import load_policy\n"
            "from vidbatch.providers.wan_loading import _load\n"
            f"route = load_policy({str(DEMO_POLICY)!r}).routes['wan']\n"
            "pipe = _load(route.models['tiny-i2v'], 'cpu', torch.bfloat16)\n"
            "t = pipe.transformer\n"
            "print(t.scale_shift_table.dtype, t.blocks[0].attn1.to_q.weight.dtype, pipe.vae.dtype,\n"
            "      type(pipe.image_processor).__name__)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["torch.float32", "torch.bfloat16", "torch.float32", "CLIPImageProcessorPil"]
    assert result.stderr == ""


def test_a_stopped_run_stops_a_render_between_steps_charged_the_gpu_time_used(tmp_path):
    """Issue 28: a stop reaches a Wan render at its next denoising step (the meter's check), which
    ends it RenderStopped with the time it used, instead of rendering on after the run has stopped."""
    from vidbatch.errors import RenderStopped
    from vidbatch.providers import Journal
    from vidbatch.stopping import RunStop, StopCause

    stop, steps = RunStop(), []

    def pause(seconds: float) -> None:  # the first check passes; the run stops during the first step
        steps.append(seconds)
        if len(steps) == 2:
            stop.request(StopCause.SIGNAL, "SIGTERM")
        stop.pause(seconds)

    with pytest.raises(RenderStopped, match=r"the run stopped \(signal: SIGTERM\)") as stopped:
        WanProvider(ROUTE, route_id="wan").generate(request(), tmp_path, Journal(pause=pause))
    assert stopped.value.cost_usd > 0 and len(steps) == 2  # stopped at the check after the stop, not later
