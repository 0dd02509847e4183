"""Opening a ledger made before revision 0005 (its route column still called `provider`): the
migration renames that column in place, so the first open of a large ledger costs about what any
open costs, whatever its size.

A SQLite ledger at revision 0004 with N rows (three routes, 28 nights) is opened once (Alembic
upgrades it to the newest revision) and then again (nothing to do): the baseline, same run. It
also checks that every row kept its route and that the measured-price lookup still uses its index.
Run: .venv/bin/python bench/ledger_migration.py [N]   (default 1000000)
"""

import sys
import tempfile
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

import vidbatch.ledger_store
from vidbatch.ledger_store import LedgerStore

FILL = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :n - 1)
INSERT INTO ledger_rows (run_id, night, item_id, campaign, fingerprint, provider, model, status, est_cost_usd,
                         cost_usd, created_at, reason, reservation_id, sandbox)
SELECT 'r' || (i / 1000), '2026-11-' || printf('%02d', 1 + i % 28), 'i' || i, 'c' || (i % 50), 'f',
       CASE i % 3 WHEN 0 THEN 'wan' WHEN 1 THEN 'sora' ELSE 'veo' END, 'm', 'settled', 0.1, 0.1,
       '2026-11-01 00:00:00', '', 'res' || i, 0 FROM n
"""
LOOKUP = "EXPLAIN QUERY PLAN SELECT gpu_s_per_shot FROM ledger_rows WHERE route = 'wan' AND price_key = 'k'"


def old_ledger(rows: int) -> str:
    """A ledger as revision 0004 left it, with `rows` settled rows."""
    url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'ledger.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(Path(vidbatch.ledger_store.__file__).parent / "migrations"))
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
        conn.execute(text(FILL), {"n": rows})
    engine.dispose()
    return url


def timed_open(url: str) -> float:
    started = time.perf_counter()
    LedgerStore(url)
    return time.perf_counter() - started


def main(rows: int) -> None:
    url = old_ledger(rows)
    migrating, plain = timed_open(url), timed_open(url)
    with create_engine(url).connect() as conn:
        routes = conn.execute(text("SELECT route, COUNT(*) FROM ledger_rows GROUP BY route ORDER BY route")).all()
        plan = " ".join(str(step[-1]) for step in conn.execute(text(LOOKUP)))
    assert sum(n for _, n in routes) == rows and all(route for route, _ in routes), routes
    assert "USING INDEX ledger_rows_price_key" in plan, plan
    print(f"rows {rows:,}; routes kept {dict(routes)}")
    print(f"| first open, migrating 0004 -> 0005 | {migrating:.3f} s | {migrating / plain:.2f}x |")
    print(f"| open, nothing to migrate (baseline) | {plain:.3f} s | 1.00x |")
    print(f"price lookup after: {plan}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
