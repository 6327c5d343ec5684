"""Modality Performed Procedure Step SCP handlers: decode, call the workflow, encode the status."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mri_pipeline.domain.mpps import INVALID_ATTRIBUTE_VALUE, PROCESSING_FAILURE, MppsVerdict
from mri_pipeline.logsafe import database_away, describe_database_error
from mri_pipeline.services.workflow import MppsResult, receive_n_create, receive_n_set

log = logging.getLogger(__name__)

MODALITY_PERFORMED_PROCEDURE_STEP = "1.2.840.10008.3.1.2.3.3"
INVALID_OBJECT_INSTANCE = 0x0117

OfferNewStep = Callable[[Session, Any], Any]


def status_dataset(verdict: MppsVerdict, *, with_attribute_list: bool = True) -> Dataset:
    """The DIMSE status with its comment, error ID and attribute list (PS3.7 Annex C).

    pynetdicom's N-CREATE-RSP carries no Attribute Identifier List, so there the
    offending tags are named in the Error Comment instead.
    """
    status = Dataset()
    status.Status = verdict.status
    comment = verdict.error_comment or ""
    if verdict.attributes and not with_attribute_list:
        tags = " ".join(f"({tag >> 16:04X},{tag & 0xFFFF:04X})" for tag in verdict.attributes)
        comment = f"{comment} {tags}".strip()
    if comment:
        status.ErrorComment = comment[:64]
    if verdict.error_id is not None:
        status.ErrorID = verdict.error_id
    if verdict.attributes and with_attribute_list:
        status.AttributeIdentifierList = list(verdict.attributes)
    return status


class _Undecodable(Exception):
    """The request's data set cannot be read in full (a broken or hostile peer)."""


def decoded(read: Callable[[], Dataset]) -> Dataset:
    """The data set with every value decoded and known to convert to DICOM JSON, as stored.

    pydicom decodes lazily, so a bad value would otherwise fail deep in the workflow.
    """
    try:
        dataset = read()
        dataset.to_json_dict()
    except Exception as exc:  # pydicom raises many types on a bad encoding
        raise _Undecodable(f"{type(exc).__name__}: {exc}") from exc
    return dataset


def undecodable_status(operation: str, uid: str, calling: str, exc: _Undecodable) -> Dataset:
    log.warning(
        "MPPS %s refused mpps=%s calling_ae=%s reason=undecodable error=%s",
        operation,
        uid,
        calling,
        str(exc)[:200],
    )
    verdict = MppsVerdict(INVALID_ATTRIBUTE_VALUE, "attribute values could not be decoded")
    return status_dataset(verdict)


class _Refused(Exception):
    def __init__(self, verdict: MppsVerdict) -> None:
        super().__init__(f"0x{verdict.status:04X}")
        self.verdict = verdict


class MppsHandlers:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Callable[[], datetime],
        *,
        strict: bool = False,
        offer_new_step: OfferNewStep | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._strict = strict
        self._offer_new_step = offer_new_step

    def _run(
        self, operation: str, calling: str, uid: str, work: Callable[[Session], MppsResult]
    ) -> Dataset:
        listed = operation == "N-SET"
        try:
            with self._sessions() as session, session.begin():
                verdict = work(session).verdict
                if not verdict.ok:
                    raise _Refused(verdict)  # roll back whatever was written
        except _Refused as refused:
            verdict = refused.verdict
        except SQLAlchemyError as exc:
            if database_away(exc):
                log.warning(
                    "MPPS %s failed: database unavailable mpps=%s calling_ae=%s error=%s",
                    operation,
                    uid,
                    calling,
                    describe_database_error(exc),
                )
            else:
                log.exception(
                    "MPPS %s failed on the database mpps=%s calling_ae=%s", operation, uid, calling
                )
            failure = MppsVerdict(PROCESSING_FAILURE, "database unavailable; retry")
            return status_dataset(failure)
        if verdict.ok:
            log.info("MPPS %s accepted mpps=%s calling_ae=%s", operation, uid, calling)
        else:
            log.warning(
                "MPPS %s refused mpps=%s calling_ae=%s status=0x%04X attributes=%s",
                operation,
                uid,
                calling,
                verdict.status,
                ",".join(f"{tag:08X}" for tag in verdict.attributes),
            )
        return status_dataset(verdict, with_attribute_list=listed)

    def on_n_create(self, event: Any) -> tuple[Dataset, Dataset | None]:
        calling = str(event.assoc.requestor.ae_title).strip()
        uid = str(event.request.AffectedSOPInstanceUID or "").strip()
        if not uid:
            return status_dataset(
                MppsVerdict(INVALID_OBJECT_INSTANCE, "SCU must give the SOP Instance UID")
            ), None
        try:
            dataset = decoded(lambda: event.attribute_list)
        except _Undecodable as exc:
            return undecodable_status("N-CREATE", uid, calling, exc), None
        status = self._run(
            "N-CREATE",
            calling,
            uid,
            lambda session: receive_n_create(
                session, uid, dataset, calling_ae=calling, at=self._clock()
            ),
        )
        return status, dataset if status.Status == 0 else None

    def on_n_set(self, event: Any) -> tuple[Dataset, Dataset | None]:
        calling = str(event.assoc.requestor.ae_title).strip()
        uid = str(event.request.RequestedSOPInstanceUID or "").strip()
        try:
            modification = decoded(lambda: event.modification_list)
        except _Undecodable as exc:
            return undecodable_status("N-SET", uid, calling, exc), None
        status = self._run(
            "N-SET",
            calling,
            uid,
            lambda session: receive_n_set(
                session,
                uid,
                modification,
                calling_ae=calling,
                at=self._clock(),
                strict=self._strict,
                offer_new_step=self._offer_new_step,
            ),
        )
        return status, modification if status.Status == 0 else None
