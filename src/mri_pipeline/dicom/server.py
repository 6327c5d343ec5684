"""Our Application Entity: Verification, Modality Worklist FIND and MPPS.

Handlers stay thin: decode the request, ask the worklist service, encode the answer.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, _config, evt
from sqlalchemy.exc import SQLAlchemyError

from mri_pipeline.dicom.charset import set_response_charset
from mri_pipeline.dicom.mpps import MODALITY_PERFORMED_PROCEDURE_STEP, MppsHandlers
from mri_pipeline.dicom.tls_server import start_tls_server
from mri_pipeline.domain.errors import InvalidQuery
from mri_pipeline.domain.matching import NEVER_MATCHED
from mri_pipeline.domain.mwl_response import build_response
from mri_pipeline.domain.nodes import NodeTable
from mri_pipeline.logsafe import database_away, describe_database_error
from mri_pipeline.services.worklist import TooManyMatches, WorklistFinder

log = logging.getLogger(__name__)

# pynetdicom would log whole identifiers, patient names included; we log identifiers only.
_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False

VERIFICATION = "1.2.840.10008.1.1"
MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"

STATUS_SUCCESS = 0x0000
STATUS_PENDING = 0xFF00
STATUS_PENDING_WARNING = 0xFF01  # optional keys not supported
STATUS_CANCEL = 0xFE00
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_IDENTIFIER_MISMATCH = 0xA900
STATUS_UNABLE_TO_PROCESS = 0xC001
STATUS_UNABLE_TO_DECODE = 0xC310


# pynetdicom's DUL thread reads the socket only when it has nothing left to send, so a
# C-CANCEL behind a long answer would be read after the last response. Every so many
# responses we let the send queue drain so an incoming C-CANCEL is read in time.
CANCEL_CHECK_EVERY = 32


def let_peer_speak(assoc: Any, timeout: float = 2.0) -> None:
    """Wait until our queued responses are on the wire, then give the reader a moment."""
    queue = getattr(getattr(assoc, "dul", None), "to_provider_queue", None)
    if queue is None:
        return
    deadline = time.monotonic() + timeout
    while not queue.empty() and time.monotonic() < deadline:
        time.sleep(0.0005)
    time.sleep(0.002)


def failure(status: int, comment: str) -> Dataset:
    answer = Dataset()
    answer.Status = status
    answer.ErrorComment = comment[:64]
    return answer


@dataclass(frozen=True)
class TlsListener:
    """Where our AE speaks DICOM TLS, and how (``mri_pipeline.tls.server_context``)."""

    port: int
    context: ssl.SSLContext


@dataclass
class DicomServerConfig:
    ae_title: str
    host: str
    port: int
    allow_any_ae: bool
    max_associations: int
    tls: TlsListener | None = None  # a second listener, speaking DICOM TLS
    plain: bool = True  # listen on ``port`` without TLS


@dataclass
class DicomListeners:
    """The running listeners of our AE (plain, TLS or both); ``shutdown()`` stops them."""

    ae: AE
    servers: list[Any] = field(default_factory=list)

    def shutdown(self) -> None:
        for server in self.servers:
            server.shutdown()


class WorklistHandlers:
    """Event handlers bound to one AE."""

    def __init__(self, finder: WorklistFinder, nodes: NodeTable) -> None:
        self._finder = finder
        self._nodes = nodes

    def _peer_charset(self, ae_title: str) -> str:
        node = self._nodes.get(ae_title)
        return node.character_set if node is not None else "ISO_IR 192"

    def on_echo(self, event: Any) -> int:
        return STATUS_SUCCESS

    def on_find(self, event: Any) -> Iterator[tuple[int | Dataset, Dataset | None]]:
        calling = str(event.assoc.requestor.ae_title).strip()
        try:
            identifier: Dataset = event.identifier
            # Touch every element now so a malformed value fails here, not mid-matching.
            for _element in identifier.iterall():
                pass
        except Exception as exc:  # pydicom raises many types on a bad encoding
            # The error's text may quote the value at fault, a name perhaps: its kind only.
            log.warning(
                "C-FIND identifier not decodable calling_ae=%s error=%s",
                calling,
                type(exc).__name__,
            )
            yield failure(STATUS_UNABLE_TO_DECODE, "identifier could not be decoded"), None
            return
        # Only never-matched attributes (character set, timezone offset) as keys would give
        # answers with nothing in them, which cannot be sent: refuse such a query.
        if not any(e.tag.element != 0 and e.tag not in NEVER_MATCHED for e in identifier):
            log.warning("C-FIND refused calling_ae=%s reason=no keys", calling)
            yield failure(STATUS_IDENTIFIER_MISMATCH, "the identifier holds no keys"), None
            return
        try:
            answer = self._finder.find(identifier, calling)
        except InvalidQuery as exc:
            log.warning("C-FIND refused calling_ae=%s reason=%s", calling, exc)
            yield failure(STATUS_IDENTIFIER_MISMATCH, str(exc)), None
            return
        except TooManyMatches as exc:
            log.warning("C-FIND refused calling_ae=%s matches=%d", calling, exc.count)
            yield failure(STATUS_OUT_OF_RESOURCES, str(exc)), None
            return
        except SQLAlchemyError as exc:
            if database_away(exc):
                log.warning(
                    "C-FIND failed: database unavailable calling_ae=%s error=%s",
                    calling,
                    describe_database_error(exc),
                )
            else:
                log.exception("C-FIND failed on the database calling_ae=%s", calling)
            yield failure(STATUS_UNABLE_TO_PROCESS, "worklist database unavailable"), None
            return
        pending = STATUS_PENDING_WARNING if answer.unsupported else STATUS_PENDING
        charset = self._peer_charset(calling)
        log.info(
            "C-FIND calling_ae=%s matches=%d unsupported_keys=%d",
            calling,
            len(answer.items),
            len(answer.unsupported),
        )
        for index, item in enumerate(answer.items):
            if index and index % CANCEL_CHECK_EVERY == 0:
                let_peer_speak(event.assoc)
            if event.is_cancelled:
                log.info("C-FIND cancelled calling_ae=%s", calling)
                yield STATUS_CANCEL, None
                return
            yield pending, set_response_charset(build_response(identifier, item), charset)

    def on_rejected(self, event: Any) -> None:
        log.warning(
            "association rejected calling_ae=%s called_ae=%s peer=%s",
            str(event.assoc.requestor.ae_title).strip(),
            str(event.assoc.acceptor.ae_title).strip(),
            event.assoc.requestor.address,
        )


def no_delay(event: Any) -> None:
    """Turn Nagle off: an answer goes out as two PDUs, and the second would otherwise wait
    for the peer's delayed ACK (about 40 ms a response on Linux)."""
    transport = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
    if transport is not None:
        transport.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def free_slot_of_a_dropped_connection(event: Any) -> None:
    """A peer that connects and goes away (or is dropped for a malformed PDU) before asking
    for an association: pynetdicom's acceptor would still wait the whole ACSE timeout for
    an A-ASSOCIATE-RQ that cannot come, holding one of ``max_associations`` all along, so a
    port scan or a TCP health check could lock the consoles out. Wake it now; it takes the
    empty answer as that timeout and ends."""
    assoc = event.assoc
    if assoc.is_acceptor and assoc.requestor.primitive is None and not assoc.is_established:
        assoc.dul.to_user_queue.put(None)


