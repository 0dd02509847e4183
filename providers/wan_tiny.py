"""Tiny Wan pipelines built in code, for tests and rehearsals: the real diffusers classes with
random weights and a tokenizer built in code (no hub, no download).

Model sources (a policy's `models.NAME.source`):
  tiny               Wan 2.1: one transformer, the 2.1 VAE (z_dim 16, 8x spatial); t2v or i2v
  tiny-wan2.2-a14b   Wan 2.2 A14B: two experts (`transformer` for high noise, `transformer_2`
                     for low noise, switched at `boundary_ratio`); t2v or i2v (no image encoder)
  tiny-wan2.2-5b     Wan 2.2 TI2V-5B: one transformer, the 2.2 VAE (z_dim 48, 16x spatial), timesteps
                     per token (`expand_timesteps`); text and image input in one model
  testsrc            no model: a moving test pattern in the pipeline's shape (load tests)

Deterministic: the same weights in every process, so seeded outputs are reproducible.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TINY_SOURCES", "build_tiny_pipeline", "image_view", "TestPatternPipeline", "choose_pil_image_processor"]

TINY_SOURCES = ("tiny", "tiny-wan2.2-a14b", "tiny-wan2.2-5b")
# A word list for the tiny model's tokenizer: prompts outside it map to <unk>, which is fine for
# random weights; what matters is that the real tokenizer/encoder code path runs.
_TINY_WORDS = (
    "a the of on in at with and to from by over under city street beach sea sky night day "
    "sunset sunrise car cat dog bird people person woman man child runs walks flies drives "
    "slow fast close wide shot camera pan zoom light dark rain snow fog red blue green gold "
    "product bottle shoe phone coffee cup table kitchen studio logo text neon forest mountain"
).split()


def choose_pil_image_processor() -> None:
    """Without torchvision, make transformers' CLIP image processor the PIL one before diffusers
    imports the image-to-video pipeline.

    transformers 5 gave the name `CLIPImageProcessor` to a torchvision-backed class; on first lookup
    without torchvision it falls back to `CLIPImageProcessorPil` and warns. Our CPU installs have no
    torchvision (PyPI's does not load beside the local torch wheel), and the i2v pipeline looks the
    name up at import: we make the same choice ourselves, so there is nothing left to warn about."""
    import importlib.util
    import sys

    import transformers

    if importlib.util.find_spec("torchvision") is None:
        pil = getattr(transformers, "CLIPImageProcessorPil", None)
        if pil is not None:  # looking it up can swap the lazy module in sys.modules: set it on the current one
            current: Any = sys.modules["transformers"]
            current.CLIPImageProcessor = pil


def _text_parts():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(_TINY_WORDS)}}
    word_level = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=word_level, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=64
    )
    encoder = UMT5EncoderModel(
        UMT5Config(
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            vocab_size=len(vocab),
            relative_attention_num_buckets=8,
        )
    )
    return tokenizer, encoder


def _transformer(in_channels: int, out_channels: int, image_dim: int | None = None):
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=in_channels,
        out_channels=out_channels,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=1024,
        image_dim=image_dim,
    )


def _vae(family: str):
    from diffusers import AutoencoderKLWan

    if family == "5b":  # the Wan 2.2 VAE: 48 latent channels, 16x spatial (2x2 patches inside), 4x temporal
        return AutoencoderKLWan(
            base_dim=3,
            z_dim=48,
            in_channels=12,
            out_channels=12,
            is_residual=True,
            patch_size=2,
            latents_mean=[0.0] * 48,
            latents_std=[1.0] * 48,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            scale_factor_spatial=16,
            scale_factor_temporal=4,
            temperal_downsample=[False, True, True],
        )
    return AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )


def build_tiny_pipeline(task: str = "t2v", source: str = "tiny"):
    """A tiny Wan pipeline of `source` (TINY_SOURCES) for `task` ("t2v" or "i2v"; the 5B model's
    "ti2v" builds its text-to-video pipeline, `image_view` gives the image one)."""
    import torch

    choose_pil_image_processor()
    from diffusers import UniPCMultistepScheduler, WanImageToVideoPipeline, WanPipeline

    if source not in TINY_SOURCES:
        raise ValueError(f"no tiny Wan model {source!r} (one of {', '.join(TINY_SOURCES)})")
    torch.manual_seed(0)
    i2v = task == "i2v"
    parts: dict = {}  # built in this order, so the 2.1 model keeps the weights it always had
    if source == "tiny-wan2.2-5b":  # noise and image latents share the 48 channels; no image encoder
        parts.update(transformer=_transformer(48, 48), vae=_vae("5b"), expand_timesteps=True)
    elif source == "tiny-wan2.2-a14b":  # two experts; i2v: 16 noise + 16 image latents + 4 mask channels
        channels = 36 if i2v else 16
        parts.update(
            transformer=_transformer(channels, 16),
            transformer_2=_transformer(channels, 16),
            vae=_vae("2.1"),
            boundary_ratio=0.9 if i2v else 0.875,
        )
    else:  # Wan 2.1; i2v also takes CLIP image features
        parts.update(transformer=_transformer(36 if i2v else 16, 16, 4 if i2v else None), vae=_vae("2.1"))
    parts["tokenizer"], parts["text_encoder"] = _text_parts()
    parts["scheduler"] = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
    )
    for name in ("transformer", "transformer_2", "vae", "text_encoder"):
        if name in parts:
            parts[name].eval()  # freshly built modules train (dropout on); from_pretrained ones do not
    if not i2v:
        return WanPipeline(**parts)
    if source == "tiny":
        from transformers import CLIPVisionConfig, CLIPVisionModel

        from transformers import CLIPImageProcessor as ImageProcessor  # the PIL one without torchvision

        parts["image_encoder"] = CLIPVisionModel(
            CLIPVisionConfig(
                hidden_size=4,
                projection_dim=4,
                num_hidden_layers=2,
                num_attention_heads=2,
                image_size=32,
                intermediate_size=16,
                patch_size=1,
            )
        ).eval()
        parts["image_processor"] = ImageProcessor(crop_size=32, size=32)
    return WanImageToVideoPipeline(**parts)


def image_view(pipe):
    """The image-to-video pipeline over a loaded TI2V model's own modules (nothing loaded again):
    Wan 2.2 TI2V-5B takes text, or text and a first frame, in one model."""
    from diffusers import WanImageToVideoPipeline

    # Any: set_progress_bar_config comes from DiffusionPipeline's mixins, which its stubs do not show
    view: Any = WanImageToVideoPipeline(
        tokenizer=pipe.tokenizer,
        text_encoder=pipe.text_encoder,
        vae=pipe.vae,
        transformer=pipe.transformer,
        scheduler=pipe.scheduler,
        transformer_2=getattr(pipe, "transformer_2", None),
        boundary_ratio=pipe.config.get("boundary_ratio"),
        expand_timesteps=bool(pipe.config.get("expand_timesteps")),
    )
    view.set_progress_bar_config(disable=True)
    return view


class TestPatternPipeline:
    """`source = "testsrc"`: a moving test pattern in the pipeline's shape, no weights, no GPU.

    For rehearsals and load tests of everything around the model (scheduling, ledger, cutting,
    QA, uploads) at thousands of clips; seeded, so every clip differs and none is frozen."""

    __test__ = False
    scheduler = None

    def set_progress_bar_config(self, **_) -> None:
        pass

    def __call__(self, *, num_frames: int, height: int, width: int, generator, image=None, **_):
        import numpy as np

        seed = int(generator.initial_seed())
        x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
        y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
        frames = np.stack(
            [
                np.stack(
                    [
                        (x + t / 16 + seed % 7 / 7) % 1.0 + 0 * y,
                        (y + t / 24) % 1.0 + 0 * x,
                        np.full((height, width), (seed % 11) / 11, np.float32),
                    ],
                    axis=-1,
                )
                for t in range(num_frames)
            ]
        )
        return type("Output", (), {"frames": [frames]})()
