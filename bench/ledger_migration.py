"""Opening a ledger made by an older vidbatch: what its migrations cost on a large ledger.

Part 1 (SQLite): a ledger at revision 0004 with N rows (three routes, 28 nights) is opened once
(Alembic upgrades it to the newest revision: 0005 renames a column in the catalogue, 0009 turns
its Float money into integer micro-dollars) and then again (nothing to do), same run. It checks
that every row kept its route and that the measured-price lookup still uses its index.
Part 2 (SQLite, and PostgreSQL when its binaries are installed): a ledger at 0008 with N rows
(money in Float: amounts whose float sum drifts) upgraded to 0009 alone, against rewriting the same
table once (`CREATE TABLE ... AS SELECT *`), the least any in-place type change costs, same run.
It checks the money: every row holds its amount in micro-dollars, and the sum is exact.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.postgres_cluster import new_database, postgres_binaries, throwaway_postgres  # noqa: E402

MIGRATIONS = Path(vidbatch.ledger_store.__file__).parent / "migrations"
FILL = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :n - 1)
INSERT INTO ledger_rows (run_id, night, item_id, campaign, fingerprint, {route}, model, status, est_cost_usd,
                         cost_usd, created_at, reason, reservation_id, sandbox)
SELECT 'r' || (i / 1000), '2026-11-' || printf('%02d', 1 + i % 28), 'i' || i, 'c' || (i % 50), 'f',
       CASE i % 3 WHEN 0 THEN 'wan' WHEN 1 THEN 'sora' ELSE 'veo' END, 'm', 'settled', 0.1, 0.1,
       '2026-11-01 00:00:00', '', 'res' || i, 0 FROM n
"""
FILL_PG = """
INSERT INTO ledger_rows (run_id, night, item_id, campaign, fingerprint, route, model, status, est_cost_usd,
                         cost_usd, created_at, reason, reservation_id, sandbox)
SELECT 'r' || (i / 1000), '2026-11-' || lpad((1 + i % 28)::text, 2, '0'), 'i' || i, 'c' || (i % 50), 'f',
       CASE i % 3 WHEN 0 THEN 'wan' WHEN 1 THEN 'sora' ELSE 'veo' END, 'm', 'settled', 0.1, 0.1,
       '2026-11-01 00:00:00+00', '', 'res' || i, false FROM generate_series(0, :n - 1) AS i
"""
LOOKUP = "EXPLAIN QUERY PLAN SELECT gpu_s_per_shot FROM ledger_rows WHERE route = 'wan' AND price_key = 'k'"


def _config(conn) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def old_ledger(url: str, revision: str, rows: int) -> str:
    """A ledger as `revision` left it, with `rows` settled rows of $0.10."""
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(_config(conn), revision)
        fill = FILL_PG if engine.dialect.name == "postgresql" else FILL.format(
            route="provider" if revision < "0005" else "route")
        conn.execute(text(fill), {"n": rows})
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE ledger_rows"))
    engine.dispose()
    return url


def sqlite_url() -> str:
    return f"sqlite:///{Path(tempfile.mkdtemp()) / 'ledger.db'}"


def timed_open(url: str) -> float:
    started = time.perf_counter()
    LedgerStore(url).engine.dispose()
    return time.perf_counter() - started


def first_open(rows: int) -> None:
    url = old_ledger(sqlite_url(), "0004", rows)
    migrating, plain = timed_open(url), timed_open(url)
    with create_engine(url).connect() as conn:
        routes = conn.execute(text("SELECT route, COUNT(*) FROM ledger_rows GROUP BY route ORDER BY route")).all()
        plan = " ".join(str(step[-1]) for step in conn.execute(text(LOOKUP)))
    assert sum(n for _, n in routes) == rows and all(route for route, _ in routes), routes
    assert "USING INDEX ledger_rows_price_key" in plan, plan
    print(f"rows {rows:,}; routes kept {dict(routes)}")
    print(f"| SQLite | first open, migrating 0004 -> head | {migrating:.3f} s | {migrating / plain:.2f}x |")
    print(f"| SQLite | open, nothing to migrate (baseline) | {plain:.3f} s | 1.00x |")
    print(f"price lookup after: {plan}")


def integer_money(kind: str, url: str, rows: int) -> None:
    """0008 -> 0009 on `rows` rows, against one rewrite of the table (same database, same run)."""
    old_ledger(url, "0008", rows)
    engine = create_engine(url)
    with engine.begin() as conn:
        drift = conn.execute(text("SELECT SUM(cost_usd) FROM ledger_rows")).scalar()
        started = time.perf_counter()
        conn.execute(text("CREATE TABLE ledger_copy AS SELECT * FROM ledger_rows"))
        copy_s = time.perf_counter() - started
        conn.execute(text("DROP TABLE ledger_copy"))
    with engine.begin() as conn:
        started = time.perf_counter()
        command.upgrade(_config(conn), "0009")
        migrate_s = time.perf_counter() - started
    with engine.connect() as conn:
        total, odd = conn.execute(text("SELECT SUM(cost_micros), SUM(CASE WHEN cost_micros = 100000 "
                                       "AND est_cost_micros = 100000 THEN 0 ELSE 1 END) FROM ledger_rows")).one()
        spend = conn.execute(text("SELECT SUM(micros) FROM night_spend")).scalar()
    engine.dispose()
    assert int(total) == int(spend) == rows * 100_000 and not odd, (total, spend, odd)
    print(f"| {kind} | 0008 -> 0009, {rows:,} rows | {migrate_s:.3f} s | {migrate_s / copy_s:.2f}x |")
    print(f"| {kind} | one copy of the table (baseline) | {copy_s:.3f} s | 1.00x |")
    print(f"{kind}: the float sum before was {drift!r}; after, {int(total):,} micro-dollars = "
          f"${int(total) / 1e6:,.2f} exactly")


def main(rows: int) -> None:
    first_open(rows)
    integer_money("SQLite", sqlite_url(), rows)
    if postgres_binaries() is not None:
        with throwaway_postgres(fsync=True) as server:
            integer_money("PostgreSQL", new_database(server), rows)
    else:
        print("PostgreSQL: no binaries here (Debian's postgresql package); skipped")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
