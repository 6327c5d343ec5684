"""Users, their passwords (Argon2id, argon2-cffi), API tokens, browser sessions, and the
audit log of who read which patient's data.

Secrets (tokens, session cookies) are random and shown once; only their SHA-256 is
stored, so a copy of the database lets nobody in.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from mri_pipeline.db.models import ApiToken, RadiologistRow, User, WebSession
from mri_pipeline.domain.access import Role
from mri_pipeline.domain.errors import DomainError

log = logging.getLogger(__name__)

SESSION_LIFETIME = timedelta(hours=12)
USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 10
_hasher = PasswordHasher()
# Verified against when the user does not exist, so a wrong name costs as long as a
# wrong password and the answer does not tell which it was.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(DomainError):
    """A user cannot be created or changed as asked."""


@dataclass(frozen=True)
class Principal:
    """Who is asking: a logged-in person (``csrf_token`` set) or a token holder."""

    user_id: int
    username: str
    role: Role
    radiologist_key: str | None
    csrf_token: str | None = None


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _principal(user: User, csrf_token: str | None = None) -> Principal:
    return Principal(user.id, user.username, Role(user.role), user.radiologist_key, csrf_token)


def add_user(
    session: Session,
    username: str,
    role: Role,
    at: datetime,
    *,
    radiologist_key: str | None = None,
    password: str | None = None,
) -> tuple[User, str]:
    """A new user and their first API token (returned once, never stored)."""
    if not USERNAME.match(username):
        raise AccountError(
            f"user name {username!r}: lower-case letters, digits, '.', '_' or '-', 2-64 long"
        )
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise AccountError(f"user {username!r} exists already")
    if role is Role.RADIOLOGIST:
        if radiologist_key is None:
            raise AccountError("a radiologist user needs --radiologist KEY (radiologists file)")
        known = session.scalar(
            select(RadiologistRow.key).where(
                RadiologistRow.key == radiologist_key, RadiologistRow.active.is_(True)
            )
        )
        if known is None:
            raise AccountError(
                f"no active radiologist {radiologist_key!r} in the radiologists file"
            )
    elif radiologist_key is not None:
        raise AccountError("only a radiologist user is linked to a radiologist")
    user = User(
        username=username,
        role=role.value,
        radiologist_key=radiologist_key,
        password_hash=_hash_password(password) if password is not None else None,
        active=True,
        created_at=at,
    )
    session.add(user)
    session.flush()
    log.info("user added username=%s role=%s", username, role.value)
    return user, issue_token(session, user, at)


def _hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


def set_password(session: Session, username: str, password: str) -> None:
    user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if user is None:
        raise AccountError(f"no user {username!r}")
    user.password_hash = _hash_password(password)


def issue_token(session: Session, user: User, at: datetime) -> str:
    token = new_secret()
    session.add(ApiToken(user_id=user.id, token_sha256=digest(token), created_at=at))
    return token


def by_token(session: Session, token: str) -> Principal | None:
    user = session.execute(
        select(User)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(
            ApiToken.token_sha256 == digest(token),
            ApiToken.revoked_at.is_(None),
            User.active.is_(True),
        )
    ).scalar_one_or_none()
    return _principal(user) if user is not None else None


def log_in(session: Session, username: str, password: str, now: datetime) -> str | None:
    """A new session cookie for the right name and password; None otherwise (the
    caller says only "wrong name or password")."""
    user = session.execute(
        select(User).where(User.username == username, User.active.is_(True))
    ).scalar_one_or_none()
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        log.info("login refused username=%s", username[:64])
        return None
    if user is None or user.password_hash is None:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    cookie = new_secret()
    session.add(
        WebSession(
            user_id=user.id,
            session_sha256=digest(cookie),
            csrf_token=new_secret(),
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    log.info("login username=%s", user.username)
    return cookie


def by_session(session: Session, cookie: str, now: datetime) -> Principal | None:
    row = session.execute(
        select(WebSession).where(WebSession.session_sha256 == digest(cookie))
    ).scalar_one_or_none()
    if row is None or row.expires_at <= now or not row.user.active:
        return None
    return _principal(row.user, row.csrf_token)


class RecentCallers:
    """Who recent API tokens and session cookies belong to, remembered for ``ttl``
    seconds so that a screen or script asking many times a second is not looked up
    in the database each time. Logging out here is forgotten at once; a change made by
    another process (a session ended, a user made inactive) counts within ``ttl``.
    Only the secrets' SHA-256 are kept, and only callers that were found."""

    def __init__(
        self,
        ttl: float = 2.0,
        *,
        most: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.most = most
        self.monotonic = monotonic
        self._known: dict[tuple[str, str], tuple[float, Principal]] = {}

    def get(self, kind: str, secret: str) -> Principal | None:
        found = self._known.get((kind, digest(secret)))
        if found is None or self.monotonic() >= found[0]:
            return None
        return found[1]

    def remember(self, kind: str, secret: str, principal: Principal) -> None:
        if len(self._known) >= self.most:
            self._known = {}  # a flood of callers: start again rather than grow
        self._known[(kind, digest(secret))] = (self.monotonic() + self.ttl, principal)

    def forget(self, kind: str, secret: str) -> None:
        self._known.pop((kind, digest(secret)), None)


def log_out(session: Session, cookie: str) -> None:
    row = session.execute(
        select(WebSession).where(WebSession.session_sha256 == digest(cookie))
    ).scalar_one_or_none()
    if row is not None:
        session.delete(row)
