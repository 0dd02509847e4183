"""A price that holds: Wan clips whose real GPU seconds are far above the policy's figure, several in
flight, a binding campaign cap. Renders grow their reservations between denoising steps under the
caps, or stop; the caps hold on what was really spent; the highest-priority items are made first;
the next run reserves at what the ledger measured. The real tiny Wan pipeline, the real flow."""

import re

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.conftest import DEMO_POLICY, ledger_of, produce, write_catalog
from vidbatch.catalog import validate_catalog
from vidbatch.cli import app
from vidbatch.ledger import SPENT
from vidbatch.ledger_store import open_ledger
from vidbatch.measured import MARGIN
from vidbatch.planner import plan_catalog
from vidbatch.policy import load_policy
from vidbatch.providers import build_providers, priced_routes
from vidbatch.storage import open_root

pytestmark = pytest.mark.usefixtures("prefect_api")

USD_PER_HOUR = 3.6  # $0.001 per GPU second
STATED = 0.01      # GPU s per shot the policy states; a tiny clip "takes" tens of seconds on the clock below
ITEMS = 12
TICK_S = 0.5       # the GPU seconds each reading of the meter's clock advances, per render thread


class SteppedClock:
    """The meter's clock, driven by the test: each reading advances its thread's time by TICK_S, so
    a clip's GPU seconds depend on what the render did (its steps and decoded chunks), never on how
    fast or busy the machine is. Per thread: two clips in flight do not advance each other's time."""

    def __init__(self) -> None:
        import threading

        self._local = threading.local()

    def __call__(self) -> float:
        now = getattr(self._local, "now", 0.0) + TICK_S
        self._local.now = now
        return now


@pytest.fixture(autouse=True)
def _driven_clock(monkeypatch):
    from vidbatch.providers import wan

    monkeypatch.setattr(wan, "GPU_CLOCK", SteppedClock())
    monkeypatch.setattr(wan, "_SHAPES", {})  # what this process measured of each shape: on this clock only


def calibrated_cap(tmp_path) -> float:
    """The campaign's cap: 2.5 x what one 33-frame clip costs on the test's clock (the tiny Wan
    pipeline, warm), so that a few of the 17-frame clips fit and the rest wait. A shape the run's
    clips do not have: theirs stay new to the meter."""
    from vidbatch.providers import ClipRequest
    from vidbatch.providers.wan import WanProvider

    route = load_policy(DEMO_POLICY).routes["wan"].model_copy(update={"gpu_usd_per_hour": USD_PER_HOUR})
    wan = WanProvider(route, "wan")
    costs = [wan.generate(ClipRequest(item_id="warm-up", prompt="calibration", seconds=2.0, width=256, height=144,
                                      model="tiny", seed=seed), tmp_path).cost_usd for seed in (0, 1)]
    return 2.5 * costs[1]  # the second: the first call of a process pays torch's warm-up too


def policy(tmp_path, cap: float):
    text = DEMO_POLICY.read_text()
    text = re.sub(r"^campaign_usd = .*$", f"campaign_usd = {cap}", text, count=1, flags=re.M)
    text = text.replace("gpu_usd_per_hour = 2.50", f"gpu_usd_per_hour = {USD_PER_HOUR}")
    text = text.replace("concurrency = 1\n", "concurrency = 2\n", 1)  # two clips reserved and in flight at once
    text = re.sub(r'gpu_s_per_shot = \{ "480p" = [0-9.]+, "720p" = [0-9.]+ \}',
                  f'gpu_s_per_shot = {{ "480p" = {STATED}, "720p" = {STATED} }}', text)
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def test_caps_hold_on_what_renders_really_spend_and_the_next_run_reserves_what_was_measured(tmp_path):
    cap = calibrated_cap(tmp_path)
    path = policy(tmp_path, cap)
    rows = [{"item_id": f"i{n:02d}", "priority": 20 - n, "duration_s": 1.0} for n in range(ITEMS)]
    catalog = write_catalog(tmp_path / "catalog.parquet", rows)
    out = tmp_path / "out"
    summary = produce(catalog, out=str(out), policy_path=str(path))
    assert summary["state"] == "COMPLETED"  # a cap that stops clips defers them: not a failure

    ledger = ledger_of(out)
    spent = ledger.filter(pl.col("status").is_in(SPENT))["cost_usd"].sum()
    assert spent <= cap + 1e-9  # on what was spent, not on the estimates
    estimated = ledger.filter(pl.col("status") == "reserved")["est_cost_usd"]
    assert estimated.max() < 0.0001  # every clip was planned and reserved at the policy's (wrong) figure...
    raised = ledger.filter(pl.col("status") == "raised")
    assert raised.height >= 2 and raised["est_cost_usd"].max() > 10 * estimated.max()  # ...and grew as it rendered
    made = ledger.filter(pl.col("status") == "settled")["item_id"].to_list()
    assert 1 <= len(made) < ITEMS
    assert sorted(made) == [f"i{n:02d}" for n in range(len(made))]  # the highest priorities, in order
    waiting = ledger.filter(pl.col("status") == "deferred")
    assert sorted(waiting["item_id"]) == [f"i{n:02d}" for n in range(len(made), ITEMS)]  # the rest wait, none lost
    assert all("campaign cap" in reason for reason in waiting["reason"])
    stopped = ledger.filter(pl.col("status").is_in(["failed", "released"]))
    assert all(reason.startswith(("stopped at ", "not started")) for reason in stopped["reason"])
    assert stopped.filter(pl.col("status") == "failed")["cost_usd"].sum() <= spent

    # What the settled clips measured, and what the next run reserves
    measured = open_ledger(open_root(str(out))).measured()["wan"]["tiny|480p|stock"]
    per_shot = ledger.filter(pl.col("status") == "settled")["gpu_s_per_shot"]
    assert measured.clips == len(made) and measured.gpu_s_per_shot == pytest.approx(per_shot.max() * MARGIN)
    assert measured.gpu_s_per_shot > 50 * STATED
    pol = load_policy(path)
    valid, _ = validate_catalog(pl.read_parquet(catalog))
    routes = priced_routes(pol, build_providers(pol), {}, {"wan": {"tiny|480p|stock": measured}})
    plan = plan_catalog(valid, pol, routes)
    shots = 17 / 81  # one 17-frame shot of an 81-frame full shot
    assert plan["est_cost_usd"].to_list()[0] == pytest.approx(measured.gpu_s_per_shot * shots * USD_PER_HOUR / 3600)

    said = CliRunner().invoke(app, ["plan", catalog, "--policy", str(path), "--out", str(out)])
    assert said.exit_code == 0, said.output
    assert f"tiny|480p|stock: {round(measured.gpu_s_per_shot, 4):g} GPU s per shot (measured: p90 of " \
           f"{len(made)} clip(s) x {MARGIN:g})" in said.output
    routes = CliRunner().invoke(app, ["routes", "--policy", str(path), "--out", str(out), "--no-check"])
    assert routes.exit_code == 0 and "measured: p90 of" in routes.output
    assert "tiny|720p|stock: 0.01 GPU s per shot (policy; not measured yet)" in routes.output
