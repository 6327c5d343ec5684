"""Slowing down password guessing: after too many failed logins for one user name in a
window, further attempts are refused until the window has passed. Pure: the caller keeps
the instance and passes the time."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass
class LoginThrottle:
    limit: int = 5
    window: timedelta = timedelta(minutes=10)
    _failures: dict[str, deque[datetime]] = field(default_factory=dict)

    def _recent(self, username: str, now: datetime) -> deque[datetime]:
        recent = self._failures.setdefault(username.casefold(), deque())
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        return recent

    def wait(self, username: str, now: datetime) -> timedelta | None:
        """How long ``username`` must wait before trying again; None when they may."""
        recent = self._recent(username, now)
        if len(recent) < self.limit:
            return None
        return recent[0] + self.window - now

    def failed(self, username: str, now: datetime) -> None:
        self._recent(username, now).append(now)

    def succeeded(self, username: str) -> None:
        self._failures.pop(username.casefold(), None)
