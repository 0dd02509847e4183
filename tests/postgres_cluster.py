"""A throw-away PostgreSQL cluster on loopback, from Debian's binaries (the test command installs
them): for the ledger tests and the ledger benchmarks. Run as the `postgres` user when we are
root (initdb refuses root); its files live under /tmp and go when it stops."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["postgres_binaries", "throwaway_postgres", "new_database", "stop_postgres", "start_postgres"]

_CLUSTERS: dict[str, list[str]] = {}  # URL prefix -> the pg_ctl command line of its cluster, less the action


def postgres_binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@contextlib.contextmanager
def throwaway_postgres(fsync: bool = False) -> Iterator[str]:
    """Start a cluster; yields a URL prefix (`postgresql+psycopg://postgres@127.0.0.1:PORT`).
    `fsync=False` for tests (nothing to keep); benchmarks keep it on, as a real server does."""
    bin_dir = postgres_binaries()
    if bin_dir is None:
        raise FileNotFoundError("no PostgreSQL binaries (Debian's postgresql package)")
    home = Path(tempfile.mkdtemp(prefix="vidbatch-pg-", dir="/tmp"))  # pytest's folders are root-only
    data = home / "data"
    data.mkdir()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(data, "postgres")
        shutil.chown(home, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run([*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres",
                    "--no-sync"], check=True, capture_output=True)
    options = f"-p {port} -h 127.0.0.1 -k {data} -c max_connections=200" + ("" if fsync else " -c fsync=off")
    control = [*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(data / "log"), "-o", options]
    subprocess.run([*control, "start"], check=True, capture_output=True)
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    _CLUSTERS[url] = control
    try:
        yield url
    finally:
        _CLUSTERS.pop(url, None)
        subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def new_database(server: str) -> str:
    """A fresh, empty database on `server`; its SQLAlchemy URL."""
    import psycopg

    name = f"ledger_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


def stop_postgres(server: str) -> None:
    """Stop a throw-away cluster as an outage does (fast: open connections are cut)."""
    subprocess.run([*_CLUSTERS[server], "-m", "fast", "stop"], check=True, capture_output=True)


def start_postgres(server: str) -> None:
    """Start a stopped throw-away cluster again, with its data."""
    subprocess.run([*_CLUSTERS[server], "start"], check=True, capture_output=True)
