"""Raw, malformed PDUs on the DICOM port: the server drops the connection and keeps serving.

Our AE's ACSE, DIMSE and network timeouts are 30 s (dicom/server.py build_ae); no test
here waits for them: each hangs up after at most a quarter of a second.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mri_pipeline.dicom.server import DicomServerConfig, start_dicom_server
from mri_pipeline.runtime import Runtime
from tests.conftest import free_port
from tests.hostile.conftest import fuzz_settings
from tests.hostile.dicom_wire import (
    Peer,
    assert_still_serving,
    raw_connection,
    watching_for_crashes,
)
from tests.hostile.pdus import (
    A_ABORT,
    A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ,
    P_DATA_TF,
    associate_rq,
    established,
    p_data,
    pdu,
    read_pdu,
    send_and_hang_up,
)
from tests.integration.dcmtk import echoscu

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def module_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """SQLite only: these tests are about the network layer, not the database."""
    return f"sqlite:///{tmp_path_factory.mktemp('pdus') / 'pdus.db'}"


@pytest.fixture(scope="module")
def small_port(module_runtime: Runtime) -> Iterator[int]:
    """A second server allowing only two associations: a connection that kept its slot
    after the peer went away would lock the next test out."""
    port = free_port()
    config = DicomServerConfig("LSP_RIS", "127.0.0.1", port, False, 2)
    server = start_dicom_server(config, module_runtime.nodes, module_runtime.finder)
    try:
        yield port
    finally:
        server.shutdown()


def echo_soon(port: int, within: float = 2.0) -> None:
    """C-ECHO succeeds, allowing the server a moment to notice a connection went away."""
    deadline = time.monotonic() + within
    while True:
        try:
            assert Peer(port).echo() == 0x0000
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# What a server may answer a broken opening with: nothing (it hung up), an A-ABORT, an
# A-ASSOCIATE-RJ, or an A-ASSOCIATE-AC when the damage left a valid request.
REFUSALS = (b"", bytes([A_ABORT]), bytes([A_ASSOCIATE_RJ]), bytes([A_ASSOCIATE_AC]))

BEFORE_ASSOCIATION: dict[str, bytes] = {
    "zeros": bytes(64),
    "an HTTP request": b"GET / HTTP/1.1\r\nHost: ris\r\n\r\n",
    "a TLS client hello": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(40),
    "an unknown PDU type": pdu(0x09, b"abc"),
    "half a PDU header": associate_rq()[:3],
    "a truncated A-ASSOCIATE-RQ": associate_rq()[:40],
    "an A-ASSOCIATE-RQ short of 5 bytes": associate_rq()[:-5],
    "an A-ASSOCIATE-RQ claiming 4 GiB": associate_rq()[:2]
    + struct.pack(">L", 0xFFFFFFFF)
    + associate_rq()[6:],
    "an A-ASSOCIATE-RQ with an absurd item length": associate_rq(context_item_length=0xFFFF),
    "an empty A-ASSOCIATE-RQ": pdu(0x01, b""),
    "a P-DATA-TF before association": p_data(1, 0b11, bytes(10)),
    "an A-RELEASE-RQ before association": pdu(0x05, bytes(4)),
    "an A-ABORT before association": pdu(0x07, bytes(4)),
    "blank AE titles": associate_rq(called=b"", calling=b""),
    "an unknown abstract syntax": associate_rq(abstract_syntax=b"1.2.3.4"),
}


@pytest.mark.parametrize("data", BEFORE_ASSOCIATION.values(), ids=BEFORE_ASSOCIATION.keys())
def test_a_malformed_opening_is_dropped_and_the_server_keeps_serving(
    dicom_port: int, small_port: int, data: bytes
) -> None:
    with watching_for_crashes() as crashes:
        for port in (dicom_port, small_port):
            answer = send_and_hang_up(port, data, timeout=0.25)
            assert answer[:1] in REFUSALS, answer
        assert crashes.take() == []
    echo_soon(small_port)
    assert_still_serving(dicom_port, expected_items=3)


ON_AN_ASSOCIATION: dict[str, bytes] = {
    # 64 KiB sent of 2 GiB announced: the server reads on until the peer hangs up.
    "a P-DATA-TF claiming 2 GiB": pdu(P_DATA_TF, bytes(65536), length=0x7FFFFFFF),
    "a PDV longer than its PDU": pdu(P_DATA_TF, struct.pack(">LBB", 1000, 1, 3) + b"xx"),
    "a command set of garbage": p_data(1, 0b11, b"\xff" * 20),
    "a PDV for an unknown context": p_data(99, 0b11, bytes(20)),
    "a second A-ASSOCIATE-RQ": associate_rq(),
    "half a P-DATA-TF": p_data(1, 0b11, bytes(20))[:9],
}


# pynetdicom's DUL thread dies on a command set without (0000,0100) (dimse_messages.py
# decode_msg): the association ends and the socket closes, but the thread's exception is
# only printed. The server itself is unaffected, which is what this test checks.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("data", ON_AN_ASSOCIATION.values(), ids=ON_AN_ASSOCIATION.keys())
def test_a_malformed_pdu_on_an_association_is_dropped_and_the_server_keeps_serving(
    dicom_port: int, small_port: int, data: bytes
) -> None:
    with watching_for_crashes() as crashes:
        for port in (dicom_port, small_port):
            with established(port) as sock:
                try:
                    sock.sendall(data)
                except (BrokenPipeError, ConnectionResetError):
                    continue
                answer = read_pdu(sock, 0.25)
                assert answer[:1] in (b"", bytes([A_ABORT])), answer[:16]
        assert crashes.take() == []
    echo_soon(small_port)
    assert_still_serving(dicom_port, expected_items=3)


def test_idle_connections_do_not_stop_other_consoles(dicom_port: int) -> None:
    """Connections that say nothing, or stop mid-PDU, each wait for the ACSE timeout alone."""
    idle = [raw_connection(dicom_port) for _ in range(3)]
    stalled = raw_connection(dicom_port)
    stalled.sendall(associate_rq()[:20])
    try:
        started = time.monotonic()
        assert_still_serving(dicom_port, expected_items=3)
        assert echoscu(dicom_port).returncode == 0
        assert time.monotonic() - started < 5
    finally:
        for sock in [*idle, stalled]:
            sock.close()


def test_connections_closed_before_associating_give_their_slot_back_at_once(
    small_port: int,
) -> None:
    # Before the fix each of these held one of the two slots for the 30 s ACSE timeout.
    for _ in range(6):
        raw_connection(small_port).close()
        send_and_hang_up(small_port, bytes(16), timeout=0.05)
    started = time.monotonic()
    echo_soon(small_port, within=2.0)
    assert time.monotonic() - started < 2.0


MUTATIONS = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 200), st.integers(0, 255)),
    st.tuples(st.just("cut"), st.integers(0, 200), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 200), st.integers(0, 255)),
    st.tuples(st.just("length"), st.just(2), st.integers(0, 2**32 - 1)),
)


def mutated(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, position, value in mutations:
        where = position % (len(out) or 1)
        if kind == "flip" and out:
            out[where] = value
        elif kind == "cut":
            del out[where:]
        elif kind == "insert":
            out[where:where] = bytes([value])
        elif kind == "length" and len(out) >= 6:
            out[2:6] = struct.pack(">L", value)
    return bytes(out)


def test_fuzzed_association_requests_never_stop_the_server(small_port: int) -> None:
    with watching_for_crashes() as crashes:

        @fuzz_settings(max_examples=50)
        @given(mutations=st.lists(MUTATIONS, min_size=1, max_size=4))
        def one_request(mutations: list[tuple[str, int, int]]) -> None:
            answer = send_and_hang_up(small_port, mutated(associate_rq(), mutations), 0.1)
            assert answer[:1] in REFUSALS, answer[:16]
            assert crashes.take() == []

        one_request()
    echo_soon(small_port)
