"""The FastAPI application; domain errors become HTTP answers here and nowhere else."""

from __future__ import annotations

import gc
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mri_pipeline import __version__
from mri_pipeline.api.deps import require
from mri_pipeline.api.routes import (
    accounts,
    events,
    orders,
    procedures,
    reading,
    studies,
    worklist,
)
from mri_pipeline.domain.access import Area
from mri_pipeline.domain.errors import DomainError
from mri_pipeline.domain.lifecycle import IllegalTransition
from mri_pipeline.domain.throttle import LoginThrottle
from mri_pipeline.orthanc import OrthancUnavailable, UnknownModality, UnknownResource
from mri_pipeline.runtime import Runtime
from mri_pipeline.services.accounts import Principal
from mri_pipeline.services.examinations import UnknownExamination
from mri_pipeline.services.orders import OrderRejected
from mri_pipeline.services.radiologists import UnknownRadiologist
from mri_pipeline.web import department, radiographer, radiologist
from mri_pipeline.web import login as web_login
from mri_pipeline.web.pages import STATIC, LoginRequired, ScreenForbidden, render

log = logging.getLogger(__name__)


# Reads under these paths show a patient's data: each is written to the audit log.
# The only reads by a logged-in user that show no patient data; every other GET is
# audited, so a new route is covered without anyone remembering to list it.
NOT_PATIENT_DATA = frozenset({"/", "/api/me"})


# Routers whose every route needs the area; the others check access route by route.
GUARDED: tuple[tuple[APIRouter, Area], ...] = (
    (orders.router, Area.ORDERS),
    (worklist.router, Area.SCHEDULE),
    (procedures.router, Area.SCHEDULE),
    (procedures.reconciliation_router, Area.SCHEDULE),
    (studies.router, Area.STUDIES),
    (reading.router, Area.READING),
)
OPEN: tuple[APIRouter, ...] = (
    accounts.router,
    events.router,
    web_login.router,
    radiographer.router,
    radiologist.router,
    department.router,
)


def routers() -> list[APIRouter]:
    """Every router the application serves."""
    return [router for router, _area in GUARDED] + list(OPEN)


@asynccontextmanager
async def settled_memory(_app: FastAPI) -> AsyncIterator[None]:
    """What is alive once the server has started (the libraries, the runtime) is left
    out of the garbage collector's full passes: each one walked it all, which stopped
    every request for over 100 ms a few times a minute under load."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(title="MRI pipeline", version=__version__, lifespan=settled_memory)
    app.state.runtime = runtime
    app.state.login_throttle = LoginThrottle()  # per process: a worker counts its own
    for router, area in GUARDED:
        app.include_router(router, dependencies=[Depends(require(area))])
    for router in OPEN:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(LoginRequired)
    def login_required(_request: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse(
            f"/login?next={quote(exc.next_path)}", status_code=status.HTTP_303_SEE_OTHER
        )

    @app.exception_handler(ScreenForbidden)
    def screen_forbidden(request: Request, exc: ScreenForbidden) -> Response:
        page = render(
            request,
            "error.html",
            getattr(request.state, "principal", None),
            title="Not for your role",
            message=str(exc),
        )
        page.status_code = status.HTTP_403_FORBIDDEN
        return page

    app.add_middleware(AuditReads, runtime=runtime)
    app.add_middleware(LimitBodies, limit=runtime.settings.api_max_body_bytes)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.exception_handler(RequestValidationError)
    def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own 422 echoes the input; bytes that are not UTF-8, a lone surrogate or
        # a NaN made that answer fail with a 500. The same 422, the input escaped.
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            content={"detail": jsonable_encoder(json_safe(exc.errors()))},
        )

    @app.exception_handler(OrderRejected)
    def order_rejected(_request: Request, exc: OrderRejected) -> JSONResponse:
        log.info("order rejected problems=%d", len(exc.problems))
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            content={
                "detail": [
                    {"loc": list(p.location), "msg": p.message, "type": "order_rejected"}
                    for p in exc.problems
                ]
            },
        )

    @app.exception_handler(IllegalTransition)
    def illegal_transition(_request: Request, exc: IllegalTransition) -> JSONResponse:
        return JSONResponse(
            status_code=status.HTTP_409_CONFLICT,
            content={"detail": str(exc), "current_status": exc.current.value},
        )

    @app.exception_handler(UnknownExamination)
    def unknown_examination(_request: Request, exc: UnknownExamination) -> JSONResponse:
        return JSONResponse(status_code=status.HTTP_404_NOT_FOUND, content={"detail": str(exc)})

    @app.exception_handler(OrthancUnavailable)
    def orthanc_unavailable(_request: Request, exc: OrthancUnavailable) -> JSONResponse:
        log.warning("Orthanc unavailable: %s", exc)
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            content={"detail": f"the image store is not answering: {exc}"},
        )

    @app.exception_handler(UnknownModality)
    @app.exception_handler(UnknownResource)
    def orthanc_refused(_request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse(status_code=status.HTTP_409_CONFLICT, content={"detail": str(exc)})

    @app.exception_handler(UnknownRadiologist)
    def unknown_radiologist(_request: Request, exc: UnknownRadiologist) -> JSONResponse:
        return JSONResponse(status_code=status.HTTP_404_NOT_FOUND, content={"detail": str(exc)})

    @app.exception_handler(DomainError)
    def domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(status_code=status.HTTP_409_CONFLICT, content={"detail": str(exc)})

    return app


def json_safe(value: Any) -> Any:
    """``value`` sendable as strict UTF-8 JSON: bytes that are not UTF-8 and lone surrogates
    (valid in a JSON string as ``\\ud800``) become backslash escapes, and NaN and Infinity
    (which Python's JSON reader accepts in a request) become text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {json_safe(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


class AuditReads:
    """Hands each GET by a logged-in user (but ``NOT_PATIENT_DATA``) to the audit trail,
    with the answer's status, as the answer starts: a live event stream is written when
    it opens, not hours later when it closes."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        answered: list[int] = []

        async def remember_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered.append(int(message["status"]))
                self._record(scope, answered[0])
            await send(message)

        try:
            await self.app(scope, receive, remember_status)
        finally:
            if not answered:  # the route failed before it could answer
                self._record(scope, 500)

    def _record(self, scope: Scope, status_code: int) -> None:
        # The principal is known once the route's dependencies have run, before it answers.
        principal: Principal | None = (scope.get("state") or {}).get("principal")
        path: str = scope["path"]
        if principal is None or path in NOT_PATIENT_DATA:
            return
        query = scope.get("query_string", b"").decode("latin-1")
        resource = path + (f"?{query}" if query else "")
        self.runtime.audit.record(
            principal.username, principal.role.value, "read", resource, status_code
        )


class LimitBodies:
    """Refuses a request body over ``limit`` bytes with 413 before any route reads it,
    whether its Content-Length says so or it is sent in chunks; a smaller body is read
    here and handed on whole (bodies are small JSON and forms)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        handed: list[bool] = []

        async def whole_body() -> Message:
            if handed:
                return await receive()
            handed.append(True)
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, whole_body, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        log.warning(
            "request body refused method=%s path=%s limit=%d",
            scope["method"],
            scope["path"],
            self.limit,
        )
        answer = JSONResponse(
            {"detail": f"the request body is larger than {self.limit} bytes"},
            status_code=status.HTTP_413_CONTENT_TOO_LARGE,
        )
        await answer(scope, receive, send)
