"""The application's own processes as workers in a test: started on the test's
settings, waited for, and always stopped (SIGTERM, then kill after 10 s)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from mri_pipeline.config import Settings

# Settings a worker takes from the test's (the database URL is set per worker).
SHARED_SETTINGS = (
    "var_dir",
    "protocols_file",
    "nodes_file",
    "radiologists_file",
    "clinic_timezone",
    "site",
    "orthanc_http_port",
    "ingest_batch_size",
    "ingest_poll_interval",
)


@dataclass
class Worker:
    """One ``python -m mri_pipeline`` process and its combined output."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def count(self, marker: str) -> int:
        return sum(marker in line for line in self.output().splitlines())


def spawn(
    name: str, arguments: Sequence[str], settings: Settings, also: Sequence[str] = ()
) -> Worker:
    """Start a worker on the test's settings (``SHARED_SETTINGS`` and the ``also`` named);
    it names itself to PostgreSQL as ``name``."""
    url = make_url(settings.resolved_database_url()).update_query_dict({"application_name": name})
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MRI_PIPELINE_")}
    environment |= {
        f"MRI_PIPELINE_{key.upper()}": str(getattr(settings, key))
        for key in (*SHARED_SETTINGS, *also)
    }
    environment |= {
        "MRI_PIPELINE_DATABASE_URL": url.render_as_string(hide_password=False),
        "PYTHONUNBUFFERED": "1",
    }
    log = settings.var_dir / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "mri_pipeline", *arguments],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return Worker(name, process, log)


def stop(workers: Sequence[Worker]) -> None:
    """SIGTERM to all at once, then wait; whoever does not stop in 10 s is killed."""
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.terminate()
    for worker in workers:
        try:
            worker.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()


def wait_for(
    condition: Callable[[], bool], what: str, workers: Sequence[Worker], timeout: float = 30
) -> None:
    """Poll ``condition`` until it holds; a worker that dies or a deadline fails the test
    with every worker's output."""
    deadline = time.monotonic() + timeout
    while not condition():
        dead = [w.name for w in workers if w.process.poll() is not None]
        if dead or time.monotonic() > deadline:
            logs = "\n".join(f"--- {w.name}\n{w.output()[-3000:]}" for w in workers)
            raise AssertionError(f"{what}: {'died: ' + str(dead) if dead else 'timed out'}\n{logs}")
        time.sleep(0.05)


def answers_health(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
