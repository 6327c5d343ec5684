"""A scanner console as a DICOM SCU: worklist query, MPPS, C-STORE of the series.

Used by ``mri-pipeline scanner simulate``, the end-to-end tests and the benchmarks. It
speaks to the RIS (our MWL/MPPS SCP) and to the PACS (Orthanc) as a real console does:
one association per operation, its own AE title as calling AE.
"""

from __future__ import annotations

import copy
import logging
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)
from pynetdicom import AE, evt

from mri_pipeline.dicom.console_messages import (
    MR_IMAGE_STORAGE,
    PerformedSeries,
    mpps_final,
    mpps_in_progress,
    worklist_query,
)
from mri_pipeline.dicom.mpps import MODALITY_PERFORMED_PROCEDURE_STEP as MPPS
from mri_pipeline.dicom.server import MODALITY_WORKLIST_FIND, no_delay
from mri_pipeline.domain.worklist_item import text_of

log = logging.getLogger(__name__)

PENDING = (0xFF00, 0xFF01)
WAITING_STATUSES = ("SCHEDULED", "ARRIVED", "READY")


class ConsoleError(RuntimeError):
    """The peer refused the association or answered with a failure status."""


@dataclass(frozen=True)
class Peer:
    host: str
    port: int
    ae_title: str
    # DICOM TLS to this peer (``mri_pipeline.tls.client_context``); None: plain DICOM.
    tls: ssl.SSLContext | None = field(default=None, compare=False, repr=False)


def _status(status: Dataset | None) -> int:
    if status is None or "Status" not in status:
        raise ConsoleError("no response from the peer (association aborted or timed out)")
    return int(status.Status)


def leave_answers_to_the_caller(assoc: Any) -> None:
    """Keep pynetdicom's association thread from taking the answer a ``send_*()`` waits for.

    The thread polls the DIMSE queue without blocking to serve the peer's requests, and is
    paused while a ``send_*()`` waits for its answer; but the pause is a flag it sets around
    an event wait, so right after the previous answer it can still read as paused while the
    thread runs on. Under load (a C-STORE of many images, the machine busy) the thread then
    takes the next answer, logs "Received unexpected C-STORE service message" and drops it,
    and the console waits out the DIMSE timeout. An SCU is never asked anything by its
    peer, so every message that comes is an answer: only the blocking reads of the
    ``send_*()`` calls may take them."""
    take = assoc.dimse.get_msg

    def get_msg(block: bool = False) -> tuple[int | None, Any]:
        return take(block=True) if block else (None, None)

    assoc.dimse.get_msg = get_msg


@dataclass
class StoreOutcome:
    """What the PACS said to every instance sent."""

    stored: list[Dataset] = field(default_factory=list)
    failed: list[tuple[str, int]] = field(default_factory=list)  # SOP Instance UID, status


