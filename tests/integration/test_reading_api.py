"""``/api/reading-list`` over HTTP, logged in: the answers, what each role may do, and a
clear refusal for every bad request.

Orthanc is not running here (the port is closed): the study view still answers, saying
it could not ask for priors, and sending answers 503."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from fastapi.testclient import TestClient

from mri_pipeline.domain.access import Role
from mri_pipeline.runtime import Runtime
from tests.conftest import free_port
from tests.integration.api_tools import api_client
from tests.integration.test_reading_room import MONDAY, SUNDAY, Clock, at, uid_of
from tests.integration.test_routing_assignment import ready_study

Login = Callable[..., TestClient]


@pytest.fixture
def login(runtime: Runtime) -> Iterator[Login]:
    """``login(Role.RADIOLOGIST, "rad.okafor")``: a client logged in as a new such user."""
    runtime.settings.orthanc_url = f"http://127.0.0.1:{free_port()}"  # nothing listens
    runtime.settings.orthanc_username, runtime.settings.orthanc_password = "u", "p"
    with ExitStack() as clients:

        def as_user(role: Role = Role.ADMIN, radiologist: str | None = None) -> TestClient:
            return clients.enter_context(api_client(runtime, role, radiologist))

        yield as_user


def routed(runtime: Runtime, clock: Clock, *cases: tuple[str, str]) -> list[str]:
    runtime.clock = clock
    uids = [uid_of(runtime, ready_study(runtime, pid, why, clock.now)) for pid, why in cases]
    runtime.routing_desk().route_pass()
    return uids


def test_the_reading_list_and_a_whole_reading(runtime: Runtime, login: Login) -> None:
    clock = Clock(at(SUNDAY, "10:00"))
    stat, routine = routed(runtime, clock, ("A1", "suspected-ces"), ("A2", "radiculopathy"))
    client = login(Role.RADIOLOGIST, "rad.okafor")
    listed = client.get("/api/reading-list")
    assert listed.status_code == 200
    body = listed.json()
    assert [s["study_instance_uid"] for s in body["studies"]] == [stat, routine]
    assert body["studies"][0]["time_left"] == "1 h 0 min left"
    assert body["next_unassigned"] is None

    out_of_order = client.post(f"/api/reading-list/{routine}/claim", json={})
    assert out_of_order.status_code == 409
    assert "it is ahead in your list" in out_of_order.json()["detail"]
    claimed = client.post(f"/api/reading-list/{stat}/claim", json={})
    assert claimed.status_code == 200
    assert claimed.json()["assignment"]["state"] == "claimed"

    view = client.get(f"/api/reading-list/{stat}").json()
    assert view["priors"] is None
    assert "not answering" in view["priors_error"] or "unreachable" in view["priors_error"]
    assert view["viewer"]["dicomweb_study"].endswith(f"/dicom-web/studies/{stat}")
    assert view["assignment"]["reason"].startswith("STAT")

    sent = client.post(f"/api/reading-list/{stat}/send", json={})
    assert sent.status_code == 503
    assert "image store is not answering" in sent.json()["detail"]

    final = client.post(
        f"/api/reading-list/{stat}/report",
        json={"status": "final", "impression": "Normal."},
    )
    assert final.status_code == 200
    assert final.json()["report"]["status"] == "final"
    assert final.json()["turnaround"]["met"] is True


def test_an_administrator_reassigns_and_a_radiologist_releases(
    runtime: Runtime, login: Login
) -> None:
    clock = Clock(at(MONDAY, "10:00"))
    (study,) = routed(runtime, clock, ("B1", "infection"))
    admin = login(Role.ADMIN)
    holder = admin.get(f"/api/reading-list/{study}").json()["assignment"]["radiologist"]
    other = "rad.okafor" if holder == "rad.lindqvist" else "rad.lindqvist"
    as_holder = login(Role.RADIOLOGIST, holder)
    not_admin = as_holder.post(
        f"/api/reading-list/{study}/reassign", json={"to": other, "reason": "swap"}
    )
    assert not_admin.status_code == 403
    refused = admin.post(
        f"/api/reading-list/{study}/reassign",
        json={"to": "rad.brennan", "reason": "cover"},
    )
    assert refused.status_code == 409
    assert (
        "does not report contrast studies" in refused.json()["detail"]
        or "not neuro" in (refused.json()["detail"])
    )
    moved = admin.post(
        f"/api/reading-list/{study}/reassign",
        json={"to": other, "reason": "cover"},
    )
    assert moved.status_code == 200
    assert moved.json()["assignment"]["radiologist"] == other
    assert moved.json()["events"][-1]["actor"].startswith("admin-")
    # The admin may look at the new holder's list, but reads and reports as nobody.
    assert admin.get("/api/reading-list", params={"radiologist": other}).status_code == 200
    assert admin.post(f"/api/reading-list/{study}/claim", json={}).status_code == 403
    released = login(Role.RADIOLOGIST, other).post(
        f"/api/reading-list/{study}/release", json={"reason": "off sick"}
    )
    assert released.status_code == 200
    assert released.json()["assignment"]["state"] == "unassigned"
    kinds = [e["kind"] for e in released.json()["events"]]
    assert kinds == ["ROUTED", "REASSIGNED", "RELEASED"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("get", "/api/reading-list?radiologist=Robert'); DROP", None, 422, "pattern"),
        ("get", "/api/reading-list?radiologist=rad.lindqvist", None, 403, "your own list"),
        ("get", "/api/reading-list/1.2.3.4", None, 404, "no study received"),
        ("post", "/api/reading-list/1.2.3.4/claim", {}, 404, "1.2.3.4"),
        ("post", "/api/reading-list/{uid}/claim", {"radiologist": "rad.nobody"}, 403, "own"),
        (
            "post",
            "/api/reading-list/{uid}/claim",
            {"radiologist": "rad.okafor", "extra": 1},
            422,
            "extra",
        ),
        (
            "post",
            "/api/reading-list/{uid}/report",
            {"status": "signed", "impression": "x"},
            422,
            "status",
        ),
        (
            "post",
            "/api/reading-list/{uid}/report",
            {"status": "final", "impression": ""},
            422,
            "impression",
        ),
        (
            "post",
            "/api/reading-list/{other}/report",
            {"status": "final", "impression": "x"},
            409,
            "claim it before reporting",
        ),
        (
            "post",
            "/api/reading-list/{uid}/send",
            {"ae_title": "MRI1"},
            409,
            "not a workstation",
        ),
        (
            "post",
            "/api/reading-list/{other}/send",
            {},
            409,
            "claim it first",
        ),
        ("get", "/api/reading-list/{uid}/deliveries/99", None, 404, "no delivery 99"),
        (
            "post",
            "/api/reading-list/{pending}/claim",
            {"radiologist": "rad.okafor"},
            409,
            "not been routed",
        ),
    ],
)
def test_bad_requests_are_refused_with_a_reason(
    runtime: Runtime,
    login: Login,
    method: str,
    path: str,
    body: dict[str, object] | None,
    status: int,
    says: str,
) -> None:
    clock = Clock(at(MONDAY, "10:00"))
    uid, other = routed(runtime, clock, ("X1", "suspected-ces"), ("X3", "stenosis"))
    pending = uid_of(runtime, ready_study(runtime, "X2", "radiculopathy", clock.now))
    url = path.format(uid=uid, pending=pending, other=other)
    client = login(Role.RADIOLOGIST, "rad.okafor")
    answer = client.get(url) if method == "get" else client.post(url, json=body)
    assert answer.status_code == status, answer.text
    assert says in answer.text
