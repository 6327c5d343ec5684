"""Stopping a child process the way every part of the project does."""

from __future__ import annotations

import subprocess
from typing import Any


def stop_process(process: subprocess.Popen[Any], timeout: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL if it has not ended within ``timeout`` seconds; True when it
    had to be killed. Safe on a process that has already ended."""
    if process.poll() is not None:
        return False
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return True
    return False
