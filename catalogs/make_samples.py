"""Writes the sample catalogs in this folder (run it after changing them: python catalogs/make_samples.py)."""

from pathlib import Path

import polars as pl

HERE = Path(__file__).parent

SAMPLE = [
    # item_id, campaign, prompt, duration_s, aspect, realism, extras
    (
        "hero-beach",
        "spring-launch",
        "a woman walks on the beach at sunset, wide shot",
        4.0,
        "16:9",
        "low",
        {"extend_s": 2.0},
    ),
    (
        "hero-city",
        "spring-launch",
        "a car drives through the city at night, neon light",
        3.0,
        "16:9",
        "medium",
        {"trim_start_s": 0.5, "trim_end_s": 3.5},
    ),
    (
        "bottle-close",
        "spring-launch",
        "product bottle on a table in the studio, slow zoom",
        2.5,
        "9:16",
        "low",
        {"priority": 5, "seed": 42},
    ),
    (
        "story-1",
        "spring-launch",
        "a dog runs in the forest, camera pan",
        2.0,
        "16:9",
        "low",
        {"storyboard_id": "forest-run", "scene_index": 0, "crossfade_s": 0.5},
    ),
    (
        "story-2",
        "spring-launch",
        "a dog runs over the mountain, wide shot",
        2.0,
        "16:9",
        "low",
        {"storyboard_id": "forest-run", "scene_index": 1, "crossfade_s": 0.5},
    ),
    (
        "story-3",
        "spring-launch",
        "the dog sleeps by the fire at night, close shot",
        4.0,
        "16:9",
        "medium",
        {"storyboard_id": "forest-run", "scene_index": 2, "crossfade_s": 0.5, "route": "sora"},
    ),
    ("pour-hifi", "spring-launch", "coffee cup in a kitchen, close shot, real light", 4.0, "16:9", "high", {}),
    ("long-story", "autumn-teaser", "a bird flies over the sea at sunrise", 8.0, "16:9", "medium", {"extend_s": 4.0}),
    (
        "night-rain",
        "autumn-teaser",
        "rain on the city street at night",
        3.0,
        "9:16",
        "low",
        {"negative_prompt": "text, logo"},
    ),
    (
        "pour-hifi-night",
        "spring-launch",
        "the same coffee cup at night, candle light",
        4.0,
        "16:9",
        "high",
        {"remix_of": "pour-hifi"},
    ),
]


def sample_frame() -> pl.DataFrame:
    rows = []
    for item_id, campaign, prompt, duration, aspect, realism, extra in SAMPLE:
        rows.append(
            {
                "item_id": item_id,
                "campaign": campaign,
                "prompt": prompt,
                "duration_s": duration,
                "aspect": aspect,
                "realism": realism,
                **extra,
            }
        )
    schema = {
        "item_id": pl.String,
        "campaign": pl.String,
        "prompt": pl.String,
        "duration_s": pl.Float64,
        "aspect": pl.String,
        "realism": pl.String,
        "priority": pl.Int64,
        "seed": pl.Int64,
        "negative_prompt": pl.String,
        "storyboard_id": pl.String,
        "scene_index": pl.Int64,
        "trim_start_s": pl.Float64,
        "trim_end_s": pl.Float64,
        "remix_of": pl.String,
        "extend_s": pl.Float64,
        "crossfade_s": pl.Float64,
        "route": pl.String,
    }
    return pl.DataFrame(rows, schema=schema)


if __name__ == "__main__":
    sample_frame().write_parquet(HERE / "sample.parquet")
    print(f"wrote {HERE / 'sample.parquet'}")
