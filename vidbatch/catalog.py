"""The catalog contract: columns, types, and row validation. Pure: polars only.

`validate_catalog(frame)` splits a raw catalog into the rows that may be planned and a rejects
frame (row, item_id, column, value, reason). Row numbers are 0-based positions in the file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import NamedTuple, get_args

import polars as pl

from vidbatch.errors import CatalogError
from vidbatch.micros import finer_than_micros_expr
from vidbatch.names import with_name_problems
from vidbatch.route_settings import REALISMS, Resolution

__all__ = [
    "REQUIRED_COLUMNS",
    "OPTIONAL_COLUMNS",
    "REJECTS_SCHEMA",
    "validate_catalog",
    "with_fingerprints",
    "with_campaign_loras",
    "printable",
    "NAME_COLUMNS",
]

ASPECTS = ("16:9", "9:16")
RESOLUTIONS: tuple[Resolution, ...] = get_args(Resolution)  # the one list (route_settings)
MAX_PROMPT_CHARS = 32_000
FRAME_TOLERANCE_S = 1 / 16  # one Wan frame: trim points closer than this are the same cut

REQUIRED_COLUMNS: dict[str, pl.DataType] = {
    "item_id": pl.String(),
    "campaign": pl.String(),
    "prompt": pl.String(),
    "duration_s": pl.Float64(),
    "aspect": pl.String(),
    "realism": pl.String(),
}
OPTIONAL_COLUMNS: dict[str, pl.DataType] = {
    "negative_prompt": pl.String(),
    "resolution": pl.String(),
    "priority": pl.Int64(),
    "storyboard_id": pl.String(),
    "scene_index": pl.Int64(),
    "image_uri": pl.String(),
    "trim_start_s": pl.Float64(),
    "trim_end_s": pl.Float64(),
    "seed": pl.Int64(),
    "route": pl.String(),
    "max_cost_usd": pl.Float64(),
    "remix_of": pl.String(),
    "extend_s": pl.Float64(),
    "crossfade_s": pl.Float64(),
    "lora": pl.String(),
}
# Older names of catalog columns, still read: `provider` was the route an item must take.
RENAMED_COLUMNS = {"provider": "route"}
DEFAULTS = {"negative_prompt": "", "resolution": "480p", "priority": 0, "trim_start_s": 0.0}
# The fields that decide what gets generated: change one and the item is new work.
FINGERPRINT_FIELDS = (
    "prompt",
    "negative_prompt",
    "duration_s",
    "aspect",
    "realism",
    "resolution",
    "image_uri",
    "trim_start_s",
    "seed",
    "storyboard_id",
    "scene_index",
    "remix_of",
    "extend_s",
)

# Columns whose values become parts of keys and paths (or name such a value): safe names only.
NAME_COLUMNS = ("item_id", "campaign", "storyboard_id", "remix_of", "lora")

REJECTS_SCHEMA = {"row": pl.Int64, "item_id": pl.String, "column": pl.String, "value": pl.String, "reason": pl.String}


class Rule(NamedTuple):
    """One check: where `failed` holds, the row is rejected on `column` with `reason`."""

    column: str
    failed: pl.Expr
    reason: pl.Expr
    value: pl.Expr  # the value shown in the reject (the column's own, or the raw one that did not cast)

    def problems(self, frame: pl.DataFrame, where: pl.Series, order: int) -> pl.DataFrame:
        """The reject rows of this rule. Its reason is evaluated over the whole frame (window
        expressions see every row), then kept where the rule failed."""
        return frame.select(
            "row",
            "item_id",
            pl.lit(self.column).alias("column"),
            self.value.alias("value"),
            self.reason.alias("reason"),
            pl.lit(order).alias("__rule"),
        ).filter(where)


def _rule(column: str, failed: pl.Expr, reason: pl.Expr | str) -> Rule:
    return Rule(
        column,
        failed.fill_null(False),
        pl.lit(reason) if isinstance(reason, str) else reason,
        pl.col(column).cast(pl.String),
    )


def _blank(column: str) -> pl.Expr:
    return pl.col(column).is_null() | (pl.col(column).str.strip_chars() == "")


def printable(value: pl.Expr, limit: int = 60) -> pl.Expr:
    """A catalog value as a message, a reject or a ledger row may show it: control and format
    characters (NUL included) replaced by U+FFFD, at most `limit` characters."""
    shown = value.cast(pl.String).str.replace_all(r"\p{C}", "\ufffd")
    return pl.when(shown.str.len_chars() > limit).then(pl.format("{}…", shown.str.slice(0, limit))).otherwise(shown)


def _one_of(column: str, allowed: tuple[str, ...]) -> pl.Expr:
    return pl.format("must be one of {}, got '{}'", pl.lit(" | ".join(allowed)), pl.col(column))


def _rules(cast_failures: list[Rule], routes: tuple[str, ...] | None, loras: tuple[str, ...] | None) -> list[Rule]:
    n_chars = pl.col("prompt").str.len_chars()
    has_story = pl.col("storyboard_id").is_not_null()
    has_scene = pl.col("scene_index").is_not_null()
    item_count = pl.len().over("item_id")
    scene_count = pl.len().over("storyboard_id", "scene_index")
    trim_window = pl.col("trim_end_s") - pl.col("trim_start_s")
    return [
        *cast_failures,
        _rule("item_id", _blank("item_id"), "missing item_id"),
        _rule(
            "item_id",
            pl.col("item_id").is_not_null() & (item_count > 1),
            pl.format("item_id appears {} times in the catalog; it must be unique", item_count),
        ),
        _rule("campaign", _blank("campaign"), "missing campaign"),
        *[
            _rule(
                name,
                pl.col(f"__name_{name}").is_not_null(),
                pl.format("{} '{}' {}", pl.lit(name), printable(pl.col(name)), pl.col(f"__name_{name}")),
            )
            for name in NAME_COLUMNS
        ],
        _rule("prompt", _blank("prompt"), "missing prompt"),
        _rule(
            "prompt", n_chars > MAX_PROMPT_CHARS, pl.format("prompt has {} characters; at most 32000 allowed", n_chars)
        ),
        _rule("duration_s", pl.col("duration_s").is_null(), "missing duration_s"),
        _rule(
            "duration_s",
            ~pl.col("duration_s").is_finite() | (pl.col("duration_s") <= 0),
            pl.format("duration_s must be a number > 0, got {}", pl.col("duration_s")),
        ),
        _rule("aspect", ~pl.col("aspect").is_in(ASPECTS), _one_of("aspect", ASPECTS)),
        _rule("realism", ~pl.col("realism").is_in(REALISMS), _one_of("realism", REALISMS)),
        _rule("resolution", ~pl.col("resolution").is_in(RESOLUTIONS), _one_of("resolution", RESOLUTIONS)),
        _rule("storyboard_id", has_story & ~has_scene, "storyboard_id is set but scene_index is missing"),
        _rule("scene_index", has_scene & ~has_story, "scene_index is set but storyboard_id is missing"),
        _rule(
            "scene_index",
            pl.col("scene_index") < 0,
            pl.format("scene_index must be >= 0, got {}", pl.col("scene_index")),
        ),
        _rule(
            "scene_index",
            has_story & has_scene & (scene_count > 1),
            pl.format(
                "scene {} of storyboard '{}' appears {} times",
                pl.col("scene_index"),
                pl.col("storyboard_id"),
                scene_count,
            ),
        ),
        _rule(
            "trim_start_s",
            ~pl.col("trim_start_s").is_finite() | (pl.col("trim_start_s") < 0),
            pl.format("trim_start_s must be >= 0, got {}", pl.col("trim_start_s")),
        ),
        _rule(
            "trim_end_s",
            pl.col("trim_end_s").is_not_null() & ((trim_window - pl.col("duration_s")).abs() > FRAME_TOLERANCE_S),
            pl.format(
                "trim window {}–{} s lasts {} s but duration_s is {} s (trim_end_s must be trim_start_s + duration_s)",
                pl.col("trim_start_s"),
                pl.col("trim_end_s"),
                trim_window,
                pl.col("duration_s"),
            ),
        ),
        _rule("seed", pl.col("seed") < 0, pl.format("seed must be >= 0, got {}", pl.col("seed"))),
        _rule(
            "route",
            pl.col("route").is_not_null() & _blank("route"),
            "route is blank; leave it null to let the policy route the item",
        ),
        *(
            [
                _rule(
                    "route",
                    pl.col("route").is_not_null() & ~pl.col("route").is_in(routes),
                    pl.format("{} (the policy's routes)", _one_of("route", routes)),
                )
            ]
            if routes
            else []
        ),
        _rule("lora", pl.col("lora").is_not_null() & _blank("lora"), "lora is blank; leave it null for none"),
        *(
            [
                _rule(
                    "lora",
                    pl.col("lora").is_not_null() & ~_blank("lora") & ~pl.col("lora").is_in(loras),
                    pl.format(
                        "unknown LoRA '{}' (the policy's: {})", pl.col("lora"), pl.lit(" | ".join(loras) or "none")
                    ),
                )
            ]
            if loras is not None
            else []
        ),
        _rule(
            "max_cost_usd",
            pl.col("max_cost_usd").is_not_null()
            & (~pl.col("max_cost_usd").is_finite() | (pl.col("max_cost_usd") <= 0)),
            pl.format("max_cost_usd must be > 0, got {}", pl.col("max_cost_usd")),
        ),
        _rule(
            "max_cost_usd",
            pl.col("max_cost_usd").is_finite() & finer_than_micros_expr(pl.col("max_cost_usd")),
            pl.format(
                "max_cost_usd {} is finer than the ledger's unit, a micro-dollar ($0.000001)", pl.col("max_cost_usd")
            ),
        ),
        _rule(
            "image_uri",
            pl.col("image_uri").is_not_null() & _blank("image_uri"),
            "image_uri is blank; leave it null for text-to-video",
        ),
        *_remix_rules(),
        *_recut_rules(),
    ]


def _recut_rules() -> list[Rule]:
    """Extensions and storyboard transitions."""
    extend = pl.col("extend_s")
    fade = pl.col("crossfade_s")
    story = pl.col("storyboard_id").is_not_null()
    fades = fade.drop_nulls().unique().sort().cast(pl.String).str.join(", ").over("storyboard_id")
    campaigns = pl.col("campaign").n_unique().over("storyboard_id")
    finished = pl.col("duration_s") + extend.fill_null(0.0)
    return [
        _rule(
            "extend_s",
            extend.is_not_null() & (~extend.is_finite() | (extend <= 0)),
            pl.format("extend_s must be a number > 0, got {}", extend),
        ),
        _rule(
            "extend_s",
            extend.is_not_null() & pl.col("remix_of").is_not_null(),
            "a remix cannot be extended; extend its source instead",
        ),
        _rule("crossfade_s", fade.is_not_null() & ~story, "crossfade_s needs a storyboard_id"),
        _rule(
            "crossfade_s",
            fade.is_not_null() & (~fade.is_finite() | (fade < 0)),
            pl.format("crossfade_s must be >= 0, got {}", fade),
        ),
        _rule(
            "crossfade_s",
            story & (fade.drop_nulls().n_unique().over("storyboard_id") > 1),
            pl.format(
                "scenes of storyboard '{}' ask for different crossfades ({} s); give one value",
                pl.col("storyboard_id"),
                fades,
            ),
        ),
        _rule(
            "crossfade_s",
            fade.is_not_null() & (fade >= finished),
            pl.format("a crossfade of {} s does not fit in this {} s scene", fade, finished),
        ),
        _rule(
            "storyboard_id",
            story & (campaigns > 1),
            pl.format(
                "storyboard '{}' spans {} campaigns; its scenes must share one", pl.col("storyboard_id"), campaigns
            ),
        ),
    ]


def _remix_rules() -> list[Rule]:
    """A remix names an earlier item of the same campaign whose closed-route video it re-prompts."""
    remix = pl.col("remix_of").is_not_null()
    raw = pl.col("trim_start_s") + pl.col("duration_s")
    return [
        _rule("remix_of", remix & (pl.col("remix_of") == pl.col("item_id")), "an item cannot remix itself"),
        _rule(
            "remix_of",
            remix & (pl.col("remix_of") != pl.col("item_id")) & pl.col("__src_raw").is_null(),
            pl.format(
                "remix_of '{}' names no item of campaign '{}' in this catalog", pl.col("remix_of"), pl.col("campaign")
            ),
        ),
        _rule(
            "remix_of",
            remix & pl.col("__src_remix").fill_null(False),
            pl.format("remix_of '{}' is itself a remix; remix the original", pl.col("remix_of")),
        ),
        _rule("image_uri", remix & pl.col("image_uri").is_not_null(), "a remix takes no image_uri"),
        _rule(
            "duration_s",
            remix & (raw > pl.col("__src_raw") + FRAME_TOLERANCE_S),
            pl.format(
                "a remix is as long as its source ({} s); trim_start_s + duration_s is {} s", pl.col("__src_raw"), raw
            ),
        ),
    ]


def _with_remix_sources(frame: pl.DataFrame) -> pl.DataFrame:
    """Columns the remix rules read: the source's footage length and whether it is a remix too."""
    sources = (
        frame.select(
            "campaign",
            pl.col("item_id").alias("remix_of"),
            (pl.col("trim_start_s") + pl.col("duration_s")).alias("__src_raw"),
            pl.col("remix_of").is_not_null().alias("__src_remix"),
        )
        .drop_nulls("remix_of")
        .unique(["campaign", "remix_of"], keep="first")
    )
    return frame.join(sources, on=["campaign", "remix_of"], how="left", maintain_order="left")


