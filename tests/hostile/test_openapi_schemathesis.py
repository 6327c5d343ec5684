"""schemathesis against our OpenAPI document: no operation answers with a server error.

schemathesis' own pytest loader (``schemathesis.pytest.from_fixture``) reads a private
attribute that pytest 9 no longer has, so each operation's hypothesis strategy is run
here directly, with the same check (``not_a_server_error``).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import given
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from mri_pipeline.api.app import create_app
from mri_pipeline.runtime import Runtime
from tests.hostile.conftest import fuzz_settings
from tests.integration.api_tools import token_for

pytestmark = pytest.mark.db

EXAMPLES_PER_OPERATION = 10


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_operation_answers_with_a_server_error(
    module_runtime: Runtime, booked: list[str], mode: GenerationMode
) -> None:
    app = create_app(module_runtime)
    # /api/events is a text/event-stream that never ends: a call to it would not return.
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path="/api/events")
    headers = {"Authorization": f"Bearer {token_for(module_runtime)}"}
    checked, nothing_to_break = [], []
    for result in schema.get_all_operations():
        operation = result.ok()

        @fuzz_settings(max_examples=EXAMPLES_PER_OPERATION)
        @given(case=operation.as_strategy(generation_mode=mode))
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        try:
            call()
        except Unsatisfiable:
            # Negative mode: an operation without parameters or body has no invalid form.
            assert mode is GenerationMode.NEGATIVE, operation.label
            nothing_to_break.append(operation.label)
            continue
        checked.append(operation.label)
    print(f"{mode.value}: {len(checked)} operations checked; no invalid form: {nothing_to_break}")
    assert len(checked) >= 15, checked
