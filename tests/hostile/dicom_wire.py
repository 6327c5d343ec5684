"""Talking to our DICOM server as a hostile peer: hand-encoded data sets, an SCU with short
timeouts, and a watch on the log for handlers that raised.

Datasets are encoded here byte by byte, not by pydicom, so a test can send what pydicom
would refuse to write: wrong VRs, odd lengths, values longer than their VR allows,
sequences inside text elements, tags out of order.
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pynetdicom.association
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    Verification,
)

from mri_pipeline.dicom.server import no_delay
from tests.integration.test_mwl_scp import name_query

# Explicit VR LE: these VRs have two reserved bytes and a 4-byte length (PS3.5 7.1.2).
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"})
SHORT_VRS = frozenset(
    {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "PN", "SH", "SL"}
    | {"SS", "ST", "TM", "UI", "UL", "US"}
)
ITEM = 0xFFFEE000
ITEM_DELIMITATION = 0xFFFEE00D
SEQUENCE_DELIMITATION = 0xFFFEE0DD
UNDEFINED_LENGTH = 0xFFFFFFFF


def _delimiter(tag: int, length: int = 0) -> bytes:
    """Item and delimitation tags carry no VR, in either transfer syntax."""
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, length)


# Our own status codes, and the ones pynetdicom sends when a handler raised.
FIND_FAILURES = frozenset({0xA700, 0xA900, 0xC001, 0xC310})
HANDLER_CRASH_STATUSES = frozenset({0xC311, 0xC312})
SCP_TIMEOUT = 5  # seconds: a hang fails the example instead of stalling the suite


@dataclass(frozen=True)
class Element:
    """One data element as it goes on the wire: ``value`` is bytes or sequence items."""

    tag: int
    vr: str
    value: bytes | tuple[tuple[Element, ...], ...]
    undefined_length: bool = False


def _header(tag: int, vr: str, length: int, *, implicit: bool) -> bytes:
    group_element = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    if implicit:
        return group_element + struct.pack("<I", length)
    if vr in LONG_VRS:
        return group_element + vr.encode("ascii") + b"\0\0" + struct.pack("<I", length)
    return group_element + vr.encode("ascii") + struct.pack("<H", length)


def encode_elements(elements: tuple[Element, ...] | list[Element], *, implicit: bool) -> bytes:
    """The elements in the order given, in Implicit or Explicit VR Little Endian."""
    out = bytearray()
    for element in elements:
        if isinstance(element.value, bytes):
            body = element.value
            vr = element.vr
        else:
            items = bytearray()
            for item in element.value:
                content = encode_elements(item, implicit=implicit)
                if element.undefined_length:
                    items += _delimiter(ITEM, UNDEFINED_LENGTH) + content
                    items += _delimiter(ITEM_DELIMITATION)
                else:
                    items += _delimiter(ITEM, len(content)) + content
            body = bytes(items)
            vr = "SQ" if element.vr not in LONG_VRS else element.vr
            if element.undefined_length:
                out += _header(element.tag, vr, UNDEFINED_LENGTH, implicit=implicit)
                out += body + _delimiter(SEQUENCE_DELIMITATION)
                continue
        if not implicit and vr not in LONG_VRS and len(body) > 0xFFFF:
            vr = "UN"  # a short VR cannot say this length: send it as unknown instead
        out += _header(element.tag, vr, len(body), implicit=implicit) + body
    return bytes(out)


def elements_of_dataset(dataset: Dataset) -> tuple[Element, ...]:
    """``dataset`` as wire elements: text in UTF-8 whatever it claims, bytes as they are.

    A bytes value goes out under the tag's dictionary VR, as a console that puts garbage
    in a text attribute would send it.
    """
    elements = []
    for element in dataset:
        tag = int(element.tag)
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = element.VR
        if " or " in vr or vr not in LONG_VRS | SHORT_VRS:
            vr = "UN"
        value = element.value
        if element.VR == "SQ":
            items = tuple(elements_of_dataset(item) for item in value or [])
            elements.append(Element(tag, "SQ", items))
            continue
        if isinstance(value, bytes):
            raw = value
        elif value is None:
            raw = b""
        elif isinstance(value, MultiValue | list | tuple):
            raw = "\\".join(str(v) for v in value).encode("utf-8", "surrogatepass")
        else:
            raw = str(value).encode("utf-8", "surrogatepass")
        if len(raw) % 2:
            raw += b"\0" if vr == "UI" else b" "
        elements.append(Element(tag, vr, raw))
    return tuple(elements)


def encode_dataset(dataset: Dataset, *, implicit: bool) -> bytes:
    """``dataset`` encoded by hand: pydicom would refuse to write many hostile values."""
    return encode_elements(elements_of_dataset(dataset), implicit=implicit)


@contextmanager
def sending_raw(payload: bytes) -> Iterator[None]:
    """The next ``send_c_find``/``send_n_create``/``send_n_set`` sends ``payload`` as is."""
    with mock.patch.object(pynetdicom.association, "encode", lambda *_a, **_k: payload):
        yield


@dataclass
class Outcome:
    """What one request on its own association got back."""

    statuses: list[int]
    identifiers: list[Dataset | None]
    aborted: bool
    last_status: Dataset | None = None


class Peer:
    """A pynetdicom SCU with short timeouts: one association per request."""

    def __init__(self, port: int, ae_title: str = "FINDSCU") -> None:
        self.port = port
        self._aes: dict[bool, AE] = {}
        for implicit in (True, False):
            ae = AE(ae_title=ae_title)
            syntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
            for abstract in (
                Verification,
                ModalityWorklistInformationFind,
                ModalityPerformedProcedureStep,
            ):
                ae.add_requested_context(abstract, syntax)
            ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = SCP_TIMEOUT
            self._aes[implicit] = ae

    @contextmanager
    def association(self, *, implicit: bool = True) -> Iterator[Any]:
        assoc = self._aes[implicit].associate(
            "127.0.0.1",
            self.port,
            ae_title="LSP_RIS",
            evt_handlers=[(evt.EVT_CONN_OPEN, no_delay)],
        )
        assert assoc.is_established, "the server refused or did not answer an association"
        try:
            yield assoc
        finally:
            if assoc.is_established:
                assoc.release()

    def find_raw(self, payload: bytes, *, implicit: bool) -> Outcome:
        """A C-FIND whose Identifier is ``payload`` exactly."""
        with sending_raw(payload):
            return self.find(Dataset(), implicit=implicit)

    def find(self, query: Dataset, *, implicit: bool = True) -> Outcome:
        with self.association(implicit=implicit) as assoc:
            answers = list(assoc.send_c_find(query, ModalityWorklistInformationFind))
            aborted = assoc.is_aborted
        return Outcome(
            [int(status.Status) if "Status" in status else -1 for status, _ in answers],
            [identifier for _, identifier in answers],
            aborted,
        )

    def echo(self) -> int:
        with self.association() as assoc:
            status = assoc.send_c_echo()
            return int(status.Status) if "Status" in status else -1

    def n_create(self, uid: str | None, payload: bytes, *, implicit: bool) -> Outcome:
        with self.association(implicit=implicit) as assoc, sending_raw(payload):
            status, _ = assoc.send_n_create(Dataset(), ModalityPerformedProcedureStep, uid)
            aborted = assoc.is_aborted
        return _n_outcome(status, aborted)

    def n_set(self, uid: str, payload: bytes, *, implicit: bool) -> Outcome:
        with self.association(implicit=implicit) as assoc, sending_raw(payload):
            status, _ = assoc.send_n_set(Dataset(), ModalityPerformedProcedureStep, uid)
            aborted = assoc.is_aborted
        return _n_outcome(status, aborted)


def _n_outcome(status: Dataset, aborted: bool) -> Outcome:
    code = int(status.Status) if "Status" in status else -1
    return Outcome([code], [], aborted, last_status=status)


def assert_still_serving(port: int, expected_items: int | None = None) -> None:
    """C-ECHO succeeds and a plain worklist query gets its items and a final success."""
    peer = Peer(port)
    assert peer.echo() == 0x0000
    answer = peer.find(name_query("*"))
    assert not answer.aborted
    assert answer.statuses[-1] == 0x0000, [hex(s) for s in answer.statuses]
    assert all(s == 0xFF00 for s in answer.statuses[:-1])
    if expected_items is not None:
        assert len(answer.statuses) - 1 == expected_items


# Log records that mean a handler raised instead of answering (pynetdicom then sends
# 0xC311 or 0x0110), or that our code logged an unexpected failure.
CRASH_MESSAGES = ("Exception in handler", "Exception in the handler", "Failed encoding")


class CrashWatch(logging.Handler):
    """Collects ERROR records of pynetdicom's handler wrappers and of our own code."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.name.startswith("mri_pipeline") or any(m in message for m in CRASH_MESSAGES):
            self.records.append(record)

    def take(self) -> list[str]:
        """The messages seen since the last call (with their tracebacks), then forget them."""
        taken = [self.format(r) for r in self.records]
        self.records.clear()
        return taken


@contextmanager
def watching_for_crashes() -> Iterator[CrashWatch]:
    watch = CrashWatch()
    watch.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    loggers = [logging.getLogger("pynetdicom"), logging.getLogger("mri_pipeline")]
    for logger in loggers:
        logger.addHandler(watch)
    try:
        yield watch
    finally:
        for logger in loggers:
            logger.removeHandler(watch)


def raw_connection(port: int, timeout: float = SCP_TIMEOUT) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
