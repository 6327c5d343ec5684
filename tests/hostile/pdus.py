"""Upper-layer PDUs built by hand (PS3.8 9.3), so tests can send them broken."""

from __future__ import annotations

import socket
import struct
import time

from tests.hostile.dicom_wire import raw_connection

APPLICATION_CONTEXT = b"1.2.840.10008.3.1.1.1"
VERIFICATION = b"1.2.840.10008.1.1"
IMPLICIT_VR_LITTLE_ENDIAN = b"1.2.840.10008.1.2"
IMPLEMENTATION_CLASS = b"1.2.826.0.1.3680043.9.9999.1"

A_ASSOCIATE_RQ = 0x01
A_ASSOCIATE_AC = 0x02
A_ASSOCIATE_RJ = 0x03
P_DATA_TF = 0x04
A_RELEASE_RQ = 0x05
A_ABORT = 0x07


def pdu(pdu_type: int, body: bytes, *, length: int | None = None) -> bytes:
    """Type, reserved byte, 4-byte big-endian length (the true one unless given), body."""
    return struct.pack(">BBL", pdu_type, 0, len(body) if length is None else length) + body


def item(item_type: int, body: bytes, *, length: int | None = None) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(body) if length is None else length) + body


def associate_rq(
    *,
    called: bytes = b"LSP_RIS",
    calling: bytes = b"FINDSCU",
    abstract_syntax: bytes = VERIFICATION,
    context_item_length: int | None = None,
) -> bytes:
    """A-ASSOCIATE-RQ proposing one presentation context (ID 1), Implicit VR LE."""
    context = item(
        0x20,
        b"\x01\x00\x00\x00" + item(0x30, abstract_syntax) + item(0x40, IMPLICIT_VR_LITTLE_ENDIAN),
        length=context_item_length,
    )
    user = item(0x50, item(0x51, struct.pack(">L", 16384)) + item(0x52, IMPLEMENTATION_CLASS))
    body = (
        struct.pack(">HH", 1, 0)
        + called.ljust(16)
        + calling.ljust(16)
        + bytes(32)
        + item(0x10, APPLICATION_CONTEXT)
        + context
        + user
    )
    return pdu(A_ASSOCIATE_RQ, body)


def p_data(context_id: int, message_control: int, fragment: bytes) -> bytes:
    """A P-DATA-TF carrying one PDV (message control: bit 0 command, bit 1 last)."""
    pdv = struct.pack(">LBB", len(fragment) + 2, context_id, message_control) + fragment
    return pdu(P_DATA_TF, pdv)


def read_pdu(sock: socket.socket, timeout: float) -> bytes:
    """The first PDU the server sends, b"" when it closes first, or what came in time."""
    sock.settimeout(timeout)
    received = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                return received
            received += chunk
            if len(received) >= 6:
                (length,) = struct.unpack(">L", received[2:6])
                if len(received) >= 6 + length:
                    return received
    except (TimeoutError, ConnectionResetError):
        pass
    return received


def send_and_hang_up(port: int, data: bytes, timeout: float = 0.5) -> bytes:
    """Send ``data`` on a fresh connection, take the server's first answer, close."""
    with raw_connection(port) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return b""
        return read_pdu(sock, timeout)


def established(port: int, timeout: float = 5.0) -> socket.socket:
    """A raw connection on which the server accepted a Verification association."""
    sock = raw_connection(port)
    sock.sendall(associate_rq())
    answer = read_pdu(sock, timeout)
    assert answer[:1] == bytes([A_ASSOCIATE_AC]), answer[:16]
    return sock
