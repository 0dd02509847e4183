"""The campaign report of one run as a static HTML page. Pure: strings from frames, no IO.

The page has the run's totals, a chart of tonight's spend by campaign and provider against the
caps (inline SVG, no scripts or network needed), the storyboards (stitched, or which scene blocks
them), and every item with its route, reason, cost, QA result and contact sheet. Links are
relative to the report's own key, so the folder works on disk and from a static S3 website alike.
"""

from __future__ import annotations

import posixpath
from html import escape

import polars as pl

__all__ = ["REPORT_KEY", "relative_link", "spend_chart_svg", "report_html"]

REPORT_KEY = "runs/{run_id}/report/index.html"
COLOURS = {"wan": "#2a9d8f", "sora": "#e76f51"}
OTHER = "#8d99ae"
STATUS_CLASS = {"finished": "ok", "done": "ok", "stitched": "ok", "failed": "bad", "blocked": "warn",
                "deferred": "warn", "planned": "warn"}


def relative_link(from_key: str, to_key: str | None) -> str | None:
    """A link from one key under the output root to another (None stays None)."""
    if to_key is None:
        return None
    return posixpath.relpath(to_key, posixpath.dirname(from_key))


def _money(usd: float | None) -> str:
    return "—" if usd is None else f"${usd:,.2f}" if abs(usd) >= 0.01 or usd == 0 else f"${usd:.4f}"


def spend_chart_svg(spend: pl.DataFrame, caps: dict[str, float], night_cap: float) -> str:
    """Horizontal stacked bars: tonight's actual spend per campaign (and the night) by provider,
    each with a red mark at its cap. `spend`: campaign, provider, actual_usd."""
    rows = [(c, spend.filter(pl.col("campaign") == c)) for c in sorted(set(caps) | set(spend["campaign"]))]
    rows.append(("all campaigns (night)", spend))
    limits = [caps.get(c, 0.0) for c, _ in rows[:-1]] + [night_cap]
    scale_max = max([*limits, *(float(f["actual_usd"].sum()) for _, f in rows), 1e-9]) * 1.05
    left, width, bar, gap = 190, 560, 22, 14
    height = 40 + len(rows) * (bar + gap) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{left + width + 140}" '
             f'height="{height}" aria-label="spend by campaign and provider against the caps">']
    for index, ((name, frame), cap) in enumerate(zip(rows, limits)):
        y = 30 + index * (bar + gap)
        parts.append(f'<text x="{left - 8}" y="{y + bar * 0.7}" text-anchor="end">{escape(name)}</text>')
        x = float(left)
        for provider, usd in frame.group_by("provider").agg(pl.col("actual_usd").sum()).sort("provider").iter_rows():
            w = width * usd / scale_max
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar}" '
                         f'fill="{COLOURS.get(provider, OTHER)}"><title>{escape(str(provider))}: '
                         f'{_money(usd)}</title></rect>')
            x += w
        cap_x = left + width * cap / scale_max
        parts.append(f'<line x1="{cap_x:.1f}" x2="{cap_x:.1f}" y1="{y - 4}" y2="{y + bar + 4}" stroke="#d62828" '
                     f'stroke-width="3"><title>cap {_money(cap)}</title></line>')
        used = float(frame["actual_usd"].sum())
        parts.append(f'<text x="{left + width + 8}" y="{y + bar * 0.7}">{_money(used)} of {_money(cap)}</text>')
    legend_y = height - 12
    for n, (provider, colour) in enumerate(COLOURS.items()):
        parts.append(f'<rect x="{left + n * 110}" y="{legend_y - 10}" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{left + n * 110 + 18}" y="{legend_y}">{provider}</text>')
    parts.append(f'<line x1="{left + 230}" x2="{left + 230}" y1="{legend_y - 12}" y2="{legend_y + 2}" '
                 f'stroke="#d62828" stroke-width="3"/><text x="{left + 238}" y="{legend_y}">cap</text></svg>')
    return "".join(parts)


def _badge(status: str) -> str:
    return f'<span class="badge {STATUS_CLASS.get(status, "")}">{escape(status)}</span>'


def _link(href: str | None, text: str) -> str:
    return f'<a href="{escape(href)}">{escape(text)}</a>' if href else escape(text)


