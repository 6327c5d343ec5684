"""Logins, tokens and roles: every API route but /health needs one, each role sees only
its part, and every read of patient data is in the audit log."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, update

from mri_pipeline.api.app import create_app
from mri_pipeline.db.models import User
from mri_pipeline.domain.access import Role
from mri_pipeline.runtime import Runtime
from mri_pipeline.services.accounts import AccountError, RecentCallers, add_user, log_in
from tests.integration.api_tools import api_client, token_for
from tests.integration.test_mwl_scp import book


def api_routes(runtime: Runtime) -> list[tuple[str, str]]:
    """(method, path with its parameters filled) of every route the OpenAPI document lists."""
    paths = create_app(runtime).openapi()["paths"]
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "1", path))
        for path, operations in sorted(paths.items())
        if path != "/health"
        for method in sorted(operations)
    ]


def test_every_api_route_refuses_a_request_without_login(runtime: Runtime) -> None:
    routes = api_routes(runtime)
    assert len(routes) >= 20  # the whole API, not a handful
    with TestClient(create_app(runtime)) as anonymous:
        assert anonymous.get("/health").status_code == 200
        for method, path in routes:
            answer = anonymous.request(method, path, json={})
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert anonymous.get(
            "/api/worklist", headers={"Authorization": "Bearer not-a-token"}
        ).json() == {"detail": "unknown or revoked token"}
        basic = anonymous.get("/api/worklist", headers={"Authorization": "Basic YTpi"})
        assert basic.status_code == 401


@pytest.mark.parametrize(
    ("role", "radiologist", "allowed", "refused"),
    [
        (
            Role.RADIOGRAPHER,
            None,
            ["/api/worklist", "/api/studies", "/api/reconciliation", "/api/me"],
            ["/api/reading-list", "/api/audit"],
        ),
        (
            Role.RADIOLOGIST,
            "rad.okafor",
            ["/api/reading-list", "/api/studies", "/api/me"],
            ["/api/worklist", "/api/reconciliation", "/api/audit"],
        ),
        (
            Role.ADMIN,
            None,
            [
                "/api/worklist",
                "/api/studies",
                "/api/audit",
                "/api/reading-list?radiologist=rad.okafor",
            ],
            [],
        ),
    ],
)
def test_each_role_sees_only_its_part(
    runtime: Runtime,
    role: Role,
    radiologist: str | None,
    allowed: list[str],
    refused: list[str],
) -> None:
    with api_client(runtime, role, radiologist) as client:
        for path in allowed:
            assert client.get(path).status_code == 200, (role, path)
        for path in refused:
            answer = client.get(path)
            assert answer.status_code == 403, (role, path, answer.text)
            assert "may not" in answer.json()["detail"]
        if role is not Role.ADMIN:
            order = {"patient": {"patient_id": "Z1", "name": "A^B"}, "indication": "stenosis"}
            expected = 201 if role is Role.RADIOGRAPHER else 403
            assert client.post("/api/orders", json=order).status_code == expected


def test_every_read_of_patient_data_is_audited_and_only_admins_read_the_log(
    runtime: Runtime,
) -> None:
    accession = book(runtime, "AUD1", "Audit^Ann", "MRI1")
    with api_client(runtime, Role.RADIOGRAPHER) as radiographer:
        assert radiographer.get(f"/api/procedures/{accession}").status_code == 200
        assert radiographer.get("/api/worklist", params={"station": "MRI1"}).status_code == 200
        assert radiographer.get("/api/procedures/LSP9999999").status_code == 404
        assert radiographer.get("/api/me").status_code == 200  # not patient data
        assert radiographer.get("/api/audit").status_code == 403
    with api_client(runtime, Role.ADMIN) as admin:
        entries = admin.get("/api/audit", params={"limit": 10}).json()
        mine = [e for e in entries if e["role"] == "radiographer"]
        assert [(e["resource"], e["status"]) for e in reversed(mine)] == [
            (f"/api/procedures/{accession}", 200),
            ("/api/worklist?station=MRI1", 200),
            ("/api/procedures/LSP9999999", 404),
            ("/api/audit", 403),  # refused, and still written down
        ]
        assert all(e["username"].startswith("radiographer-") for e in mine)
        found = admin.get("/api/audit", params={"contains": accession}).json()
        assert len(found) == 1


def test_a_browser_session_must_send_its_csrf_token_to_change_anything(
    runtime: Runtime,
) -> None:
    with runtime.sessions.begin() as session:
        add_user(session, "rg.ward", Role.RADIOGRAPHER, runtime.clock(), password="x" * 12)
    with runtime.sessions.begin() as session:
        assert log_in(session, "rg.ward", "wrong password", runtime.clock()) is None
        assert log_in(session, "nobody", "x" * 12, runtime.clock()) is None
        cookie = log_in(session, "rg.ward", "x" * 12, runtime.clock())
    assert cookie is not None
    order = {"patient": {"patient_id": "Z2", "name": "C^D"}, "indication": "stenosis"}
    with TestClient(create_app(runtime), cookies={"mri_session": cookie}) as browser:
        assert browser.get("/api/me").json()["username"] == "rg.ward"
        forged = browser.post("/api/orders", json=order)
        assert forged.status_code == 403
        assert "X-CSRF-Token" in forged.json()["detail"]
        csrf = browser.get("/api/me").json()["csrf_token"]
        made = browser.post("/api/orders", json=order, headers={"X-CSRF-Token": csrf})
        assert made.status_code == 201, made.text


@pytest.mark.parametrize(
    ("username", "role", "radiologist", "password", "says"),
    [
        ("Bad Name", Role.ADMIN, None, None, "lower-case letters"),
        ("rad.new", Role.RADIOLOGIST, None, None, "needs --radiologist"),
        ("rad.new", Role.RADIOLOGIST, "rad.nobody", None, "no active radiologist"),
        ("rg.new", Role.RADIOGRAPHER, "rad.okafor", None, "only a radiologist user"),
        ("rg.new", Role.RADIOGRAPHER, None, "short", "at least 10 characters"),
    ],
)
def test_a_user_that_cannot_be_made_is_refused_with_the_reason(
    runtime: Runtime,
    username: str,
    role: Role,
    radiologist: str | None,
    password: str | None,
    says: str,
) -> None:
    with runtime.sessions.begin() as session, pytest.raises(AccountError, match=says):
        add_user(
            session, username, role, runtime.clock(), radiologist_key=radiologist, password=password
        )


def test_the_same_user_name_twice_is_refused(runtime: Runtime) -> None:
    token_for(runtime, Role.ADMIN)
    with runtime.sessions.begin() as session:
        add_user(session, "twice", Role.ADMIN, runtime.clock())
    with runtime.sessions.begin() as session, pytest.raises(AccountError, match="exists"):
        add_user(session, "twice", Role.ADMIN, runtime.clock())


def test_a_request_holds_one_database_connection_at_a_time(runtime: Runtime) -> None:
    """A request never holds two pooled connections: with two at once, as many
    concurrent requests as the pool holds would wait for each other forever."""
    held, most = [0], [0]

    def checkout(*_: object) -> None:
        held[0] += 1
        most[0] = max(most[0], held[0])

    def checkin(*_: object) -> None:
        held[0] -= 1

    with api_client(runtime, Role.ADMIN) as admin:
        event.listen(runtime.engine, "checkout", checkout)
        event.listen(runtime.engine, "checkin", checkin)
        try:
            assert admin.get("/api/worklist").status_code == 200
            runtime.audit.flush()  # the audit writer's own connection is not the request's
            assert (
                admin.get("/api/reading-list", params={"radiologist": "rad.okafor"}).status_code
                == 200
            )
            runtime.audit.flush()
        finally:
            event.remove(runtime.engine, "checkout", checkout)
            event.remove(runtime.engine, "checkin", checkin)
    assert most[0] == 1


def test_password_guessing_is_slowed_down_per_user_name(runtime: Runtime) -> None:
    with runtime.sessions.begin() as session:
        add_user(session, "rg.guess", Role.RADIOGRAPHER, runtime.clock(), password="y" * 12)

    def attempt(browser: TestClient, password: str) -> tuple[int, str]:
        form = browser.get("/login").text
        token = re.search(r'name="login_csrf" value="([^"]+)"', form)
        assert token is not None
        answer = browser.post(
            "/login",
            data={"username": "rg.guess", "password": password, "login_csrf": token[1]},
            follow_redirects=False,
        )
        return answer.status_code, answer.text

    with TestClient(create_app(runtime)) as browser:
        assert [attempt(browser, "wrong")[0] for _ in range(5)] == [401] * 5
        code, page = attempt(browser, "y" * 12)  # even the right password, for now
        assert code == 429
        assert "Too many failed attempts for this user name. Try again in 10 min." in page
    with TestClient(create_app(runtime)) as fresh:  # a new process starts counting afresh
        assert attempt(fresh, "y" * 12)[0] == 303


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_callers_are_remembered_briefly_and_logging_out_ends_the_session_at_once(
    runtime: Runtime,
) -> None:
    """A token or session is looked up once in ``ttl`` seconds; a change another process
    makes (a user made inactive) counts within ``ttl``; logging out here, at once."""
    ticks = Ticks()
    runtime.callers = RecentCallers(ttl=2.0, monotonic=ticks)
    lookups = [0]

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        lookups[0] += "FROM users" in statement and "api_tokens" in statement

    with api_client(runtime, Role.ADMIN) as admin:
        event.listen(runtime.engine, "before_cursor_execute", count)
        try:
            assert all(admin.get("/api/me").status_code == 200 for _ in range(5))
            assert lookups[0] == 1
        finally:
            event.remove(runtime.engine, "before_cursor_execute", count)
        username = admin.get("/api/me").json()["username"]
        with runtime.sessions.begin() as session:
            session.execute(update(User).where(User.username == username).values(active=False))
        assert admin.get("/api/me").status_code == 200  # remembered for up to 2 s
        ticks.now += 2.0
        refused = admin.get("/api/me")
        assert refused.status_code == 401
        assert refused.json()["detail"] == "unknown or revoked token"

    with runtime.sessions.begin() as session:
        add_user(session, "rg.brief", Role.RADIOGRAPHER, runtime.clock(), password="z" * 12)
    with runtime.sessions.begin() as session:
        cookie = log_in(session, "rg.brief", "z" * 12, runtime.clock())
    assert cookie is not None
    with TestClient(create_app(runtime), cookies={"mri_session": cookie}) as browser:
        csrf = browser.get("/api/me").json()["csrf_token"]
        assert browser.post("/logout", data={"csrf_token": csrf}).status_code == 200
        assert browser.get("/api/me", cookies={"mri_session": cookie}).status_code == 401
