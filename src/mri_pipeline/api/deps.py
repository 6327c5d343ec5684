"""Request dependencies: the runtime, a database session, an Orthanc client, and who is
asking (a bearer token or a browser session; with a session, a state-changing request
must carry its CSRF token)."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from mri_pipeline.domain.access import Area, Role, may
from mri_pipeline.orthanc import OrthancClient
from mri_pipeline.runtime import Runtime
from mri_pipeline.services.accounts import Principal, by_session, by_token

SESSION_COOKIE = "mri_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[Session]:
    # Made here (no I/O until first used); closed in a worker thread, as it may return
    # a connection to the pool: one thread hop a request instead of two.
    session = runtime.sessions()
    try:
        yield session
    finally:
        await run_in_threadpool(session.close)


# scope="function": the session closes when the route returns, before the answer is
# sent, so a request never holds two pooled connections (the audit writes after it).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_orthanc(runtime: RuntimeDep) -> Iterator[OrthancClient]:
    with runtime.orthanc_client() as client:
        yield client


OrthancDep = Annotated[OrthancClient, Depends(get_orthanc, scope="function")]


class NotLoggedIn(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(
            status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"}
        )


TOKEN, SESSION = "token", "session"


def credentials(request: Request) -> tuple[str, str] | None:
    """What the caller offers: a bearer token (preferred) or a session cookie."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotLoggedIn("Authorization must be 'Bearer <token>'")
        return TOKEN, token.strip()
    cookie = request.cookies.get(SESSION_COOKIE)
    return (SESSION, cookie) if cookie else None


def look_up(runtime: Runtime, kind: str, secret: str) -> Principal | None:
    """The secret's user from the database, remembered for the next requests."""
    with runtime.sessions() as session:
        if kind == TOKEN:
            principal = by_token(session, secret)
        else:
            principal = by_session(session, secret, runtime.clock())
    if principal is not None:
        runtime.callers.remember(kind, secret, principal)
    return principal


def _found(kind: str, principal: Principal | None) -> Principal | None:
    if principal is None and kind == TOKEN:
        raise NotLoggedIn("unknown or revoked token")
    return principal


def identify(request: Request, runtime: Runtime) -> Principal | None:
    """The token's or the session's user, or None. Does not check CSRF."""
    offered = credentials(request)
    if offered is None:
        return None
    return _found(offered[0], runtime.callers.get(*offered) or look_up(runtime, *offered))


async def identify_soon(request: Request, runtime: Runtime) -> Principal | None:
    """``identify`` for the event loop: a caller seen in the last seconds is known at
    once; otherwise the database is asked in a worker thread."""
    offered = credentials(request)
    if offered is None:
        return None
    principal = runtime.callers.get(*offered)
    if principal is None:
        principal = await run_in_threadpool(look_up, runtime, *offered)
    return _found(offered[0], principal)


def csrf_matches(principal: Principal, offered: str | None) -> bool:
    expected = principal.csrf_token
    return expected is not None and offered is not None and hmac.compare_digest(expected, offered)


async def get_principal(request: Request, runtime: RuntimeDep) -> Principal:
    """Who is asking (401 when nobody). Recorded on ``request.state`` for the audit log."""
    principal = await identify_soon(request, runtime)
    if principal is None:
        raise NotLoggedIn("log in, or send 'Authorization: Bearer <token>'")
    if (
        principal.csrf_token is not None
        and request.method not in SAFE_METHODS
        and not csrf_matches(principal, request.headers.get(CSRF_HEADER))
    ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"missing or wrong {CSRF_HEADER}")
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(area: Area) -> Callable[[Principal], Coroutine[None, None, Principal]]:
    """A dependency admitting only roles granted ``area`` (403 for the others)."""

    async def check(principal: PrincipalDep) -> Principal:
        if not may(principal.role, area):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"a {principal.role.value} may not use {area.value}",
            )
        return principal

    return check


def acting_radiologist(
    principal: Principal, named: str | None, *, admin_may_name: bool = False
) -> str:
    """The radiologist a request is for. A radiologist acts as themselves only; an
    administrator may name whose list or study they look at (``admin_may_name``) but
    reads and reports as nobody else."""
    if principal.role is Role.RADIOLOGIST and principal.radiologist_key is not None:
        if named is not None and named != principal.radiologist_key:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "you act only on your own list")
        return principal.radiologist_key
    if not admin_may_name or principal.role is not Role.ADMIN:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only a radiologist reads and reports")
    if named is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "name the radiologist (?radiologist=KEY)"
        )
    return named