class ScannerConsole:
    """The SCU side of an MR console, with ``station`` as its AE title."""

    def __init__(self, station: str, ris: Peer, pacs: Peer, *, timeout: float = 30) -> None:
        self.station = station
        self.ris = ris
        self.pacs = pacs
        self.ae = AE(ae_title=station)
        self.ae.acse_timeout = timeout
        self.ae.dimse_timeout = timeout
        self.ae.network_timeout = timeout

    def _associate(self, peer: Peer, contexts: Sequence[tuple[str, Sequence[str]]]) -> Any:
        self.ae.requested_contexts = []
        for abstract, syntaxes in contexts:
            self.ae.add_requested_context(abstract, list(syntaxes))
        assoc = self.ae.associate(
            peer.host,
            peer.port,
            ae_title=peer.ae_title,
            evt_handlers=[(evt.EVT_CONN_OPEN, no_delay)],
            tls_args=(peer.tls, peer.host) if peer.tls is not None else None,
        )
        if not assoc.is_established:
            raise ConsoleError(
                f"{peer.ae_title} at {peer.host}:{peer.port} refused the association "
                f"from {self.station}"
            )
        leave_answers_to_the_caller(assoc)
        return assoc

    def worklist(self, *, accession: str = "") -> list[Dataset]:
        """This station's worklist (or one accession), in scheduled order."""
        query = worklist_query(station=self.station, accession=accession)
        syntaxes = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
        assoc = self._associate(self.ris, [(MODALITY_WORKLIST_FIND, syntaxes)])
        items: list[Dataset] = []
        try:
            for status, identifier in assoc.send_c_find(query, MODALITY_WORKLIST_FIND):
                code = _status(status)
                if code in PENDING and identifier is not None:
                    items.append(identifier)
                elif code != 0x0000:
                    raise ConsoleError(f"worklist query failed with status 0x{code:04X}")
        finally:
            assoc.release()
        return sorted(items, key=_start_key)

    def _mpps(self, send: Callable[[Any], tuple[Dataset | None, Any]]) -> None:
        syntaxes = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
        assoc = self._associate(self.ris, [(MPPS, syntaxes)])
        try:
            status, _ = send(assoc)
        finally:
            assoc.release()
        code = _status(status)
        if code != 0x0000:
            comment = status.get("ErrorComment", "") if status is not None else ""
            raise ConsoleError(f"MPPS refused with status 0x{code:04X} {comment}".strip())

    def start(self, item: Dataset, *, now: datetime) -> str:
        """N-CREATE IN PROGRESS for ``item``; returns the MPPS SOP Instance UID."""
        uid = str(generate_uid(prefix=None))
        dataset = mpps_in_progress([item], station=self.station, started=now)
        self._mpps(lambda assoc: assoc.send_n_create(dataset, MPPS, uid))
        return uid

    def finish(
        self,
        mpps_uid: str,
        series: Sequence[PerformedSeries],
        *,
        now: datetime,
        discontinue: str | None = None,
    ) -> None:
        """N-SET COMPLETED (or DISCONTINUED with a reason code) listing every instance."""
        status = "DISCONTINUED" if discontinue is not None else "COMPLETED"
        dataset = mpps_final(series, ended=now, status=status, reason=discontinue)
        self._mpps(lambda assoc: assoc.send_n_set(dataset, MPPS, mpps_uid))

    def store(
        self,
        datasets: Iterable[Dataset],
        *,
        progress: Callable[[Dataset], None] | None = None,
    ) -> StoreOutcome:
        """C-STORE every dataset over one association to the PACS."""
        syntaxes = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
        assoc = self._associate(self.pacs, [(MR_IMAGE_STORAGE, syntaxes)])
        outcome = StoreOutcome()
        try:
            for dataset in datasets:
                code = _status(assoc.send_c_store(dataset))
                # 0xB000, 0xB007, 0xB006: stored with a warning, the instance is there.
                if code == 0x0000 or code >> 12 == 0xB:
                    outcome.stored.append(dataset)
                else:
                    outcome.failed.append((str(dataset.SOPInstanceUID), code))
                if progress is not None:
                    progress(dataset)
        finally:
            assoc.release()
        return outcome


def _start_key(item: Dataset) -> tuple[str, str]:
    steps = item.get("ScheduledProcedureStepSequence") or [Dataset()]
    return (
        text_of(steps[0], "ScheduledProcedureStepStartDate") or "",
        text_of(steps[0], "ScheduledProcedureStepStartTime") or "",
    )


def step_of(item: Dataset) -> Dataset:
    steps = item.get("ScheduledProcedureStepSequence") or [Dataset()]
    step: Dataset = steps[0]
    return step


def protocol_code(item: Dataset) -> str | None:
    """The ``99LSPINE`` Scheduled Protocol Code of a worklist item."""
    codes = step_of(item).get("ScheduledProtocolCodeSequence") or []
    for code in codes:
        value = text_of(code, "CodeValue")
        if value:
            return value
    return None


def waiting(items: Iterable[Dataset]) -> list[Dataset]:
    """Items not yet performed (SCHEDULED, ARRIVED, READY), in scheduled order."""
    return [
        item
        for item in items
        if (text_of(step_of(item), "ScheduledProcedureStepStatus") or "SCHEDULED")
        in WAITING_STATUSES
    ]


_PATIENT_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")


@dataclass(frozen=True)
class PlannedSeries:
    """One series of the exam card: its description and the images it is made from."""

    description: str
    templates: Sequence[Dataset]


