"""Found by the mixed load: pynetdicom's association thread of an SCU could take the
answer a ``send_*()`` was waiting for (its pause handshake races under a busy CPU), and
the console then waited out the DIMSE timeout. ``leave_answers_to_the_caller`` leaves
every answer to the blocking read of the ``send_*()`` call."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from pynetdicom import AE

from mri_pipeline.dicom.scanner import leave_answers_to_the_caller
from mri_pipeline.dicom.server import VERIFICATION
from tests.conftest import free_port


@pytest.fixture
def echo_port() -> Iterator[int]:
    port = free_port()
    scp = AE(ae_title="ECHO_SCP")
    scp.add_supported_context(VERIFICATION)
    server = scp.start_server(("127.0.0.1", port), block=False)
    try:
        yield port
    finally:
        server.shutdown()


def test_a_thread_reading_without_blocking_never_takes_the_answer_a_send_waits_for(
    echo_port: int,
) -> None:
    scu = AE(ae_title="MRI1")
    scu.add_requested_context(VERIFICATION)
    scu.dimse_timeout = 5
    assoc = scu.associate("127.0.0.1", echo_port, ae_title="ECHO_SCP")
    assert assoc.is_established
    leave_answers_to_the_caller(assoc)
    stop = threading.Event()
    taken: list[object] = []

    def race() -> None:
        # What the association thread does when it runs while it reads as paused.
        while not stop.is_set():
            _, message = assoc.dimse.get_msg(block=False)
            if message is not None:
                taken.append(message)

    racer = threading.Thread(target=race)
    racer.start()
    try:
        statuses = [assoc.send_c_echo() for _ in range(30)]
    finally:
        stop.set()
        racer.join()
        assoc.release()
    assert taken == []
    assert [int(status.Status) for status in statuses] == [0] * 30
