"""Request dependencies: the runtime, a database session and an Orthanc client per request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from mri_pipeline.orthanc import OrthancClient
from mri_pipeline.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    with runtime.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_orthanc(runtime: RuntimeDep) -> Iterator[OrthancClient]:
    with runtime.orthanc_client() as client:
        yield client


OrthancDep = Annotated[OrthancClient, Depends(get_orthanc)]
