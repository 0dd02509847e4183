"""Scoring a finished clip: frames decoded once (PyAV), a CLIP/SigLIP-family model through
transformers (loaded once per process, on the GPU when there is one) for prompt adherence and
coherence, OpenCV's optical flow for motion. An undecodable or hostile clip gets a verdict.

transformers' classes are imported from their own modules, not from the package's lazy top level:
its lazy attribute lookup is not thread-safe, and a clip is scored while the next one renders
(a GPU batch imported `transformers.CLIPConfig` half-made and failed the item).

torch and transformers are imported when a model loads, never at import time. `tiny-clip` is a
CLIP built in code with random weights and a tokenizer built in code (tests, rehearsals): its
similarities carry no meaning about the prompt, only the plumbing and the measures that need none.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from vidbatch.errors import MediaError
from vidbatch.media import decode_frames
from vidbatch.motion import motion_of
from vidbatch.scores import ClipScores, adherence_of, coherence_of, evenly

__all__ = ["TINY_CLIP", "Embedder", "embedder", "score_clip", "model_loads", "warm", "word_tokenizer"]

TINY_CLIP = "tiny-clip"
_MODELS: dict[tuple[str, str], Embedder] = {}
_FAILED: dict[tuple[str, str], str] = {}  # a model that did not load: why (not tried again in this process)
_LOCK = threading.Lock()
_LOADS = {"count": 0}


class Embedder:
    """Text and image embeddings from one loaded model."""

    def __init__(self, model: Any, tokenizer: Any, images: Any, device: str, source: str):
        self.model, self.tokenizer, self.image_processor = model, tokenizer, images
        self.device, self.source = device, source

    def text(self, prompt: str) -> np.ndarray:
        import torch

        tokens = self.tokenizer([prompt], padding="max_length", truncation=True, return_tensors="pt")
        with torch.inference_mode():
            out = self.model.get_text_features(**{k: v.to(self.device) for k, v in tokens.items()})
        return _tensor(out)[0]

    def images(self, frames: np.ndarray) -> np.ndarray:
        import torch
        from PIL import Image

        pixels = self.image_processor(images=[Image.fromarray(f) for f in frames], return_tensors="pt")
        with torch.inference_mode():
            out = self.model.get_image_features(pixel_values=pixels["pixel_values"].to(self.device))
        return _tensor(out)


def _tensor(out) -> np.ndarray:
    """transformers 5 may wrap features in an output object: the pooled embedding, as numpy."""
    value = out if not hasattr(out, "pooler_output") else out.pooler_output
    return value.detach().float().cpu().numpy()


def model_loads() -> int:
    """How many scoring models this process has loaded (a worker loads each once)."""
    return _LOADS["count"]


def embedder(source: str, device: str = "auto") -> Embedder:
    """The loaded model of `source` (a hub id, a local folder, or `tiny-clip`), once per process."""
    import torch

    where = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    with _LOCK:
        if (source, where) in _FAILED:
            raise MediaError(_FAILED[(source, where)])
        if (source, where) not in _MODELS:
            try:
                _MODELS[(source, where)] = _load(source, where)
            except MediaError as err:
                _FAILED[(source, where)] = str(err)
                raise
            _LOADS["count"] += 1
        return _MODELS[(source, where)]


def _load(source: str, device: str) -> Embedder:
    if source == TINY_CLIP:
        model, tokenizer, images = _tiny()
    else:
        from transformers.models.auto.image_processing_auto import AutoImageProcessor
        from transformers.models.auto.modeling_auto import AutoModel
        from transformers.models.auto.tokenization_auto import AutoTokenizer

        try:
            model = AutoModel.from_pretrained(source)
            tokenizer, images = AutoTokenizer.from_pretrained(source), AutoImageProcessor.from_pretrained(source)
        except (OSError, ValueError) as err:
            raise MediaError(f"cannot load the scoring model {source!r}: {str(err).splitlines()[0][:200]}") from err
    return Embedder(model.eval().to(device), tokenizer, images, device, source)


def _tiny():
    """A CLIP with random weights (seeded) and a word-level tokenizer, all built in code."""
    import torch
    from transformers.models.clip.configuration_clip import CLIPConfig
    from transformers.models.clip.modeling_clip import CLIPModel

    # transformers 5's CLIPImageProcessor wants torchvision (not in our CPU installs): its PIL twin
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil as processor

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=16,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=2,
        ),
        vision_config=dict(
            image_size=64,
            patch_size=8,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=2,
        ),
        projection_dim=16,
    )
    tokenizer = word_tokenizer("a the cat dog on beach city night day red car road sea sunset walks runs", 16)
    images = processor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})
    return CLIPModel(config), tokenizer, images


def warm(source: str, device: str = "auto") -> None:
    """Load `source` and embed one blank frame and one word with it, so every module it imports is
    imported now, in this thread (a model that cannot load is left to each clip's verdict)."""
    try:
        model = embedder(source, device)
        model.images(np.zeros((1, 64, 64, 3), np.uint8))
        model.text("warm")
    except (MediaError, ImportError, RuntimeError):
        return


def word_tokenizer(words: str, max_length: int):
    """A word-level tokenizer built in code (no hub): pad 0, unknown 1, end 2, then `words`."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers.tokenization_utils_tokenizers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<unk>": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate(dict.fromkeys(words.split()))}}
    word_level = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=word_level, pad_token="<pad>", unk_token="<unk>", eos_token="</s>", model_max_length=max_length
    )


def score_clip(path: Path, prompt: str, source: str, frames: int = 8, device: str = "auto") -> ClipScores:
    """A clip's scores: `frames` evenly spaced frames embedded with the model of `source`, against
    the prompt and one another; motion over consecutive frames. A clip that cannot be decoded gets a
    verdict and no scores."""
    try:
        decoded = decode_frames(path)
    except MediaError as err:
        return ClipScores(verdict=f"not scored: {err}")
    try:
        model = embedder(source, device)
    except MediaError as err:  # remembered: the next clips of this process do not try again
        return ClipScores(verdict=f"not scored: {err}")
    except ImportError as err:  # not remembered: the next clip tries again
        return ClipScores(verdict=f"not scored: the scoring model's code did not import ({err})")
    picked = decoded[evenly(len(decoded), frames)]
    try:
        images, text = model.images(picked), model.text(prompt)
    except RuntimeError as err:  # out of memory on the device, a model that does not fit the frames
        return ClipScores(verdict=f"not scored: {type(err).__name__}: {str(err).splitlines()[0][:200]}")
    coherence, drift, curve = coherence_of(images)
    motion, jitter = motion_of(decoded)
    return ClipScores(
        adherence=round(adherence_of(text, images), 4),
        coherence=round(coherence, 4),
        drift=round(drift, 4),
        motion=round(motion, 4),
        jitter=round(jitter, 4),
        drift_curve=curve,
        model=source,
        frames=len(picked),
    )
