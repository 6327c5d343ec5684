"""The FastAPI application; domain errors become HTTP answers here and nowhere else."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from mri_pipeline import __version__
from mri_pipeline.api.routes import orders, procedures, reading, studies, worklist
from mri_pipeline.domain.errors import DomainError
from mri_pipeline.domain.lifecycle import IllegalTransition
from mri_pipeline.orthanc import OrthancUnavailable, UnknownModality, UnknownResource
from mri_pipeline.runtime import Runtime
from mri_pipeline.services.examinations import UnknownExamination
from mri_pipeline.services.orders import OrderRejected
from mri_pipeline.services.radiologists import UnknownRadiologist

log = logging.getLogger(__name__)


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(title="MRI pipeline", version=__version__)
    app.state.runtime = runtime
    app.include_router(orders.router)
    app.include_router(worklist.router)
    app.include_router(procedures.router)
    app.include_router(procedures.reconciliation_router)
    app.include_router(studies.router)
    app.include_router(reading.router)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

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
