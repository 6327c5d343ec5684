"""Oversized request bodies are refused with 413 before any route reads them, and the
API goes on serving."""

from __future__ import annotations

import json
from collections.abc import Iterator

from mri_pipeline.domain.access import Role
from mri_pipeline.runtime import Runtime
from tests.integration.api_tools import api_client

ORDER = {"patient": {"patient_id": "BIG1", "name": "Big^Body"}, "indication": "stenosis"}


def test_a_body_over_the_limit_gets_413_with_a_message_and_nothing_is_stored(
    runtime: Runtime,
) -> None:
    limit = runtime.settings.api_max_body_bytes
    padded = ORDER | {"details": "x" * (limit + 1)}
    with api_client(runtime, Role.RADIOGRAPHER) as client:
        refused = client.post("/api/orders", json=padded)
        assert refused.status_code == 413, refused.text
        assert refused.json() == {"detail": f"the request body is larger than {limit} bytes"}
        assert client.get("/api/worklist").json() == []  # nothing was booked

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            body = json.dumps(padded).encode()
            for start in range(0, len(body), 65_536):
                yield body[start : start + 65_536]

        streamed = client.post(
            "/api/orders", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413, streamed.text
        assert client.post("/api/orders", json=ORDER).status_code == 201  # still serving
        assert [e["patient_id"] for e in client.get("/api/worklist").json()] == ["BIG1"]


def test_a_body_just_under_the_limit_reaches_the_route(runtime: Runtime) -> None:
    limit = runtime.settings.api_max_body_bytes
    body = json.dumps(ORDER | {"details": ""}).encode()
    body = json.dumps(ORDER | {"details": "y" * (limit - len(body))}).encode()
    assert len(body) == limit
    with api_client(runtime, Role.RADIOGRAPHER) as client:
        answer = client.post(
            "/api/orders", content=body, headers={"Content-Type": "application/json"}
        )
    assert answer.status_code != 413  # the route decides (details may be too long: 422)
    assert answer.status_code in (201, 422), answer.text
