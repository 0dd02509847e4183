"""Wan 2.1 and 2.2 through diffusers: text-to-video and image-to-video on a local GPU (or CPU).

Steps of one generation:
  1. resolve the model entry of the policy (hub id, local path, or an in-code tiny model);
  2. load its pipeline once per process (cached, thread-safe) and reuse it for every clip: a Wan 2.2
     A14B checkpoint brings both experts, a TI2V-5B one serves text and image items from one load;
  3. plan the shots (each 4k+1 frames, at most the model's shot length) covering the footage asked for;
  4. render each shot with its own seeded generator (image-to-video continues from the last frame),
     metered: between denoising steps the GPU time used is held against the reservation, grown
     (under the caps) before the render outgrows it; refused, the render stops, charged what it used;
  5. extend, when asked: image-to-video shots from the last frame (the route's i2v model), joined
     in memory (each shot's first frame repeats the previous last one and is dropped);
  6. encode the frames as one MP4 at the model's frame rate, price the GPU seconds actually used,
     and say what one full shot measured (the ledger keeps it; the next reservations hold it).

torch and diffusers are imported lazily, so vidbatch imports without them.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from vidbatch.errors import ContentRejected, RenderStopped, RunStopped, TransientProviderError
from vidbatch.media import write_frames
from vidbatch.micros import micros
from vidbatch.providers import Capabilities, Clip, ClipRequest, Journal, ProviderKind, RunSettings
from vidbatch.route_settings import Resolution
from vidbatch.providers.wan_levers import (
    PassCounter,
    apply_profile,
    experts,
    lora_file,
    lora_identity,
    lora_rank,
    state_of,
    use_loras,
)
from vidbatch.providers.wan_loading import _no_weights, _pipeline, pipeline_loads
from vidbatch.providers.wan_tiny import build_tiny_pipeline
from vidbatch.providers.wan_pricing import wan_estimate_usd, wan_extension_frames, wan_options, wan_shot_frames
from vidbatch.providers.wan_describe import describe
from vidbatch.providers.wan_fit import Placement, place
from vidbatch.providers.wan_settings import WanModel, WanProfile, WanRoute

__all__ = [
    "WanProvider",
    "KIND",
    "build_tiny_pipeline",
    "pipeline_loads",
    "apply_profile",
    "PassCounter",
    "lora_file",
    "lora_identity",
    "lora_rank",
    "use_loras",
    "experts",
]

# (source, task, width, height, frames, steps, guided, profile) -> (first step s, step s, after-steps s)
# of the newest call: what the next call of that shape will use, before it begins
_SHAPES: dict[tuple, tuple[float, float, float]] = {}


# ---- the meter: GPU time held against the reservation --------------------------------------------

GROWTH_MARGIN = 1.1  # a reservation grows to the projected total and a tenth more, so it grows rarely
# The clock GPU time is metered on (seconds). Money that depends on elapsed time goes through it, so
# a test drives its own (a step per call) and passes alike on an idle and on a saturated machine.
GPU_CLOCK: Callable[[], float] = time.perf_counter


class _Meter:
    """One clip's GPU time, held against what its reservation holds (the journal's) as it renders.

    Checked before each pipeline call, after each denoising step and before each chunk the VAE
    decodes: when the time used plus what comes before the next check (twice the longest step or
    chunk so far) would pass the reservation, it is grown to the projected total (from what this
    process measured of calls of the same shape), or the render stops (RenderStopped, charged the
    time used). So a clip's GPU time stays within what the caps granted it, up to one step or chunk
    of the first call of a shape in a process (nothing is known of its speed before it runs)."""

    def __init__(self, journal: Journal, usd_per_s: float, calls: list[tuple[tuple, int]]):
        self.journal, self.usd_per_s, self.calls = journal, usd_per_s, calls  # calls: (shape, steps) in order
        self.clock = GPU_CLOCK  # read per clip: a test that drives the clock sets it before the clip
        self.started = self.clock()
        self.index, self.what, self.rendering = 0, "", False
        self._call(self.clock())

    def _call(self, now: float) -> None:
        self.mark = self.call_started = self.steps_ended = now
        self.step, self.decoding = 0, False
        self.times: list[float] = []  # seconds of each denoising step so far
        self.chunks: list[float] = []  # seconds of each VAE decode chunk so far

    def used_s(self) -> float:
        return self.clock() - self.started

    def hold_clip(self) -> None:
        """Before anything renders: hold what the whole clip will take, when that is known."""
        self.index, self.what = 0, "the start"
        left = self._left_s()
        if left is not None:
            self._hold(left)

    def begin(self, index: int, what: str) -> None:
        """A pipeline call starts: hold what the rest of the clip will take, when that is known."""
        self.index, self.what, self.rendering = index, what, True
        self._call(self.clock())
        left = self._left_s()
        if left is not None:
            self._hold(left)

    def step_done(self, *_args) -> dict:
        """diffusers' `callback_on_step_end`: one denoising step ended."""
        now = self.clock()
        self.times.append(now - self.mark)
        self.mark, self.step = now, self.step + 1
        if self.step < self.calls[self.index][1]:
            self._hold(2 * max(self.times))
        else:  # the decode comes next: what it took last time, else as long as the call so far
            self.steps_ended = now
            known = _SHAPES.get(self.calls[self.index][0])
            self._hold(known[2] if known else now - self.call_started)
        return {}

    def chunk(self, *_args) -> None:
        """A forward pre-hook on the VAE decoder: the next latent frame is about to be decoded."""
        now = self.clock()
        if self.decoding:
            self.chunks.append(now - self.mark)
            self._hold(2 * max(self.chunks))
        self.decoding, self.mark = True, now

    def end(self) -> None:
        """The call returned: remember its shape's step and decode times for the next calls."""
        if self.times:
            rest = self.times[1:] or self.times
            _SHAPES[self.calls[self.index][0]] = (self.times[0], sum(rest) / len(rest), self.clock() - self.steps_ended)

    def _left_s(self) -> float | None:
        """GPU seconds the rest of the clip should take (None when a call's shape is new here)."""
        total = 0.0
        for n in range(self.index, len(self.calls)):
            shape, steps = self.calls[n]
            known = _SHAPES.get(shape)
            if known is None:
                return None
            first, step, after = known
            done = self.step if n == self.index else 0
            if done >= steps:  # decoding now
                total += max(0.0, after - (self.clock() - self.steps_ended))
            else:
                total += (first if done == 0 else 0.0) + (steps - max(done, 1)) * step + after
        return total

    def _hold(self, ahead_s: float) -> None:
        try:  # a stopped run stops rendering here too, charged the GPU time used (vidbatch.stopping)
            self.journal.pause(0.0)
        except RunStopped as err:
            spent = self.used_s() if self.rendering else 0.0
            raise RenderStopped(
                f"stopped at {self.what} after {spent:.2f} GPU s: {err}", cost_usd=spent * self.usd_per_s
            ) from None
        used = self.used_s()
        held = self.journal.reserved_usd  # inf: a resumed reservation, held to nothing more
        if held == float("inf") or micros((used + ahead_s) * self.usd_per_s) <= micros(held):  # as the ledger would
            return
        left = self._left_s()
        target = (used + max(ahead_s, left or 0.0)) * GROWTH_MARGIN * self.usd_per_s
        why = self.journal.raise_to(
            target,
            f"{self.what}: {used:.2f} GPU s used, about {left if left is not None else ahead_s:.2f} s to go",
            self.rendering,
        )
        if why:  # refused before its first pipeline call, the clip has used nothing
            if not self.rendering:
                raise RenderStopped(
                    f"not started: its reservation could not grow to the ${target:.4f} this process "
                    f"measured clips like it to take ({why}); nothing was spent"
                )
            spent = self.used_s()
            raise RenderStopped(
                f"stopped at {self.what} after {spent:.2f} GPU s: its reservation could not grow to "
                f"${target:.4f} ({why}); charged the GPU time used",
                cost_usd=spent * self.usd_per_s,
            )


