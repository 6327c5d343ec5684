"""Free TCP ports on this host for servers started by tests and benches."""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

# Below Linux's default ephemeral range (32768-60999): a port handed out here is never
# taken meanwhile as the source port of somebody's outgoing connection, which is what
# made a port found by binding to 0 "already in use" a moment later.
LOW, HIGH = 20000, 32000
_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()
_pick = random.Random(os.getpid())


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(part) for part in _RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, outside the ephemeral range, not yet handed out
    by this process."""
    ephemeral_low, ephemeral_high = _ephemeral_range()
    for _ in range(2000):
        port = _pick.randrange(LOW, HIGH)
        if ephemeral_low <= port <= ephemeral_high or port in _handed_out:
            continue
        if _bindable(host, port):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port between {LOW} and {HIGH} on {host}")