def _length(seconds: float | None) -> str:
    return f"{seconds:.2f} s" if seconds else "not stitched"


def _img(src: str | None, alt: str) -> str:
    return f'<img src="{escape(src)}" alt="{escape(alt)}" loading="eager">' if src else ""


def report_html(summary: dict, items: pl.DataFrame, storyboards: pl.DataFrame, chart_svg: str) -> str:
    """The page. `items`: item_id, campaign, provider, model, status, reason, est_cost_usd,
    cost_usd, qa, storyboard, asset_href, sheet_href. `storyboards`: campaign, storyboard_id,
    scene_count, status, reason, mode, seconds, asset_href, sheet_href."""
    counts = " · ".join(f"{escape(k)}: {v}" for k, v in sorted(summary["status_counts"].items()))
    head = (f"<h1>vidbatch run {escape(summary['run_id'][:8])}</h1>"
            f"<p class=meta>night {escape(summary['night'])} · output {escape(summary['out'])}"
            f"{' · <b>sandbox</b>' if summary.get('sandbox') else ''}</p>"
            f"<p class=totals>{counts} · estimated {_money(summary['est_cost_usd'])} · "
            f"actual {_money(summary['cost_usd'])}</p>")
    board_rows = "".join(
        f"<tr><td>{escape(r['storyboard_id'])}</td><td>{escape(r['campaign'])}</td><td>{r['scene_count']}</td>"
        f"<td>{_badge(r['status'])}</td><td>{escape(r['reason'] or '')}"
        f"{'<br><small>' + escape(r['mode']) + '</small>' if r['mode'] else ''}</td>"
        f"<td>{_link(r['asset_href'], _length(r['seconds']))}</td>"
        f"<td class=sheet>{_img(r['sheet_href'], 'storyboard ' + r['storyboard_id'])}</td></tr>"
        for r in storyboards.iter_rows(named=True))
    item_rows = "".join(
        f"<tr><td>{_link(r['asset_href'], r['item_id'])}</td><td>{escape(r['campaign'])}</td>"
        f"<td>{escape(r['storyboard'] or '')}</td><td>{escape(r['provider'] or '—')}<br>"
        f"<small>{escape(r['model'] or '')}</small></td><td>{_badge(r['status'])}</td>"
        f"<td>{_money(r['est_cost_usd'])}</td><td>{_money(r['cost_usd'])}</td><td>{escape(r['qa'] or '—')}</td>"
        f"<td class=reason>{escape(r['reason'] or '')}</td>"
        f"<td class=sheet>{_img(r['sheet_href'], 'contact sheet ' + r['item_id'])}</td></tr>"
        for r in items.iter_rows(named=True))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vidbatch run {escape(summary['run_id'][:8])}</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2433}}h1{{margin:0 0 4px}}
.meta{{color:#5c677d;margin:0}}.totals{{font-size:16px}}table{{border-collapse:collapse;width:100%;margin:8px 0 28px}}
th,td{{border-bottom:1px solid #e3e6ec;padding:6px 8px;text-align:left;vertical-align:top}}th{{background:#f4f6f9}}
.badge{{padding:1px 8px;border-radius:9px;background:#e3e6ec}}.ok{{background:#cdeccd}}.bad{{background:#f8c9c4}}
.warn{{background:#fbe7b5}}.sheet img{{max-width:420px;display:block}}.reason{{max-width:380px}}
small{{color:#5c677d}}.chart text{{font:12px system-ui,sans-serif}}
</style></head>
<body>
{head}
<h2>Spend tonight against the caps</h2>
{chart_svg}
<h2>Storyboards</h2>
<table id=storyboards><tr><th>storyboard</th><th>campaign</th><th>scenes</th><th>status</th><th>why</th>
<th>video</th><th>contact sheet</th></tr>{board_rows or '<tr><td colspan=7>none in this catalog</td></tr>'}</table>
<h2>Clips</h2>
<table id=clips><tr><th>item</th><th>campaign</th><th>storyboard</th><th>route</th><th>status</th><th>est.</th>
<th>actual</th><th>QA</th><th>reason</th><th>contact sheet</th></tr>{item_rows}</table>
<script>
window.addEventListener("load", () => {{
  const images = [...document.images];
  document.body.dataset.images = images.length;
  document.body.dataset.broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).length;
}});
</script>
</body></html>
"""
