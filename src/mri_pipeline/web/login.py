"""Logging in and out. The login form carries its own CSRF token (a cookie and a hidden
field that must agree), so another site cannot log a browser in as someone else."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mri_pipeline.api.deps import SESSION, SESSION_COOKIE, RuntimeDep, csrf_matches, identify
from mri_pipeline.domain.throttle import LoginThrottle
from mri_pipeline.services.accounts import (
    SESSION_LIFETIME,
    by_session,
    log_in,
    log_out,
    new_secret,
)
from mri_pipeline.web.pages import HOME, render

router = APIRouter(include_in_schema=False)
LOGIN_CSRF_COOKIE = "mri_login_csrf"


def _safe_next(path: str | None) -> str | None:
    """Only a path of this site: never an absolute URL to elsewhere."""
    if path and path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return None


def _login_page(
    request: Request, *, next_path: str | None, error: str | None, code: int
) -> Response:
    token = new_secret()
    page = render(request, "login.html", None, login_csrf=token, next=next_path, error=error)
    page.status_code = code
    page.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login", max_age=3600
    )
    return page


@router.get("/login", response_class=HTMLResponse)
def get_login(request: Request, next: str | None = None) -> Response:
    return _login_page(request, next_path=_safe_next(next), error=None, code=status.HTTP_200_OK)


@router.post("/login")
def post_login(
    request: Request,
    runtime: RuntimeDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    login_csrf: Annotated[str, Form(max_length=128)],
    next: Annotated[str | None, Form(max_length=512)] = None,
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, login_csrf):
        return _login_page(
            request,
            next_path=_safe_next(next),
            error="The form had expired. Please log in again.",
            code=status.HTTP_400_BAD_REQUEST,
        )
    name, now = username.strip(), runtime.clock()
    throttle: LoginThrottle = request.app.state.login_throttle
    wait = throttle.wait(name, now)
    if wait is not None:
        minutes = max(1, round(wait.total_seconds() / 60))
        return _login_page(
            request,
            next_path=_safe_next(next),
            error=f"Too many failed attempts for this user name. Try again in {minutes} min.",
            code=status.HTTP_429_TOO_MANY_REQUESTS,
        )
    with runtime.sessions.begin() as session:
        cookie = log_in(session, name, password, now)
    if cookie is None:
        throttle.failed(name, now)
        return _login_page(
            request,
            next_path=_safe_next(next),
            error="Wrong user name or password.",
            code=status.HTTP_401_UNAUTHORIZED,
        )
    throttle.succeeded(name)
    with runtime.sessions() as session:
        principal = by_session(session, cookie, runtime.clock())
    assert principal is not None
    target = _safe_next(next) or HOME[principal.role]
    answer = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    answer.set_cookie(
        SESSION_COOKIE,
        cookie,
        httponly=True,
        samesite="strict",
        secure=runtime.settings.cookie_secure,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
    )
    answer.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return answer


@router.post("/logout")
def post_logout(
    request: Request,
    runtime: RuntimeDep,
    csrf_token: Annotated[str, Form(max_length=128)],
) -> Response:
    principal = identify(request, runtime)
    cookie = request.cookies.get(SESSION_COOKIE)
    if principal is not None and cookie and csrf_matches(principal, csrf_token):
        with runtime.sessions.begin() as session:
            log_out(session, cookie)
        runtime.callers.forget(SESSION, cookie)
    answer = RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)
    answer.delete_cookie(SESSION_COOKIE, path="/")
    return answer


@router.get("/")
def get_home(request: Request, runtime: RuntimeDep) -> Response:
    principal = identify(request, runtime)
    target = HOME[principal.role] if principal is not None else "/login"
    return RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
