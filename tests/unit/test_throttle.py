"""Login throttling: five failures in ten minutes lock a user name until the oldest ages out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mri_pipeline.domain.throttle import LoginThrottle

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_five_failures_lock_the_name_until_the_first_is_ten_minutes_old() -> None:
    throttle = LoginThrottle()
    for minute in range(5):
        assert throttle.wait("okafor", T0 + timedelta(minutes=minute)) is None
        throttle.failed("okafor", T0 + timedelta(minutes=minute))
    assert throttle.wait("okafor", T0 + timedelta(minutes=5)) == timedelta(minutes=5)
    assert throttle.wait("OKAFOR", T0 + timedelta(minutes=9)) == timedelta(minutes=1)
    assert throttle.wait("okafor", T0 + timedelta(minutes=10)) is None  # the first aged out
    assert throttle.wait("moreau", T0 + timedelta(minutes=5)) is None  # other names unaffected


def test_a_success_forgets_the_failures() -> None:
    throttle = LoginThrottle(limit=2)
    throttle.failed("brennan", T0)
    throttle.succeeded("brennan")
    throttle.failed("brennan", T0)
    assert throttle.wait("brennan", T0) is None
