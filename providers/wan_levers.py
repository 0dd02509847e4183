"""The levers diffusers gives a loaded Wan pipeline, as vidbatch pulls them: speed profiles on every
expert (attention backend, step cache, compiled blocks, VAE tiling), LoRAs (loaded once, switched per
clip, into both experts of a Wan 2.2 A14B model; hot-swapped on compiled blocks), and a counter of
the transformer passes a profile saves.

Imports nothing heavy at import time (no polars, PyAV or prefect; torch and diffusers lazily), so
bench/wan_speed.py runs it on a GPU box that has only torch, diffusers and pydantic.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

from vidbatch.errors import ContentRejected, ProviderUnavailable, VidbatchError
from vidbatch.providers.wan_settings import LoraSource, WanProfile

__all__ = [
    "experts",
    "state",
    "apply_profile",
    "PassCounter",
    "lora_file",
    "lora_identity",
    "use_loras",
    "lora_rank",
    "HOTSWAP_SLOT",
]


def experts(pipe) -> list:
    """The pipeline's denoisers: one transformer (Wan 2.1, TI2V-5B), or two (2.2 A14B: high noise,
    low noise); none for the test pattern."""
    return [t for t in (getattr(pipe, "transformer", None), getattr(pipe, "transformer_2", None)) if t is not None]


def state(pipe) -> dict:
    """What vidbatch put on a loaded model (profile, compiled, LoRAs): kept on its first transformer,
    which the TI2V image view shares, so both views of one model agree."""
    return experts(pipe)[0].__dict__.setdefault("_vidbatch", {})


def state_of(pipe) -> dict:
    return state(pipe) if experts(pipe) else {}


def apply_profile(pipe, profile: WanProfile, lora_rank: int | None = None) -> None:
    """Put a speed profile's levers on a loaded pipeline (on both experts of a Wan 2.2 A14B model),
    taking the previous profile's off first.

    Attention backend, step cache and VAE tiling switch per call; compiled blocks stay compiled
    (compiling changes no result beyond float rounding, and recompiling would cost minutes).
    `lora_rank`: the largest rank of the route's LoRAs; given, a compiled pipeline is prepared for
    LoRA hot-swap (one adapter slot whose weights are replaced in place: no recompile per switch).
    Steps, guidance and a distilled LoRA are per call (WanProvider._render)."""
    if pipe.scheduler is None:  # the test pattern: nothing
        return
    held = state(pipe)
    if held.get("profile") == profile:
        return
    previous = held.get("profile")
    for transformer in experts(pipe):
        if transformer.is_cache_enabled:
            transformer.disable_cache()
        if previous is not None and previous.attention_backend:
            transformer.reset_attention_backend()
        if profile.attention_backend:
            try:
                transformer.set_attention_backend(profile.attention_backend)
            except (ValueError, RuntimeError, ImportError) as err:  # a backend this machine lacks
                raise ProviderUnavailable(f"attention backend {profile.attention_backend!r}: {err}") from err
        if profile.cache != "none":
            transformer.enable_cache(_cache_config(profile))
    if profile.compile and not held.get("compiled"):
        if lora_rank:  # hot-swap is set up before any adapter: those loaded uncompiled go, and come back in the slot
            if held.get("loras"):
                pipe.unload_lora_weights()
                held["loras"] = {}
            pipe.enable_lora_hotswap(target_rank=lora_rank)
            held["hotswap"] = True
        for transformer in experts(pipe):  # a step cache may hook the compiled blocks later
            transformer.compile_repeated_blocks(fullgraph=False)
        held["compiled"] = True
    (pipe.vae.enable_tiling if profile.vae_tiling else pipe.vae.disable_tiling)()
    held["profile"] = profile


class PassCounter:
    """Counts, on a loaded pipeline, transformer forward calls (of every expert) and the blocks that
    really ran (a step cache skips blocks inside a forward call): what a profile saves, counted,
    not timed."""

    def __init__(self, pipe):
        self.forwards = 0
        self.block_passes: int | None = 0  # None: not countable (compiled blocks)
        self._handles = [t.register_forward_pre_hook(lambda *_: self._add("forwards")) for t in experts(pipe)]
        if state_of(pipe).get("compiled"):  # a hook inside compiled blocks would be traced
            self.block_passes = None
            return
        # a cached block is skipped inside its hook: its feed-forward runs only when the block does
        self._handles += [
            block.ffn.register_forward_pre_hook(lambda *_: self._add("block_passes"))
            for t in experts(pipe)
            for block in t.blocks
        ]

    def _add(self, what: str) -> None:
        setattr(self, what, getattr(self, what) + 1)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def _cache_config(profile: WanProfile):
    import torch
    from diffusers import FirstBlockCacheConfig, TaylorSeerCacheConfig

    if profile.cache == "first-block":
        return FirstBlockCacheConfig(threshold=profile.cache_threshold)
    # diffusers' default identifiers match no Wan module (attn1/attn2): cache whole blocks
    return TaylorSeerCacheConfig(
        cache_interval=profile.cache_interval,
        disable_cache_before_step=3,
        taylor_factors_dtype=torch.float32,
        cache_identifiers=[r"^blocks\.\d+$"],
    )


# ---- LoRAs -----------------------------------------------------------------------------------------


def lora_file(lora: LoraSource) -> Path | None:
    """The LoRA's weights as a local file (an s3:// object is fetched once into a cache), or None for
    a hub id (diffusers resolves it). OSError/VidbatchError when it is not there or not readable."""
    if lora.source.startswith("s3://"):
        from vidbatch.storage import fetch_to

        cache = Path(os.environ.get("VIDBATCH_LORA_CACHE", Path.home() / ".cache" / "vidbatch" / "loras"))
        folder = cache / hashlib.sha256(lora.source.encode()).hexdigest()[:16]
        target = folder / "lora.safetensors"
        if not target.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            fetch_to(lora.source, folder, target.name)
        return target
    path = Path(lora.source).expanduser()
    if path.is_dir():
        path = path / (lora.weight_name or "pytorch_lora_weights.safetensors")
    if path.is_file():
        with open(path, "rb") as handle:  # readable, not only present
            handle.read(1)
        return path
    if path.is_absolute() or lora.source.startswith(".") or lora.source.count("/") != 1:
        raise FileNotFoundError(f"no LoRA file at {path}")
    return None  # "owner/name": a hub id


def lora_identity(name: str, lora: LoraSource) -> str:
    """What a LoRA adds to an item's fingerprint: its name and the first 16 hex of its file's sha256
    (a new file means new clips, the same file none); a hub id stands for itself."""
    from vidbatch.storage import sha256_of

    try:
        path = lora_file(lora)
    except (OSError, VidbatchError) as err:
        return f"{name}:unreadable ({type(err).__name__})"
    return f"{name}:hub:{lora.source}/{lora.weight_name or ''}" if path is None else f"{name}:{sha256_of(path)[:16]}"


def use_loras(pipe, loras: dict[str, LoraSource], names: list[str]) -> None:
    """Activate exactly `names` (at their scales) on a loaded pipeline, loading each adapter the first
    time it is asked for (into both experts of a Wan 2.2 A14B model); the base weights stay loaded,
    so a switch costs no model load."""
    if pipe.scheduler is None:  # the test pattern has no weights
        return
    held = state(pipe)
    if held.get("hotswap"):
        _hotswap(pipe, loras, names)
        return
    loaded = held.setdefault("loras", {})  # adapter name -> the source it was loaded from
    for name in names:
        lora = loras[name]
        if loaded.get(name) == lora:
            continue
        if name in loaded:  # same name, another file: the policy changed under a long-lived worker
            pipe.delete_adapters(name)
        _load_adapter(pipe, name, lora, adapter=name)
        loaded[name] = lora
    if not names:
        if loaded:
            pipe.disable_lora()
        return
    pipe.enable_lora()
    pipe.set_adapters(names, [loras[name].scale for name in names])


def _load_adapter(pipe, name: str, lora: LoraSource, *, adapter: str, hotswap: bool = False) -> None:
    """Load one LoRA file into the pipeline's experts as `adapter` (replacing its weights in place
    with `hotswap`); any failure is the item's, with the reason, not the worker's."""
    try:
        path = lora_file(lora)
        source = str(path.parent) if path is not None else lora.source
        weight = path.name if path is not None else lora.weight_name
        with warnings.catch_warnings():  # several adapters on one model is the design, not a slip
            warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
            pipe.load_lora_weights(source, weight_name=weight, adapter_name=adapter, hotswap=hotswap)
            if getattr(pipe, "transformer_2", None) is not None:  # the low-noise expert: its own file, or the same
                pipe.load_lora_weights(
                    source,
                    weight_name=lora.low_noise_weight_name or weight,
                    adapter_name=adapter,
                    hotswap=hotswap,
                    load_into_transformer_2=True,
                )
    except Exception as err:  # a bad file must fail its own items with a reason, not the worker
        raise ContentRejected(f"LoRA {name!r} ({lora.source}) cannot be loaded: {type(err).__name__}: {err}") from err


HOTSWAP_SLOT = "vidbatch-slot"


def _hotswap(pipe, loras: dict[str, LoraSource], names: list[str]) -> None:
    """On a compiled pipeline: one adapter slot, its weights replaced in place for each LoRA (the
    compiled graph stays valid); no LoRA is the slot at scale 0. One LoRA at a time."""
    if len(names) > 1:
        raise ContentRejected(f"a compiled profile applies one LoRA at a time, this item asks for {names}")
    in_slot = state(pipe).setdefault("loras", {})
    if names and in_slot.get(HOTSWAP_SLOT) != loras[names[0]]:
        lora = loras[names[0]]
        _load_adapter(pipe, names[0], lora, adapter=HOTSWAP_SLOT, hotswap=HOTSWAP_SLOT in in_slot)
        in_slot[HOTSWAP_SLOT] = lora
    if HOTSWAP_SLOT in in_slot:
        pipe.set_adapters([HOTSWAP_SLOT], [loras[names[0]].scale if names else 0.0])


def lora_rank(loras: dict[str, LoraSource]) -> int | None:
    """The largest rank among the LoRAs whose files are here (read from the safetensors headers)."""
    from safetensors import safe_open

    ranks = []
    for lora in loras.values():
        try:
            path = lora_file(lora)
            if path is None:
                continue
            with safe_open(str(path), framework="pt") as handle:
                ranks += [handle.get_slice(key).get_shape()[0] for key in handle.keys() if "lora_A" in key]
        except Exception:  # unreadable: its own items fail when they load it (see _load_adapter), not all
            continue
    return max(ranks) if ranks else None
