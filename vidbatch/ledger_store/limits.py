"""A route's limits across every run that shares the ledger: its slots (jobs in flight) and its
submit rate. Each call is one short write transaction under the limit's own lock (the caller's
`_writing`), so runs in other processes and on other machines agree; nothing here waits.

Slots: a run holds a slot of `limit_name` under a holder id until it gives it back. A slot whose
run is not alive (ended, its process gone on this host, or silent past the heartbeat's limit) is
free again: a crashed run's slots come back without anyone releasing them.
Submits: a leaky bucket of `per_minute` capacity (a minute's burst), draining at `per_minute`/60
a second; a submit adds one, or is told how long until it may.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from vidbatch.ledger_store.schema import route_slots, route_submits, runs

__all__ = ["take_slot", "give_slot", "slots_held", "take_submit"]


def _held(conn: Connection, limit_name: str, alive: Callable) -> tuple[list[str], list[str]]:
    """(live holders, dead holders) of `limit_name`'s slots."""
    rows = (
        conn.execute(
            select(route_slots.c.holder, runs.c.ended_at, runs.c.heartbeat_at, runs.c.host, runs.c.pid)
            .select_from(route_slots.outerjoin(runs, route_slots.c.run_id == runs.c.run_id))
            .where(route_slots.c.limit_name == limit_name)
        )
        .mappings()
        .all()
    )
    live = [row["holder"] for row in rows if row["heartbeat_at"] is not None and alive(row)]
    return live, [row["holder"] for row in rows if row["holder"] not in live]


def take_slot(
    conn: Connection, limit_name: str, capacity: int, run_id: str, holder: str, now: datetime, alive: Callable
) -> bool:
    """Take one of `limit_name`'s `capacity` slots for `holder` (of `run_id`); False when every
    slot is held by a live run. Slots of dead runs are cleared on the way."""
    live, dead = _held(conn, limit_name, alive)
    if dead:
        conn.execute(delete(route_slots).where(route_slots.c.limit_name == limit_name, route_slots.c.holder.in_(dead)))
    if len(live) >= capacity:
        return False
    conn.execute(insert(route_slots), [{"limit_name": limit_name, "holder": holder, "run_id": run_id, "taken_at": now}])
    return True


def give_slot(conn: Connection, limit_name: str, holder: str) -> None:
    conn.execute(delete(route_slots).where(route_slots.c.limit_name == limit_name, route_slots.c.holder == holder))


def slots_held(conn: Connection, limit_name: str, alive: Callable) -> int:
    """How many of `limit_name`'s slots live runs hold."""
    return len(_held(conn, limit_name, alive)[0])


def take_submit(conn: Connection, limit_name: str, per_minute: float, now: float) -> float:
    """Count one submit against `limit_name`'s rate and return 0, or return the seconds until one
    fits (nothing counted). `now`: seconds since the epoch (a clock behind the last writer's is
    read as no time passed)."""
    rate = per_minute / 60.0
    capacity = max(1.0, float(int(per_minute)))
    row = conn.execute(
        select(route_submits.c.level, route_submits.c.at).where(route_submits.c.limit_name == limit_name)
    ).first()
    level = max(0.0, row.level - max(0.0, now - row.at) * rate) if row else 0.0
    if level + 1 > capacity:
        return (level + 1 - capacity) / rate
    values = {"level": level + 1, "at": max(now, row.at) if row else now}
    if row:
        conn.execute(update(route_submits).where(route_submits.c.limit_name == limit_name).values(**values))
    else:
        conn.execute(insert(route_submits), [{"limit_name": limit_name, **values}])
    return 0.0
