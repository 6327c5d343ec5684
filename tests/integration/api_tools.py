"""An API client that is logged in: a user of the given role and their bearer token."""

from __future__ import annotations

import itertools

from fastapi.testclient import TestClient

from mri_pipeline.api.app import create_app
from mri_pipeline.domain.access import Role
from mri_pipeline.runtime import Runtime
from mri_pipeline.services.accounts import add_user

_numbers = itertools.count(1)


def token_for(runtime: Runtime, role: Role = Role.ADMIN, radiologist: str | None = None) -> str:
    name = f"{role.value}-{radiologist or 'x'}-{next(_numbers)}".replace(".", "-")
    with runtime.sessions.begin() as session:
        _user, token = add_user(session, name, role, runtime.clock(), radiologist_key=radiologist)
    return token


def api_client(
    runtime: Runtime, role: Role = Role.ADMIN, radiologist: str | None = None
) -> TestClient:
    """A TestClient sending a bearer token of a new user (use it in a ``with``)."""
    token = token_for(runtime, role, radiologist)
    return TestClient(create_app(runtime), headers={"Authorization": f"Bearer {token}"})
