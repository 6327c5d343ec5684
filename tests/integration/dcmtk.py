"""Running DCMTK's command-line tools as the real peer in tests."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset


@dataclass
class FindResult:
    returncode: int
    responses: list[Dataset]
    output: str


def findscu(
    port: int,
    keys: list[str],
    workdir: Path,
    *,
    called: str = "LSP_RIS",
    calling: str = "FINDSCU",
    extra: list[str] | None = None,
) -> FindResult:
    """``findscu -W`` with ``-X``: every response Identifier is read back as a Dataset."""
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("rsp*.dcm"):
        old.unlink()
    command = [
        "findscu",
        "-W",
        "-X",
        "-od",
        str(workdir),
        "-to",
        "20",
        "-aet",
        calling,
        "-aec",
        called,
    ]
    for key in keys:
        command += ["-k", key]
    command += [*(extra or []), "127.0.0.1", str(port)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    responses = [dcmread(path) for path in sorted(workdir.glob("rsp*.dcm"))]
    return FindResult(done.returncode, responses, done.stdout + done.stderr)


def echoscu(
    port: int, *, called: str = "LSP_RIS", calling: str = "ECHOSCU"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["echoscu", "-to", "20", "-aet", calling, "-aec", called, "127.0.0.1", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