def explicit_file_meta(ds: Dataset) -> FileMetaDataset:
    """File meta for ``ds`` as a console sends it: Explicit VR Little Endian."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def restamp(
    plan: Sequence[PlannedSeries],
    item: Dataset,
    *,
    station: str,
    now: datetime,
) -> list[tuple[PerformedSeries, list[Dataset]]]:
    """Sample images made into this examination: the worklist's patient, accession and
    Study Instance UID, new series and instance UIDs, one frame of reference."""
    frame_of_reference = str(generate_uid(prefix=None))
    request = Dataset()
    request.RequestedProcedureID = text_of(item, "RequestedProcedureID") or ""
    request.ScheduledProcedureStepID = text_of(step_of(item), "ScheduledProcedureStepID") or ""
    request.ScheduledProtocolCodeSequence = step_of(item).get(
        "ScheduledProtocolCodeSequence", DicomSequence()
    )
    day, clock = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    made: list[tuple[PerformedSeries, list[Dataset]]] = []
    for number, series in enumerate(plan, start=1):
        series_uid = str(generate_uid(prefix=None))
        images: list[Dataset] = []
        for template in series.templates:
            ds = copy.deepcopy(template)
            ds.SpecificCharacterSet = "ISO_IR 192"
            for keyword in _PATIENT_KEYWORDS:
                setattr(ds, keyword, item.get(keyword, ""))
            ds.AccessionNumber = item.get("AccessionNumber", "")
            ds.StudyInstanceUID = item.StudyInstanceUID
            ds.StudyID = (text_of(item, "RequestedProcedureID") or "1")[:16]
            ds.ReferringPhysicianName = item.get("ReferringPhysicianName", "")
            ds.RequestAttributesSequence = DicomSequence([copy.deepcopy(request)])
            ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = day
            ds.StudyTime = ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = clock
            ds.StationName = station
            ds.SeriesInstanceUID = series_uid
            ds.SeriesNumber = number
            ds.SeriesDescription = series.description
            ds.ProtocolName = series.description
            ds.FrameOfReferenceUID = frame_of_reference
            ds.SOPInstanceUID = generate_uid(prefix=None)
            ds.file_meta = explicit_file_meta(ds)
            images.append(ds)
        performed = PerformedSeries(
            series.description,
            series_instance_uid=series_uid,
            sop_instance_uids=tuple(str(ds.SOPInstanceUID) for ds in images),
            sop_class_uid=str(images[0].SOPClassUID) if images else MR_IMAGE_STORAGE,
        )
        made.append((performed, images))
    return made


@dataclass
class Examination:
    """What the simulated console did."""

    accession_number: str
    mpps_uid: str
    status: str
    series: list[PerformedSeries]
    stored: int
    failed: list[tuple[str, int]]


def perform(
    console: ScannerConsole,
    item: Dataset,
    plan: Sequence[PlannedSeries],
    *,
    clock: Callable[[], datetime],
    discontinue: str | None = None,
    progress: Callable[[Dataset], None] | None = None,
) -> Examination:
    """One examination: MPPS IN PROGRESS, C-STORE, MPPS COMPLETED (or DISCONTINUED).

    A discontinued examination stops after the first half of its series.
    """
    mpps_uid = console.start(item, now=clock())
    made = restamp(plan, item, station=console.station, now=clock())
    if discontinue is not None:
        made = made[: max(1, len(made) // 2)]
    outcome = console.store(
        (ds for _, images in made for ds in images),
        progress=progress,
    )
    stored_uids = {str(ds.SOPInstanceUID) for ds in outcome.stored}
    performed = [
        PerformedSeries(
            series.protocol_name,
            series_instance_uid=series.series_instance_uid,
            sop_instance_uids=tuple(u for u in series.sop_instance_uids if u in stored_uids),
            sop_class_uid=series.sop_class_uid,
        )
        for series, _ in made
    ]
    console.finish(mpps_uid, performed, now=clock(), discontinue=discontinue)
    log.info(
        "console %s examination accession=%s mpps=%s stored=%s failed=%s",
        console.station,
        item.get("AccessionNumber", ""),
        mpps_uid,
        len(outcome.stored),
        len(outcome.failed),
    )
    return Examination(
        accession_number=str(item.get("AccessionNumber", "")),
        mpps_uid=mpps_uid,
        status="DISCONTINUED" if discontinue is not None else "COMPLETED",
        series=performed,
        stored=len(outcome.stored),
        failed=outcome.failed,
    )
