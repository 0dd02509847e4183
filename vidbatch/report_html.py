"""The campaign report of one run as a static HTML page. Pure: strings from frames, no IO.

The page has the run's totals, a chart of tonight's spend by campaign and route against the
caps (inline SVG, no scripts or network needed), the storyboards (stitched, or which scene blocks
them), and the run's items with their route, reason, cost, QA result and contact sheet (at most
REPORT_ITEMS of them, those needing a look first; every item is in the run's items.parquet).
Links are relative to the report's own key, so the folder works on disk and from a static S3
website alike. Templates are Jinja2 with autoescaping: catalog text is never markup.
"""

from __future__ import annotations

import functools
import posixpath

import polars as pl
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from vidbatch.money import usd_text

__all__ = ["REPORT_ITEMS", "relative_link", "spend_chart_svg", "first_to_look_at", "report_html", "drift_sparkline"]

REPORT_ITEMS = 500
PALETTE = ("#2a9d8f", "#e76f51", "#e9c46a", "#264653", "#8ab17d", "#b5838d", "#6d597a", "#f4a261")
OTHER = "#8d99ae"  # routes beyond the palette
STATUS_CLASS = {
    "finished": "ok",
    "done": "ok",
    "stitched": "ok",
    "failed": "bad",
    "blocked": "warn",
    "deferred": "warn",
    "planned": "warn",
    "awaiting_review": "warn",
}
# Which items the page shows first when it cannot show them all.
LOOK_ORDER = {"failed": 0, "awaiting_review": 1, "deferred": 2, "planned": 3, "finished": 4, "done": 5}


def relative_link(from_key: str, to_key: str | None) -> str | None:
    """A link from one key under the output root to another (None stays None)."""
    if to_key is None:
        return None
    return posixpath.relpath(to_key, posixpath.dirname(from_key))


@functools.cache
def _templates() -> Environment:
    env = Environment(
        loader=PackageLoader("vidbatch", "templates"),
        undefined=StrictUndefined,
        autoescape=select_autoescape(["html.j2", "svg.j2"], default=True),
    )
    env.filters["money"] = usd_text
    env.filters["sparkline"] = drift_sparkline
    env.filters["score"] = lambda value: "—" if value is None else f"{value:.2f}"
    return env


def drift_sparkline(curve) -> Markup:
    """A clip's drift curve (each sampled frame's cosine to the first, vidbatch.scores) as a small
    inline SVG: flat at the top for a steady clip, falling where it wanders or cuts away."""
    values = [float(v) for v in (curve if curve is not None else [])]
    if len(values) < 2:
        return Markup("")
    width, height, low = 64, 18, min(0.0, *values)
    points = " ".join(
        f"{i * width / (len(values) - 1):.1f},{(1.0 - v) / (1.0 - low or 1.0) * (height - 2) + 1:.1f}"
        for i, v in enumerate(values)
    )
    return Markup(
        f'<svg class=drift width={width} height={height} viewBox="0 0 {width} {height}" role=img '
        f'aria-label="drift curve, last {values[-1]:.2f}"><polyline fill=none stroke="#264653" '
        f'stroke-width=1.5 points="{points}"/></svg>'
    )


def spend_chart_svg(spend: pl.DataFrame, caps: dict[str, float], night_cap: float) -> str:
    """Horizontal stacked bars: tonight's actual spend per campaign (and the night) by route,
    each with a red mark at its cap. `spend`: campaign, route, actual_usd."""
    frames = [(c, spend.filter(pl.col("campaign") == c)) for c in sorted(set(caps) | set(spend["campaign"]))]
    frames.append(("all campaigns (night)", spend))
    limits = [caps.get(c, 0.0) for c, _ in frames[:-1]] + [night_cap]
    scale_max = max([*limits, *(float(f["actual_usd"].sum()) for _, f in frames), 1e-9]) * 1.05
    size = {"left": 190, "plot": 560, "bar": 22}
    size["height"] = 40 + len(frames) * (22 + 14) + 30
    size["width"] = size["left"] + size["plot"] + 140
    size["legend_y"] = size["height"] - 12
    routes = sorted(str(p) for p in spend["route"].unique().to_list())  # a route's colour is stable within a chart
    colours = {route: PALETTE[i] if i < len(PALETTE) else OTHER for i, route in enumerate(routes)}
    rows = []
    for index, ((name, frame), cap) in enumerate(zip(frames, limits)):
        x, segments = float(size["left"]), []
        for route, usd in frame.group_by("route").agg(pl.col("actual_usd").sum()).sort("route").iter_rows():
            width = size["plot"] * usd / scale_max
            segments.append({"x": x, "width": width, "colour": colours[str(route)], "route": str(route), "usd": usd})
            x += width
        rows.append(
            {
                "name": name,
                "y": 30 + index * (22 + 14),
                "segments": segments,
                "cap": cap,
                "cap_x": size["left"] + size["plot"] * cap / scale_max,
                "used": float(frame["actual_usd"].sum()),
            }
        )
    return _templates().get_template("chart.svg.j2").render(size=size, rows=rows, legend=list(colours.items()))


def first_to_look_at(items: pl.DataFrame, limit: int) -> pl.DataFrame:
    """All items in their order when they fit; else the `limit` that most need a look (failed,
    deferred, ... finished), each kind in its own order."""
    if items.height <= limit:
        return items
    rank = pl.col("status").replace_strict(LOOK_ORDER, default=len(LOOK_ORDER), return_dtype=pl.Int32)
    return items.with_row_index("_order").sort(rank, "_order").head(limit).drop("_order")


def report_html(
    summary: dict, items: pl.DataFrame, storyboards: pl.DataFrame, chart_svg: str, items_href: str = "../items.parquet"
) -> str:
    """The page. `items`: item_id, campaign, route, model, status, reason, est_cost_usd,
    cost_usd, qa, storyboard, asset_href, sheet_href. `storyboards`: campaign, storyboard_id,
    scene_count, status, reason, mode, seconds, asset_href, sheet_href. `chart_svg`: from
    `spend_chart_svg` (escaped there). `items_href`: the run's full item table, from the page."""
    shown = first_to_look_at(items, REPORT_ITEMS)
    return (
        _templates()
        .get_template("report.html.j2")
        .render(
            summary=summary,
            items=shown.iter_rows(named=True),
            storyboards=storyboards.iter_rows(named=True),
            chart=Markup(chart_svg),
            status_class=STATUS_CLASS,
            shown=shown.height,
            hidden=items.height - shown.height,
            items_href=items_href,
        )
    )
