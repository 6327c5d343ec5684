"""Database faults for tests: restarting the PostgreSQL the suite runs against."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from tests.conftest import POSTGRES_URL


def restart_postgresql() -> None:
    """Restart the local cluster when we run it; else end every session (the same to us)."""
    host = make_url(POSTGRES_URL).host or "localhost"
    clusters = Path("/etc/postgresql")
    if shutil.which("pg_ctlcluster") and host in ("127.0.0.1", "localhost") and clusters.is_dir():
        version = sorted(p.name for p in clusters.iterdir())[-1]
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
            check=True,
            timeout=120,
        )
        for _ in range(100):
            ready = subprocess.run(["pg_isready", "-h", host, "-q"], check=False, timeout=10)
            if ready.returncode == 0:
                return
            time.sleep(0.2)
        raise AssertionError("PostgreSQL did not come back")
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    admin.dispose()
