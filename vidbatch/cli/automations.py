"""`vidbatch automations apply`: the shipped automations (infra/automations.yaml) on the Prefect
server PREFECT_API_URL names, their notifications sent through a Webhook block you name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from vidbatch.cli.common import fail, out_console

__all__ = ["automations_app"]

automations_app = typer.Typer(help="Prefect automations that notify on vidbatch's events.")
DEFAULT_FILE = Path(os.environ.get("VIDBATCH_HOME", ".")) / "infra" / "automations.yaml"


def resolve_blocks(automations: list[dict], find_block) -> list[dict]:
    """Each action's `block: <type-slug>/<name>` replaced by `block_document_id` (`find_block(slug,
    name)` -> id); every block named that cannot be found is reported at once."""
    missing, resolved = [], []
    for automation in automations:
        actions = []
        for action in automation.get("actions", []):
            action = dict(action)
            if "block" in action:
                slug, _, name = action.pop("block").partition("/")
                found = find_block(slug, name)
                if found is None:
                    missing.append(f"{slug}/{name}")
                action["block_document_id"] = str(found)
            actions.append(action)
        resolved.append({**automation, "actions": actions})
    if missing:
        raise LookupError(", ".join(sorted(set(missing))))
    return resolved


@automations_app.command()
def apply(
    file: Annotated[Path, typer.Option("--file", help="automations YAML")] = DEFAULT_FILE,
    webhook: Annotated[
        str, typer.Option("--webhook", help="the Webhook block notifications go through")
    ] = "vidbatch-alerts",
) -> None:
    """Create (or replace, by name) the automations of FILE on the Prefect server."""
    import yaml
    from prefect.client.orchestration import get_client
    from prefect.events.schemas.automations import AutomationCore
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        fail("automations live on a Prefect server: set PREFECT_API_URL (see README, Operating)", 2)
    try:
        wanted = (yaml.safe_load(file.read_text()) or {}).get("automations", [])
    except (OSError, yaml.YAMLError) as err:
        fail(f"cannot read {file}: {err}", 2)
    for automation in wanted:
        for action in automation.get("actions", []):
            if action.get("block", "").startswith("webhook/"):
                action["block"] = f"webhook/{webhook}"
    with get_client(sync_client=True) as client:

        def find_block(slug: str, name: str):
            try:
                return client.read_block_document_by_name(name, block_type_slug=slug).id
            except ObjectNotFound:
                return None

        try:
            automations = [AutomationCore.model_validate(a) for a in resolve_blocks(wanted, find_block)]
        except LookupError as err:
            fail(
                f"no block {err} on {PREFECT_API_URL.value()}: create it first (UI: Blocks > Webhook, with your "
                "Slack/Teams/incident URL)",
                2,
            )
        except ValueError as err:
            fail(f"{file} is not a valid automations file: {err}", 2)
        for automation in automations:
            for old in client.read_automations_by_name(automation.name):
                client.delete_automation(old.id)
            client.create_automation(automation)
            out_console.print(f"automation {automation.name}: {automation.description}", highlight=False)
