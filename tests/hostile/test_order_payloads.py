"""Fuzzed referrals to POST /api/orders: 201, or a 4xx that says what is wrong; never a 5xx."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from mri_pipeline.api.app import create_app
from mri_pipeline.runtime import Runtime
from tests.hostile.conftest import fuzz_settings
from tests.integration.api_tools import api_client

pytestmark = pytest.mark.db

# Text a referral system might send in a name or an ID: every plane of Unicode, control
# characters, NUL, lone surrogates (JSON can carry them as \ud800), and far too much of it.
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=20),
    st.sampled_from(
        ["", " ", "\0", "\ud800", "Müller^Hans", "山田^太郎", "a\\b", "^^^^^", "'; --"]
    ),
    st.integers(65, 20_000).map(lambda n: "Ä" * n),
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and Infinity too: Python's json writes and reads them
    | HOSTILE_TEXT,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=8,
)
PATIENT_FIELDS = [
    "patient_id",
    "name",
    "birth_date",
    "sex",
    "weight_kg",
    "medical_alerts",
    "allergies",
]
ORDER_FIELDS = [
    "patient",
    "referring_physician",
    "indication",
    "red_flags",
    "clinical_details",
    "station",
    "scheduled_date",
    "scheduled_time",
]
PLAUSIBLE = {
    "birth_date": st.sampled_from(["1970-01-01", "19700101", "1970-02-30", "0000-00-00", ""]),
    "sex": st.sampled_from(["M", "F", "O", "X", "m", ""]),
    "weight_kg": st.one_of(st.floats(), st.integers(-5, 1000), st.just("82")),
    "indication": st.sampled_from(["radiculopathy", "infection", "screening", "back-ache", ""]),
    "red_flags": st.lists(st.sampled_from(["suspected-ces", "dragons", "", "infection"])),
    "station": st.sampled_from(["MRI1", "MRI2", "CT1", "", "mri1"]),
    "scheduled_date": st.sampled_from(["2026-03-03", "20260303", "2020-01-01", "2026-02-30"]),
    "scheduled_time": st.sampled_from(["09:00", "25:00", "09:00:00.5", "9", "23:59"]),
}


def referral(number: int) -> dict[str, Any]:
    return {
        "patient": {
            "patient_id": f"FZ{number:06d}",
            "name": f"Fuzz^Patient{number}",
            "birth_date": "1970-01-01",
            "sex": "M",
        },
        "indication": "radiculopathy",
    }


@st.composite
def mangled_referrals(draw: st.DrawFn, most: int = 4) -> dict[str, Any]:
    """A good referral with fields replaced, removed or added, at both levels."""
    body = referral(draw(st.integers(0, 999_999)))
    for _ in range(draw(st.integers(1, most))):
        level = draw(st.sampled_from(["order", "patient"]))
        target: Any = body if level == "order" else body.get("patient")
        if not isinstance(target, dict):
            target = body
            level = "order"
        fields = ORDER_FIELDS if level == "order" else PATIENT_FIELDS
        field = draw(st.sampled_from([*fields, "unexpected_field"]))
        action = draw(st.sampled_from(["plausible", "random", "delete"]))
        if action == "delete":
            target.pop(field, None)
        elif action == "plausible" and field in PLAUSIBLE:
            target[field] = draw(PLAUSIBLE[field])
        elif field in ("name", "patient_id", "referring_physician", "clinical_details"):
            target[field] = draw(HOSTILE_TEXT)
        else:
            target[field] = draw(JSON_VALUES)
    return body


BODIES = st.one_of(
    mangled_referrals(most=1).map(lambda body: json.dumps(body).encode()),
    mangled_referrals().map(lambda body: json.dumps(body).encode()),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=200),  # not JSON at all
)


def assert_clean_answer(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code == 201:
        assert response.json()["accession_number"]
        return
    assert 400 <= response.status_code < 500, response.status_code
    detail = response.json()["detail"]
    assert detail, "a refusal must say why"
    if isinstance(detail, list):
        assert all(problem.get("msg") for problem in detail), detail


def test_fuzzed_order_payloads_get_201_or_a_4xx_with_a_message(runtime: Runtime) -> None:
    with api_client(runtime) as client:

        @fuzz_settings(max_examples=150)
        @given(body=BODIES, content_type=st.sampled_from(["application/json", "text/plain"]))
        def one_order(body: bytes, content_type: str) -> None:
            response = client.post(
                "/api/orders", content=body, headers={"Content-Type": content_type}
            )
            assert_clean_answer(response)

        one_order()
        # The desk still takes an ordinary referral afterwards.
        assert client.post("/api/orders", json=referral(1_000_001)).status_code == 201


def test_an_order_without_a_token_is_refused_with_401(runtime: Runtime) -> None:
    with TestClient(create_app(runtime)) as anonymous:
        response = anonymous.post("/api/orders", json=referral(1))
    assert response.status_code == 401
    assert response.json()["detail"]
