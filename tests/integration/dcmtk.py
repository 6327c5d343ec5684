"""Running DCMTK's command-line tools as the real peer in tests."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from mri_pipeline.subprocesses import stop_process


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


@dataclass
class Workstation:
    """DCMTK's storescp standing in for a reading workstation."""

    ae_title: str
    port: int
    folder: Path

    def received(self, study_instance_uid: str) -> set[str]:
        """SOP Instance UIDs of the files received for this study."""
        uids: set[str] = set()
        for path in self.folder.iterdir():
            try:
                ds = dcmread(path)
            except InvalidDicomError:
                continue
            if ds.StudyInstanceUID == study_instance_uid:
                uids.add(str(ds.SOPInstanceUID))
        return uids


@contextmanager
def storescp(ae_title: str, port: int, folder: Path, log: Path) -> Iterator[Workstation]:
    """A running storescp, answered an echo before this yields; stopped on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            ["storescp", "-aet", ae_title, "-od", str(folder), "-dhl", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 10
        while echoscu(port, called=ae_title).returncode != 0:
            assert process.poll() is None, log.read_text(encoding="utf-8", errors="replace")
            assert time.monotonic() < deadline, "storescp did not answer an echo"
            time.sleep(0.05)
        yield Workstation(ae_title, port, folder)
    finally:
        stop_process(process)
