"""Our AE's DICOM TLS listener.

pynetdicom's server does the TLS handshake inside its accept loop: a peer that connects
and sends nothing (a console still speaking plain DICOM to the wrong port waits for an
answer first, and so does a port scanner) would hold that loop, and with it every other
console, for as long as it likes; a failed handshake is dropped without a word. Here the
accept loop only accepts, and each connection's handshake runs in that connection's own
thread under a timeout, logged with the peer's address when it fails.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from typing import Any

from pynetdicom import AE
from pynetdicom.transport import ThreadedAssociationServer

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0  # seconds a peer has to complete the TLS handshake


def handshake_failure(exc: OSError) -> str:
    """What went wrong, in OpenSSL's words (no key material is ever in them)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"{exc.reason}: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, TimeoutError):
        return f"no handshake within {HANDSHAKE_TIMEOUT:.0f} s"
    return exc.strerror or type(exc).__name__


class TlsAssociationServer(ThreadedAssociationServer):
    """A threaded association server that wraps each connection in TLS in its own thread."""

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None
        return self.socket.accept()  # plain TCP: the handshake is the connection's thread's

    def process_request_thread(
        self,
        request: socket.socket | tuple[bytes, socket.socket],
        client_address: tuple[str, int] | str,
    ) -> None:
        assert isinstance(request, socket.socket) and self.ssl_context is not None
        peer = f"{client_address[0]}:{client_address[1]}"
        try:
            request.settimeout(HANDSHAKE_TIMEOUT)
            wrapped = self.ssl_context.wrap_socket(request, server_side=True)
            wrapped.settimeout(None)  # as pynetdicom leaves an accepted plain socket
        except OSError as exc:  # ssl.SSLError, a timeout, or a reset mid-handshake
            log.warning(
                "DICOM TLS handshake failed peer=%s reason=%s", peer, handshake_failure(exc)
            )
            request.close()
            return
        log.debug(
            "DICOM TLS peer=%s subject=%s", peer, (wrapped.getpeercert() or {}).get("subject")
        )
        super().process_request_thread(wrapped, client_address)


def start_tls_server(
    ae: AE, address: tuple[str, int], context: ssl.SSLContext, handlers: list[Any]
) -> TlsAssociationServer:
    """Start a TLS listener of ``ae`` in a background thread (as ``AE.start_server`` with
    ``block=False``); ``shutdown()`` stops it, and so does ``ae.shutdown()``."""
    server = ae.make_server(
        address,
        ssl_context=context,
        evt_handlers=handlers,
        server_class=TlsAssociationServer,
    )
    assert isinstance(server, TlsAssociationServer)
    # The AE keeps its servers in a list that a server's shutdown() removes itself from.
    ae._servers.append(server)
    threading.Thread(
        target=server.serve_forever, name=f"DicomTlsServer@{address[1]}", daemon=True
    ).start()
    return server