def build_ae(config: DicomServerConfig, nodes: NodeTable) -> AE:
    ae = AE(ae_title=config.ae_title)
    ae.add_supported_context(VERIFICATION)
    ae.add_supported_context(MODALITY_WORKLIST_FIND)
    ae.maximum_associations = config.max_associations
    ae.network_timeout = 30
    ae.dimse_timeout = 30
    ae.acse_timeout = 30
    if config.allow_any_ae:
        ae.require_called_aet = False
        ae.require_calling_aet = []
    else:
        ae.require_called_aet = True
        ae.require_calling_aet = nodes.ae_titles
    return ae


def start_dicom_server(
    config: DicomServerConfig,
    nodes: NodeTable,
    finder: WorklistFinder,
    mpps: MppsHandlers | None = None,
) -> DicomListeners:
    """Start the listeners in background threads; the caller stops them with ``.shutdown()``."""
    handlers = WorklistHandlers(finder, nodes)
    ae = build_ae(config, nodes)
    bindings: list[Any] = [
        (evt.EVT_CONN_OPEN, no_delay),
        (evt.EVT_CONN_CLOSE, free_slot_of_a_dropped_connection),
        (evt.EVT_C_ECHO, handlers.on_echo),
        (evt.EVT_C_FIND, handlers.on_find),
        (evt.EVT_REJECTED, handlers.on_rejected),
    ]
    if mpps is not None:
        ae.add_supported_context(MODALITY_PERFORMED_PROCEDURE_STEP)
        bindings += [(evt.EVT_N_CREATE, mpps.on_n_create), (evt.EVT_N_SET, mpps.on_n_set)]
    listeners = DicomListeners(ae)
    try:
        if config.plain:
            address = (config.host, config.port)
            listeners.servers.append(ae.start_server(address, block=False, evt_handlers=bindings))
            log.info(
                "DICOM server listening ae_title=%s host=%s port=%d allow_any_ae=%s",
                config.ae_title,
                config.host,
                config.port,
                config.allow_any_ae,
            )
        if config.tls is not None:
            address = (config.host, config.tls.port)
            listeners.servers.append(start_tls_server(ae, address, config.tls.context, bindings))
            log.info(
                "DICOM TLS listening ae_title=%s host=%s port=%d peer_certificate=%s",
                config.ae_title,
                config.host,
                config.tls.port,
                "required" if config.tls.context.verify_mode is ssl.CERT_REQUIRED else "optional",
            )
    except BaseException:
        listeners.shutdown()
        raise
    return listeners