class _FifoLock:
    """A lock taken in the order it is asked for (threading.Lock is not fair): clips that reserved
    in plan order render in that order, so a lower-priority clip does not over-run first."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next_ticket, self._serving = 0, 0

    def __enter__(self) -> None:
        with self._cond:
            ticket, self._next_ticket = self._next_ticket, self._next_ticket + 1
            self._cond.wait_for(lambda: self._serving == ticket)

    def __exit__(self, *_exc) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()


# ---- the provider --------------------------------------------------------------------------------


class WanProvider:
    """Wan 2.1 and 2.2 on the GPU this process runs on."""

    id: str  # the route's name in the policy
    sandbox = False
    secrets: tuple[str, ...] = ()

    def __init__(self, route: WanRoute, route_id: str):
        self.route = route
        self.id = route_id
        # one shot's length; longer items are shots joined (no footage limit); the LoRAs items may ask for
        self.capabilities = Capabilities(
            max_clip_s=max(route.shot_frames_of(m) / route.fps_of(m) for m in route.models),
            image_input=True,
            extend=True,
            loras=tuple(route.loras),
        )
        self._render_lock = _FifoLock()  # one clip at a time per process, in the order they reserved

    def unavailable(self) -> str | None:
        import importlib.util

        missing = [name for name in ("torch", "diffusers") if importlib.util.find_spec(name) is None]
        if missing:  # found, not imported: planning need not pay for importing torch
            return f"Wan route needs torch and diffusers ({missing[0]} is not installed: pip install 'vidbatch[wan]')"
        return self._no_weights

    @functools.cached_property
    def _no_weights(self) -> str | None:
        """Asked once per provider (a run's): every clip asks `unavailable()`, and this may wait on the hub."""
        return _no_weights(sorted({entry.source for entry in self.route.models.values()}))

    def estimate_cost(self, request: ClipRequest) -> float:
        return wan_estimate_usd(
            self.route,
            request.model,
            request.resolution,
            request.seconds,
            request.extend_s,
            self.route.profile_for(request.campaign),
            request.pool,
        )

    def _check(self, request: ClipRequest) -> tuple[WanModel, WanModel | None]:
        """The item's model and extension model, or ContentRejected before anything renders."""
        route = self.route
        entry = route.models.get(request.model)
        if entry is None:
            raise ContentRejected(f"unknown Wan model {request.model!r}")
        if request.width % entry.size_multiple or request.height % entry.size_multiple:
            raise ContentRejected(
                f"size {request.width}x{request.height} is not divisible by {entry.size_multiple} "
                f"(model {request.model})"
            )
        if request.lora and request.lora not in route.loras:
            raise ContentRejected(f"{self.id} has no LoRA {request.lora!r}")
        name = route.i2v_model.get(request.resolution) if request.extend_s > 0 else None
        if request.extend_s > 0 and name is None:
            raise ContentRejected(f"extending needs an image-to-video model for {request.resolution} (wan.i2v_model)")
        if name is not None and route.fps_of(name) != route.fps_of(request.model):
            raise ContentRejected(
                f"extending {request.model} ({route.fps_of(request.model)} fps) needs an "
                f"image-to-video model at the same frame rate; {name} renders "
                f"{route.fps_of(name)} fps"
            )
        profile_name = route.profile_for(request.campaign)
        profile = route.profiles[profile_name]
        for model in filter(None, [request.model, name]):
            if profile.model_loras and profile.lora_for(model) is None:  # a distilled LoRA made for other models
                raise ContentRejected(
                    f"profile {profile_name} has no LoRA for model {model} (model_loras: "
                    f"{', '.join(profile.model_loras)}); choose another profile for campaign "
                    f"{request.campaign or '(none)'}"
                )
        return entry, route.models[name] if name is not None else None

    def generate(self, request: ClipRequest, workdir: Path, journal: Journal | None = None) -> Clip:
        with self._render_lock:  # first thing: clips render in the order they reserved (plan order)
            return self._generate(request, workdir, journal)

    def _generate(self, request: ClipRequest, workdir: Path, journal: Journal | None) -> Clip:
        import numpy as np

        # 1. the model entries, checked before anything loads
        entry, extender = self._check(request)
        route, journal = self.route, journal or Journal()
        fps = route.fps_of(request.model)
        profile_name = route.profile_for(request.campaign)
        profile = route.profiles[profile_name]
        placed = self._placed(request, request.model, profile_name, request.pool)
        # 2. the pipelines, loaded once, held in GPU memory as the pool's card needs
        wants_image = entry.task == "i2v" or (entry.task == "ti2v" and request.image is not None)
        image = _load_image(request.image, request.width, request.height) if wants_image else None
        pipe = _pipeline(entry, route, placed.memory, image=wants_image, pool=placed.pool)
        # 3. shots, at the model's own frame rate and shot length
        shots = wan_shot_frames(request.seconds, fps, route.shot_frames_of(request.model))
        calls = [(self._shape(entry, profile_name, profile, request, n), self._steps(entry, profile)) for n in shots]
        extension: list[int] = []
        if extender is not None:
            extender_name = route.i2v_model[request.resolution]
            held = self._placed(request, extender_name, profile_name, placed.pool).memory
            pipe_ext = _pipeline(extender, route, held, image=True, pool=placed.pool)
            extension = wan_extension_frames(request.extend_s, fps, route.shot_frames_of(extender_name))
            calls += [
                (self._shape(extender, profile_name, profile, request, n), self._steps(extender, profile))
                for n in extension
            ]
        frames: list = []
        meter = _Meter(journal, placed.usd_per_hour / 3600, calls)
        meter.hold_clip()  # the whole clip, when this process has rendered its shapes: refused, nothing is spent
        for index, count in enumerate(shots):
            # 4. one seeded shot, metered; i2v continues from the previous shot's last frame
            start = image if index == 0 or image is None else _to_image(frames[-1][-1])
            frames.append(
                self._render(
                    pipe,
                    entry,
                    profile,
                    request.model,
                    request,
                    count,
                    request.seed + index,
                    start,
                    meter,
                    index,
                    f"shot {index + 1}/{len(shots)}",
                )
            )
        main_s = meter.used_s()
        for index, count in enumerate(extension):
            # 5. extend from the last frame; that frame comes back first and is dropped
            assert extender is not None  # extension frames come only with an extension model
            out = self._render(
                pipe_ext,
                extender,
                profile,
                extender_name,
                request,
                count,
                request.seed + len(shots) + index,
                _to_image(frames[-1][-1]),
                meter,
                len(shots) + index,
                f"extension {index + 1}/{len(extension)}",
            )
            frames.append(out[1:])
        gpu_s = meter.used_s()
        # 6. encode, price, and what one full shot measured
        path = write_frames(np.concatenate(frames), workdir / f"wan-s{int(request.seed)}.mp4", fps)
        total = sum(len(f) for f in frames)
        added = sum(len(f) for f in frames[len(shots) :])
        grown = f" + extension {added} frames (i2v from the last frame)" if extender else ""
        lora = ", ".join(filter(None, [request.lora, profile.lora_for(request.model)]))
        where = f" {placed.note()}" if placed.note() else ""
        return Clip(
            path=path,
            seconds=total / fps,
            cost_usd=gpu_s * placed.usd_per_hour / 3600,
            fps=fps,
            price_key=placed.price_key,
            gpu_s_per_shot=main_s * route.shot_frames_of(request.model) / sum(shots),
            detail=f"{len(shots)} shot(s){grown}, {total} frames at {fps} fps, seed {request.seed}, profile "
            f"{profile_name}{f', LoRA {lora}' if lora else ''}, {gpu_s:.1f} GPU s{where}, "
            f"on {socket.gethostname()}:{os.getpid()} (model loads in this process: {pipeline_loads()})",
        )

    def _placed(self, request: ClipRequest, model: str, profile: str, pool: str | None) -> Placement:
        """Where `model` renders this request: the plan's pool (or the cheapest that fits), held in
        memory as that card needs; a model that fits nowhere is refused before anything loads."""
        placed = place(self.route, model, request.resolution, profile, pool)
        if isinstance(placed, str):
            raise ContentRejected(placed)
        return placed

    @staticmethod
    def _steps(entry: WanModel, profile: WanProfile) -> int:
        return profile.steps or entry.steps

    @staticmethod
    def _shape(entry: WanModel, profile_name: str, profile: WanProfile, request: ClipRequest, frames: int) -> tuple:
        guided = (entry.guidance if profile.guidance is None else profile.guidance) > 1.0
        return (
            entry.source,
            entry.task,
            request.width,
            request.height,
            frames,
            profile.steps or entry.steps,
            guided,
            profile_name,
        )

    def _render(
        self,
        pipe,
        entry: WanModel,
        profile: WanProfile,
        model: str,
        request: ClipRequest,
        count: int,
        seed: int,
        image,
        meter: _Meter,
        index: int,
        what: str,
    ):
        """One metered pipeline call of `count` frames (an image starts an image-to-video shot)."""
        import torch

        self._set_flow_shift(pipe, entry, request.resolution)
        compiling = profile.compile and self.route.loras and not state_of(pipe).get("compiled")
        apply_profile(pipe, profile, lora_rank(self.route.loras) if compiling else None)
        use_loras(pipe, self.route.loras, [name for name in (request.lora, profile.lora_for(model)) if name])
        guidance = entry.guidance if profile.guidance is None else profile.guidance
        kwargs = dict(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt or None,
            height=request.height,
            width=request.width,
            num_frames=count,
            num_inference_steps=profile.steps or entry.steps,
            guidance_scale=guidance,
            generator=torch.Generator(device="cpu").manual_seed(seed),
            output_type="np",
            callback_on_step_end=meter.step_done,
        )
        if getattr(pipe, "config", {}).get("boundary_ratio") is not None:  # 2.2 A14B: the low-noise expert's own
            kwargs["guidance_scale_2"] = (
                guidance
                if profile.guidance is not None or entry.guidance_low_noise is None
                else entry.guidance_low_noise
            )
        if image is not None:
            kwargs["image"] = image
        decoder = getattr(getattr(pipe, "vae", None), "decoder", None)  # the test pattern has none
        hook = decoder.register_forward_pre_hook(meter.chunk) if decoder is not None else None
        try:
            meter.begin(index, what)
            frames = pipe(**kwargs).frames[0]
        except torch.cuda.OutOfMemoryError as err:
            torch.cuda.empty_cache()
            raise TransientProviderError(
                f"GPU out of memory on {what}", cost_usd=meter.used_s() * meter.usd_per_s
            ) from err
        finally:
            if hook is not None:
                hook.remove()
        meter.end()
        return frames

    @staticmethod
    def _set_flow_shift(pipe, entry: WanModel, resolution: Resolution) -> None:
        shift = entry.flow_shift.get(resolution)
        if pipe.scheduler is None:  # the test pattern has no scheduler
            return
        if shift is not None and pipe.scheduler.config.get("flow_shift") != shift:
            pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, flow_shift=shift)


