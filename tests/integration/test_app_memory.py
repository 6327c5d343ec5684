"""The API server leaves what was alive at its start out of the garbage collector's full
passes (each walked every library object and stopped all requests for over 100 ms)."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient

from mri_pipeline.api.app import create_app
from mri_pipeline.runtime import Runtime


def test_the_objects_alive_at_start_are_frozen_while_serving_and_released_after(
    runtime: Runtime,
) -> None:
    before = gc.get_freeze_count()
    with TestClient(create_app(runtime)) as client:
        assert client.get("/health").status_code == 200
        assert gc.get_freeze_count() > max(before, 10_000)
    assert gc.get_freeze_count() == 0