def _typed(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[Rule]]:
    """Cast known columns to their contract types; a value that does not cast becomes a reject."""
    casts, failures = [], []
    for name, dtype in {**REQUIRED_COLUMNS, **OPTIONAL_COLUMNS}.items():
        if name not in frame.columns:
            casts.append(pl.lit(None, dtype=dtype).alias(name))
            continue
        if frame.schema[name] == dtype:
            continue
        raw = f"__raw_{name}"
        casts.append(pl.col(name).alias(raw))
        casts.append(pl.col(name).cast(dtype, strict=False).alias(name))
        failures.append(
            Rule(
                name,
                pl.col(raw).is_not_null() & pl.col(name).is_null(),
                pl.format("cannot read '{}' as {}", pl.col(raw).cast(pl.String), pl.lit(str(dtype))),
                pl.col(raw).cast(pl.String),
            )
        )
    typed = frame.with_columns(casts) if casts else frame
    defaults = [pl.col(k).fill_null(v) for k, v in DEFAULTS.items()]
    return typed.with_columns(defaults), failures


def validate_catalog(
    frame: pl.DataFrame, routes: Sequence[str] | None = None, loras: Sequence[str] | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a raw catalog into (valid rows, rejects). `routes`: the policy's route names, which a
    `route` column may name (None: any name is accepted here, and the planner defers an item
    forced to a route it does not know); `loras` likewise for the `lora` column.

    Raises CatalogError when a required column is missing. Unknown columns are kept untouched.
    The valid frame gains a 0-based `row` column; the rejects frame has one line per problem.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise CatalogError(
            f"catalog lacks required column(s): {', '.join(missing)} "
            f"(required: {', '.join(REQUIRED_COLUMNS)}; found: {', '.join(frame.columns) or 'none'})"
        )
    if "row" in frame.columns:
        raise CatalogError("catalog has a column named 'row', which vidbatch reserves for row numbers")
    frame = _current_names(frame)
    typed, cast_failures = _typed(frame.with_row_index("row").with_columns(pl.col("row").cast(pl.Int64)))
    rules = _rules(
        cast_failures, tuple(routes) if routes is not None else None, tuple(loras) if loras is not None else None
    )
    typed = with_name_problems(typed, list(NAME_COLUMNS))
    typed = _with_remix_sources(typed).with_columns(
        pl.when(pl.col("remix_of").is_not_null()).then(pl.col("__src_raw")).alias("remix_source_s")
    )
    # Which rows each rule fails, as booleans for all rules at once; reasons are formatted only for
    # the rules that failed somewhere (a clean million-row catalog formats none).
    failed = typed.select(rule.failed.alias(str(i)) for i, rule in enumerate(rules))
    parts = [rule.problems(typed, failed[str(i)], i) for i, rule in enumerate(rules) if failed[str(i)].any()]
    problems = (
        (
            pl.concat(parts).sort("row", "__rule")
            if parts
            else pl.DataFrame(schema={**REJECTS_SCHEMA, "__rule": pl.Int32})
        )
        .select(list(REJECTS_SCHEMA))
        .cast(pl.Schema(REJECTS_SCHEMA))
        .unique(
            # A value that failed to cast is null afterwards: report the cast, not "missing" too.
            ["row", "column"],
            keep="first",
            maintain_order=True,
        )
        .with_columns(
            # A hostile value never travels on whole (a NUL byte cannot even enter PostgreSQL text).
            printable(pl.col("item_id"), 200),
            printable(pl.col("value"), 200),
        )
    )
    scratch = [c for c in typed.columns if c.startswith("__")]
    valid = typed.filter(~pl.col("row").is_in(problems["row"].implode())).drop(scratch)
    return valid, problems  # in row order, each row's problems in rule order


def _current_names(frame: pl.DataFrame) -> pl.DataFrame:
    """A catalog's columns under today's names (an older name is read as its new one)."""
    for old, new in RENAMED_COLUMNS.items():
        if old in frame.columns:
            if new in frame.columns:
                raise CatalogError(f"catalog has both '{new}' and '{old}', its older name: keep '{new}' only")
            frame = frame.rename({old: new})
    return frame


def with_campaign_loras(frame: pl.DataFrame, defaults: dict[str, str]) -> pl.DataFrame:
    """Fill an empty `lora` with its campaign's default LoRA (the policy's `campaign_loras`)."""
    if not defaults:
        return frame
    default = pl.col("campaign").replace_strict(defaults, default=None, return_dtype=pl.String)
    return frame.with_columns(pl.coalesce(pl.col("lora"), default).alias("lora"))


def with_fingerprints(frame: pl.DataFrame) -> pl.DataFrame:
    """Add `fingerprint`: a stable sha256 (first 16 hex) of what decides an item's output.

    Stable across polars versions on purpose (polars' own hash is not), because the ledger keeps it.
    A `lora_id` column (the LoRA's name and content hash) joins in where set, so an item without a
    LoRA keeps the fingerprint it always had.
    """
    base = pl.concat_str([pl.col(c).cast(pl.String).fill_null("") for c in FINGERPRINT_FIELDS], separator="\x1f")
    if "lora_id" in frame.columns:
        base = (
            pl.when(pl.col("lora_id").is_null())
            .then(base)
            .otherwise(pl.concat_str([base, pl.col("lora_id")], separator="\x1f"))
        )
    joined = frame.select(base).to_series()
    digests = [hashlib.sha256(s.encode()).hexdigest()[:16] for s in joined.to_list()]
    return frame.with_columns(pl.Series("fingerprint", digests, dtype=pl.String))
