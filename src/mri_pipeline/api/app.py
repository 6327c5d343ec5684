"""The FastAPI application; domain errors become HTTP answers here and nowhere else."""

from __future__ import annotations

import logging
import math
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request, Response, status
from fastapi.concurrency import run_in_threadpool
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
from mri_pipeline.services.accounts import Principal, record_read
from mri_pipeline.services.examinations import UnknownExamination
from mri_pipeline.services.orders import OrderRejected
from mri_pipeline.services.radiologists import UnknownRadiologist
from mri_pipeline.web import department, radiographer, radiologist
from mri_pipeline.web import login as web_login
from mri_pipeline.web.pages import STATIC, LoginRequired, ScreenForbidden, render

log = logging.getLogger(__name__)


# Reads under these paths show a patient's data: each is written to the audit log.
PATIENT_DATA = (
    "/api/worklist",
    "/api/procedures",
    "/api/reconciliation",
    "/api/studies",
    "/api/reading-list",
    "/api/events",
)


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(title="MRI pipeline", version=__version__)
    app.state.runtime = runtime
    app.state.login_throttle = LoginThrottle()  # per process: a worker counts its own
    for router, area in (
        (orders.router, Area.ORDERS),
        (worklist.router, Area.SCHEDULE),
        (procedures.router, Area.SCHEDULE),
        (procedures.reconciliation_router, Area.SCHEDULE),
        (studies.router, Area.STUDIES),
        (reading.router, Area.READING),
    ):
        app.include_router(router, dependencies=[Depends(require(area))])
    app.include_router(accounts.router)
    app.include_router(events.router)
    for screen in (web_login, radiographer, radiologist, department):
        app.include_router(screen.router)
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
    """Writes each GET of patient data by a logged-in user to the audit log, once the
    answer is complete (so the route's own database session is already closed)."""

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
            await send(message)

        try:
            await self.app(scope, receive, remember_status)
        finally:
            state = scope.get("state") or {}
            principal: Principal | None = state.get("principal")
            path: str = scope["path"]
            if principal is not None and (
                path.startswith(PATIENT_DATA) or state.get("patient_data")
            ):
                query = scope.get("query_string", b"").decode("latin-1")
                resource = path + (f"?{query}" if query else "")
                status_code = answered[0] if answered else 500
                await run_in_threadpool(self._record, principal, resource, status_code)

    def _record(self, principal: Principal, resource: str, status_code: int) -> None:
        with self.runtime.sessions.begin() as session:
            record_read(session, principal, resource, status_code, self.runtime.clock())
