"""The one naming rule for every name that becomes part of a key or a path. Pure: polars only.

`item_id`, `campaign`, `storyboard_id` (and `remix_of`, which names an item), LoRA names and route
names are *safe names*:

  - 1 to 128 characters, and at most 200 bytes in UTF-8 (file names are limited in bytes);
  - letters and digits of any script (Unicode categories L and N), combining marks (M) after the
    first character, and `.`, `-`, `_`;
  - not starting with `.` (so never `.` or `..`, never a hidden file);
  - no separators (`/`, `\\`), no spaces, no control or format characters (NUL included).

The rule is written once, `problem(name)`: catalog validation (`with_name_problems`, which
clears plain ASCII names in one vectorised pass first), the policy's route and LoRA names, and the
output layout, which checks every segment it builds even when validation was bypassed.
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # polars is imported where frames are checked, not by the naming rule itself
    import polars as pl

__all__ = ["MAX_NAME_CHARS", "RULE", "problem", "is_safe", "with_name_problems"]

MAX_NAME_CHARS = 128
MAX_NAME_BYTES = 200  # file systems count bytes (255 a name): room for a key's suffixes
RULE = f"letters and digits of any script, '.', '-' and '_', not starting with '.', at most {MAX_NAME_CHARS} characters"
_PUNCT = frozenset(".-_")
_ASCII = r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$"  # names every reading of the rule accepts at once


def _allowed(char: str, first: bool) -> bool:
    if char in _PUNCT:
        return not (first and char == ".")
    kind = unicodedata.category(char)[0]
    return kind in "LN" or (kind == "M" and not first)


def problem(name: object) -> str | None:
    """Why `name` is not a safe name, or None when it is."""
    if not isinstance(name, str):
        return f"must be text, got {type(name).__name__}"
    if not name:
        return "is empty"
    if len(name) > MAX_NAME_CHARS:
        return f"has {len(name)} characters; at most {MAX_NAME_CHARS} allowed"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"takes {len(name.encode('utf-8', 'surrogatepass'))} bytes in UTF-8; at most {MAX_NAME_BYTES} allowed"
    if name[0] == ".":
        return "starts with '.'"
    bad = next((c for i, c in enumerate(name) if not _allowed(c, i == 0)), None)
    if bad is not None:
        return f"contains {_shown(bad)}; use {RULE}"
    return None


def is_safe(name: object) -> bool:
    return problem(name) is None


def _shown(char: str) -> str:
    if char == "/":
        return "'/' (a path separator)"
    if char == "\\":
        return "'\\' (a path separator)"
    if unicodedata.category(char)[0] in "CZ":
        return f"the character U+{ord(char):04X} ({unicodedata.name(char, 'control')})"
    return f"'{char}'"


def with_name_problems(frame: "pl.DataFrame", columns: list[str]) -> "pl.DataFrame":
    """`frame` with a `__name_<column>` column for each of `columns`: null where the value is a safe
    name (or null), else why not. Plain ASCII names are cleared in one vectorised pass; only the
    rest (non-Latin or broken names, usually few) go through `problem`, so the rule stays one."""
    import polars as pl

    added = []
    for column in columns:
        value = pl.col(column)
        fast = value.is_null() | (value.str.contains(_ASCII) & (value.str.len_chars() <= MAX_NAME_CHARS))
        rest = frame.filter(~fast.fill_null(False)).get_column(column).unique()
        why = {name: problem(name) for name in rest.to_list()}
        added.append(
            pl.when(fast)
            .then(pl.lit(None, dtype=pl.String))
            .otherwise(value.replace_strict(why, default=None, return_dtype=pl.String))
            .alias(f"__name_{column}")
        )
    return frame.with_columns(added) if added else frame
