"""What scoring costs per clip ([qa.scores]), against making the clip, measured in the same run.

Makes N clips with the demo's tiny Wan model (the real diffusers pipeline, random weights, CPU or
GPU), then scores each finished clip as the pipeline does: decode once (PyAV), embed 8 frames and
the prompt, optical flow over consecutive frames. Prints seconds per clip for generation and for
each part of scoring, and scoring as a fraction of generation.

  --model tiny  the in-code tiny CLIP (what the demo policy uses)
  --model b32   a CLIP ViT-B/32 built in code with random weights: the configuration of the default
                policy's openai/clip-vit-base-patch32 (the same compute; no hub needed, so it runs on
                a lent GPU too)
Run: .venv/bin/python bench/score_cost.py 4 --model b32
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vidbatch import scorer  # noqa: E402
from vidbatch.media import decode_frames  # noqa: E402
from vidbatch.motion import motion_of  # noqa: E402
from vidbatch.scores import coherence_of, evenly  # noqa: E402

PROMPT = "a red car drives along a coastal road at sunset"


def b32(device: str) -> scorer.Embedder:
    """CLIP ViT-B/32's configuration (transformers' CLIPConfig defaults), random weights, and a
    word-level tokenizer built in code."""
    import torch
    from transformers.models.clip.configuration_clip import CLIPConfig
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from transformers.models.clip.modeling_clip import CLIPModel

    torch.manual_seed(0)
    tokenizer = scorer.word_tokenizer(PROMPT, 77)
    processor = CLIPImageProcessorPil
    model = CLIPModel(CLIPConfig()).eval().to(device)
    return scorer.Embedder(model, tokenizer, processor(), device, "random-clip-vit-b32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clips", type=int, nargs="?", default=4)
    parser.add_argument("--model", choices=["tiny", "b32"], default="tiny")
    args = parser.parse_args()
    import torch

    from tests.conftest import DEMO_POLICY
    from vidbatch.policy import load_policy
    from vidbatch.providers import ClipRequest
    from vidbatch.providers.wan import WanProvider

    device = "cuda" if torch.cuda.is_available() else "cpu"
    route = load_policy(DEMO_POLICY).routes["wan"].model_copy(update={"device": device})
    wan = WanProvider(route, route_id="wan")
    model = b32(device) if args.model == "b32" else scorer.embedder(scorer.TINY_CLIP, device)
    made, parts = [], {"decode": 0.0, "embed": 0.0, "motion": 0.0}
    with tempfile.TemporaryDirectory() as folder:
        ask = ClipRequest(item_id="w", prompt=PROMPT, seconds=2.0, width=256, height=144, model="tiny")
        wan.generate(ask, Path(folder))  # warm-up: the pipeline loads once per process
        model.images(decode_frames(wan.generate(ask, Path(folder)).path)[:8])  # and the scoring model
        for n in range(args.clips):
            started = time.perf_counter()
            clip = wan.generate(ClipRequest(**{**ask.__dict__, "item_id": f"c{n}", "seed": n}), Path(folder))
            made.append(time.perf_counter() - started)
            t0 = time.perf_counter()
            frames = decode_frames(clip.path)
            t1 = time.perf_counter()
            coherence_of(model.images(frames[evenly(len(frames), 8)]))
            model.text(PROMPT)
            t2 = time.perf_counter()
            motion_of(frames)
            t3 = time.perf_counter()
            parts["decode"] += t1 - t0
            parts["embed"] += t2 - t1
            parts["motion"] += t3 - t2
    gen = sum(made) / len(made)
    per = {k: v / args.clips for k, v in parts.items()}
    scoring = sum(per.values())
    print(f"device {device}; scoring model {model.source}; {args.clips} clips of 2 s (33 frames, 256x144), tiny Wan")
    print("| step | s per clip | x generation |")
    print("|---|---:|---:|")
    print(f"| generation (tiny Wan, 4 steps) | {gen:.3f} | 1.00 |")
    for name, seconds in per.items():
        print(f"| scoring: {name} | {seconds:.3f} | {seconds / gen:.3f} |")
    print(f"| scoring, all | {scoring:.3f} | {scoring / gen:.3f} |")


if __name__ == "__main__":
    main()