def _to_image(frame):
    from PIL import Image

    return Image.fromarray((frame.clip(0, 1) * 255).round().astype("uint8"))


def _load_image(path: Path | None, width: int, height: int):
    from PIL import Image

    if path is None:
        raise ContentRejected("image-to-video model chosen but the item has no image_uri")
    try:
        return Image.open(path).convert("RGB").resize((width, height))
    except OSError as err:
        raise ContentRejected(f"cannot read image {path.name}: {err}") from err


KIND = ProviderKind(
    name="wan-diffusers",
    settings=WanRoute,
    build=lambda route, settings: WanProvider(settings, route),
    description="Wan 2.1 and 2.2 open weights, run by diffusers on this machine's (or a GPU worker's) accelerator",
    describe=describe,
    price=wan_options,
    measured=lambda settings, figures: settings.with_measured(figures),
    run_settings=lambda s: RunSettings(
        concurrency=s.concurrency,
        workers=s.workers,
        deployment=s.deployment,
        pool_deployments={pool: s.deployment_of(pool) for pool in s.pool_table()},
        batch_size=s.batch_size,
        batch_attempts=s.batch_attempts,
        loras=dict(s.loras),
        campaign_loras=dict(s.campaign_loras),
        lora_identity=lora_identity,
    ),
)
