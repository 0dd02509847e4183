"""The review gate in the Prefect UI: clips awaiting review shown as artifacts, a form to answer.

A run of the `review-clips/pending` deployment (a catalog run starts one per batch of its clips
awaiting review) publishes the clips (a table; contact sheets as images where the output root
gives http(s) links, e.g. presigned S3) and *suspends*: its process exits and no worker is held
while people take hours to look. The UI's Resume button shows the form (approve / reject /
undecided per clip, a note, an edited prompt, the reviewer's name); on resume a worker runs the
flow again from the top and the form's answer comes back from `suspend_flow_run`. Verdicts are
ledger rows; approved clips are delivered at once; the next catalog run stitches storyboards
whose scenes are all approved and makes rejected clips again.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from prefect.runtime import deployment, flow_run
from pydantic import Field

from vidbatch.money import usd_text
from vidbatch.ledger_store import open_ledger
from vidbatch.policy import load_policy
from vidbatch.review import ClipVerdict
from vidbatch.storage import open_root
from vidbatch.tasks.context import run_log
from vidbatch.tasks.run_labels import label_run_as
from vidbatch.review_io import PENDING_COLUMNS, decide, pending_clips

__all__ = ["review_clips", "ReviewForm"]

IMAGES = 12  # contact sheets shown as image artifacts per review run; the table lists every clip


class ReviewForm(RunInput):
    """The Resume form: one verdict per clip."""

    reviewer: str = Field("", description="your name, recorded with each verdict")
    clips: list[ClipVerdict]


def _describe(pending, root_uri: str) -> str:
    lines = [
        f"**{pending.height} clip(s) await review** under `{root_uri}`. For each: approve (delivered now), "
        "reject with a note (made again by the next run with another seed, or your edited prompt), or leave "
        "undecided.",
        "",
        "Worst first (least coherent, then least adherent to its prompt).",
        "",
        "| campaign | item | route | cost | coherence | adherence | motion | watch |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]

    def score(value) -> str:
        return "—" if value is None else f"{value:.2f}"

    for r in pending.iter_rows(named=True):
        watch = f"[watch]({r['watch']})" if r["watch"].startswith("http") else f"`{r['watch']}`"
        lines.append(
            f"| {r['campaign']} | {r['item_id']} | {r['route']} | {usd_text(r['cost_usd'])} | {score(r['coherence'])} "
            f"| {score(r['adherence'])} | {score(r['motion'])} | {watch} |"
        )
    return "\n".join(lines)


@flow(name="review-clips", flow_run_name="review {out}")
def review_clips(
    out: str, items: list[str] | None = None, campaign: str | None = None, policy_path: str | None = None
) -> dict:
    """Ask a person about the clips awaiting review (`items`: "campaign/item_id" keys, else every
    clip of `campaign`, else all, at most `[review] batch_size`) and record the answer."""
    policy = load_policy(policy_path)
    root = open_root(out)
    store = open_ledger(root, policy_url=policy.ledger.url)
    wanted = {tuple(key.split("/", 1)) for key in items or []}
    pending = pending_clips(root, store, campaign, sorted({i for _, i in wanted}) if wanted else None, urls=True)
    if wanted:
        pending = pending.filter([(c, i) in wanted for c, i in pending.select("campaign", "item_id").iter_rows()])
    pending = pending.head(policy.review.batch_size)
    log = run_log()
    if not pending.height:
        log.info("no clip awaits review here")
        return {"approved": [], "rejected": [], "delivered": [], "refused": [], "taken": [], "undelivered": []}
    campaigns = sorted(set(pending["campaign"].to_list()))
    label_run_as(
        flow_run.get_id(),
        f"review {pending.height} clip(s) of {' '.join(campaigns[:2])}"
        + (f" +{len(campaigns) - 2}" if len(campaigns) > 2 else ""),
        ["vidbatch", "review", *(f"campaign:{c}" for c in campaigns[:10])],
    )
    description = _describe(pending, root.uri)
    create_markdown_artifact(description, key="review-pending", description="clips awaiting review")
    create_table_artifact(
        pending.select(PENDING_COLUMNS).with_columns(pending["cost_usd"].round(4)).cast({"held_at": str}).to_dicts(),
        key="review-clips",
        description="clips awaiting review",
    )
    for row in pending.filter(pending["sheet"].str.starts_with("http")).head(IMAGES).iter_rows(named=True):
        create_image_artifact(image_url=row["sheet"], description=f"{row['campaign']}/{row['item_id']}")
    if deployment.id is None:
        log.warning(
            "review-clips waits for its form only as a deployment run (it suspends); here, review with "
            "`vidbatch review --out %s`",
            root.uri,
        )
        return {"approved": [], "rejected": [], "delivered": [], "refused": [], "taken": [], "undelivered": []}
    form = ReviewForm.with_initial_data(
        description=description,
        reviewer="",
        clips=[ClipVerdict(campaign=c, item_id=i) for c, i in pending.select("campaign", "item_id").iter_rows()],
    )
    answer = suspend_flow_run(wait_for_input=form, key="review", timeout=None)  # no process held meanwhile
    result = decide(root, store, answer.clips, reviewer=answer.reviewer.strip() or None, run_id=flow_run.get_id())
    for line in result["refused"] + result["taken"] + result["undelivered"]:
        log.warning("review: %s", line)
    log.info(
        "review by %s: %d approved, %d delivered, %d rejected",
        answer.reviewer or "someone",
        len(result["approved"]),
        len(result["delivered"]),
        len(result["rejected"]),
    )
    create_markdown_artifact(
        f"Reviewed by {answer.reviewer or 'someone'}: {len(result['approved'])} approved "
        f"({len(result['delivered'])} delivered), {len(result['rejected'])} rejected (made again by the next run)."
        + "".join(f"\n- {line}" for line in result["refused"] + result["taken"] + result["undelivered"]),
        key="review-result",
        description="what the review decided",
    )
    return result
