"""Order intake: a referral becomes a requested procedure and its scheduled step."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydicom.uid import generate_uid
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mri_pipeline.db.models import Counter, Patient, RequestedProcedure, ScheduledStep
from mri_pipeline.domain.dicom_text import check_text
from mri_pipeline.domain.errors import DomainError
from mri_pipeline.domain.matching import name_search_key
from mri_pipeline.domain.nodes import NodeTable
from mri_pipeline.domain.protocols import Catalogue, choose_protocol
from mri_pipeline.domain.scheduling import NoFreeSlot, next_free_slot, overlapping
from mri_pipeline.domain.steps import StepStatus
from mri_pipeline.domain.worklist_item import WorklistItemFacts, build_worklist_item, item_index
from mri_pipeline.services.booking import copy_step_for_rescheduling, station_bookings
from mri_pipeline.services.events import record_event

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _vr(vr: str) -> AfterValidator:
    return AfterValidator(lambda value: check_text(value, vr) if value is not None else value)


def _dicom_or_iso_date(value: object) -> object:
    if isinstance(value, str) and len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


PersonNameText = Annotated[str, Field(min_length=1), _vr("PN")]
LongString = Annotated[str, Field(min_length=1), _vr("LO")]
FlexibleDate = Annotated[date, BeforeValidator(_dicom_or_iso_date)]


class PatientIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    patient_id: LongString
    name: PersonNameText = Field(description="DICOM PN: Family^Given^Middle^Prefix^Suffix")
    birth_date: FlexibleDate | None = None
    sex: Literal["M", "F", "O"] | None = None
    weight_kg: float | None = Field(default=None, gt=0, lt=500)
    medical_alerts: list[LongString] = Field(default_factory=list, max_length=20)
    allergies: list[LongString] = Field(default_factory=list, max_length=20)


class OrderRequest(BaseModel):
    """A referral for a lumbar spine MRI."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    patient: PatientIn
    referring_physician: PersonNameText | None = None
    indication: str = Field(min_length=1, max_length=64)
    red_flags: list[str] = Field(default_factory=list, max_length=20)
    clinical_details: str | None = Field(default=None, max_length=1024)
    station: str | None = Field(default=None, max_length=16)
    scheduled_date: FlexibleDate | None = None
    scheduled_time: time | None = None


@dataclass(frozen=True)
class FieldProblem:
    location: tuple[str, ...]
    message: str


class OrderRejected(DomainError):
    """The order cannot be accepted; each problem names its field."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{'.'.join(p.location)}: {p.message}" for p in problems))
        self.problems = problems


class CreatedOrder(BaseModel):
    """What the referrer and the desk learn back: identifiers, protocol, slot."""

    model_config = ConfigDict(frozen=True)

    accession_number: str
    requested_procedure_id: str
    sps_id: str
    study_instance_uid: str
    protocol_code: str
    priority: str
    station_ae_title: str
    scheduled_start: datetime
    not_indicated: str | None
    reason: str


@dataclass(frozen=True)
class OrderDesk:
    """What order intake needs besides the session: reference data, settings and a clock."""

    catalogue: Catalogue
    nodes: NodeTable
    clinic_timezone: ZoneInfo
    uid_root: str
    accession_prefix: str
    day_start: time
    day_end: time
    clock: Clock

    def local_now(self) -> datetime:
        return self.clock().astimezone(self.clinic_timezone).replace(tzinfo=None)


def next_number(session: Session, name: str) -> int:
    """The next value of a named counter, safe against concurrent writers."""
    result = session.execute(
        update(Counter)
        .where(Counter.name == name)
        .values(value=Counter.value + 1)
        .returning(Counter.value)
    ).scalar_one_or_none()
    if result is not None:
        return int(result)
    try:
        with session.begin_nested():
            session.add(Counter(name=name, value=1))
        return 1
    except IntegrityError:
        return next_number(session, name)


def new_study_uid(root: str) -> str:
    if root in ("", "2.25"):
        return str(generate_uid(prefix=None))
    return str(generate_uid(prefix=root.rstrip(".") + "."))


def create_order(session: Session, desk: OrderDesk, request: OrderRequest) -> CreatedOrder:
    """Validate against reference data, choose protocol and slot, and store the worklist item.

    Runs inside the caller's transaction. Raises ``OrderRejected`` with one problem per field.
    """
    problems: list[FieldProblem] = []
    choice = None
    try:
        choice = choose_protocol(desk.catalogue, request.indication, request.red_flags)
    except DomainError as exc:
        field = (
            "red_flags" if request.indication in desk.catalogue.indication_codes else "indication"
        )
        problems.append(FieldProblem(("body", field), str(exc)))

    scanners = desk.nodes.scanners("MR")
    if request.station is not None and request.station not in [s.ae_title for s in scanners]:
        known = ", ".join(s.ae_title for s in scanners)
        problems.append(
            FieldProblem(
                ("body", "station"), f"unknown MR station {request.station!r}; known: {known}"
            )
        )
    now = desk.local_now()
    if request.scheduled_date is not None and request.scheduled_date < now.date():
        problems.append(FieldProblem(("body", "scheduled_date"), "is in the past"))
    if request.scheduled_time is not None and request.scheduled_date is None:
        problems.append(FieldProblem(("body", "scheduled_time"), "needs scheduled_date"))

    patient = session.execute(
        select(Patient).where(Patient.patient_id == request.patient.patient_id)
    ).scalar_one_or_none()
    if patient is not None and _different_person(patient, request):
        problems.append(
            FieldProblem(
                ("body", "patient", "patient_id"),
                "this patient ID is registered with a different name or birth date; "
                "check the ID before ordering",
            )
        )
    if problems or choice is None:
        raise OrderRejected(problems)

    protocol = choice.protocol
    station, start = _choose_slot(session, desk, request, protocol.slot_minutes, now)
    node = desk.nodes.get(station)
    assert node is not None

    if patient is None:
        patient = Patient(patient_id=request.patient.patient_id, name=request.patient.name)
        session.add(patient)
    patient.name = request.patient.name
    patient.birth_date = request.patient.birth_date or patient.birth_date
    patient.sex = request.patient.sex or patient.sex
    patient.weight_kg = request.patient.weight_kg or patient.weight_kg
    patient.medical_alerts = "\\".join(request.patient.medical_alerts) or patient.medical_alerts
    patient.allergies = "\\".join(request.patient.allergies) or patient.allergies

    number = next_number(session, "accession")
    accession = f"{desk.accession_prefix}{number:07d}"
    while session.execute(
        select(RequestedProcedure.id).where(RequestedProcedure.accession_number == accession)
    ).first():
        number = next_number(session, "accession")
        accession = f"{desk.accession_prefix}{number:07d}"
    sps_id = f"SPS{next_number(session, 'sps'):07d}"
    requested_procedure_id = f"RP{number:07d}"
    study_uid = new_study_uid(desk.uid_root)

    indication_label = desk.catalogue.indication(request.indication).label
    reason = (
        indication_label
        if not request.clinical_details
        else f"{indication_label}: {request.clinical_details}"
    )
    flags = [desk.catalogue.indication(f).label for f in request.red_flags]
    comments = "; ".join(
        part
        for part in (
            f"Red flags: {', '.join(flags)}" if flags else "",
            f"NOT INDICATED: {choice.not_indicated}" if choice.not_indicated else "",
            request.clinical_details or "",
        )
        if part
    )
    procedure = RequestedProcedure(
        accession_number=accession,
        requested_procedure_id=requested_procedure_id,
        study_instance_uid=study_uid,
        patient=patient,
        referring_physician=request.referring_physician,
        indication=request.indication,
        red_flags=list(request.red_flags),
        reason=reason,
        protocol_code=protocol.code,
        priority=choice.priority.value,
        not_indicated=choice.not_indicated,
        source="order",
        created_at=desk.clock(),
    )
    session.add(procedure)
    item = build_worklist_item(
        WorklistItemFacts(
            accession_number=accession,
            requested_procedure_id=requested_procedure_id,
            sps_id=sps_id,
            study_instance_uid=study_uid,
            patient_id=patient.patient_id,
            patient_name=request.patient.name,
            birth_date=request.patient.birth_date,
            sex=request.patient.sex,
            weight_kg=request.patient.weight_kg,
            medical_alerts=request.patient.medical_alerts,
            allergies=request.patient.allergies,
            referring_physician=request.referring_physician,
            station_ae_title=station,
            station_name=node.station_name,
            location=node.location,
            modality="MR",
            start=start,
            priority=choice.priority.value,
            protocol=protocol,
            reason=reason,
            comments=comments or None,
            contrast_agent=desk.catalogue.contrast_agent if protocol.contrast else None,
            status=StepStatus.SCHEDULED.value,
        )
    )
    step = ScheduledStep(
        procedure=procedure,
        end_at=start + timedelta(minutes=protocol.slot_minutes),
        revision=1,
        updated_at=desk.clock(),
        **item_index(item),
    )
    session.add(step)
    session.flush()
    record_event(
        session,
        kind="ORDERED",
        actor=request.referring_physician or "order intake",
        at=desk.clock(),
        step=step,
        to_status=StepStatus.SCHEDULED.value,
        reason=choice.reason,
        details={"protocol": protocol.code, "priority": choice.priority.value},
    )
    log.info(
        "order accepted accession=%s patient_id=%s protocol=%s priority=%s station=%s start=%s",
        accession,
        patient.patient_id,
        protocol.code,
        choice.priority.value,
        station,
        start.isoformat(timespec="minutes"),
    )
    return CreatedOrder(
        accession_number=accession,
        requested_procedure_id=requested_procedure_id,
        sps_id=sps_id,
        study_instance_uid=study_uid,
        protocol_code=protocol.code,
        priority=choice.priority.value,
        station_ae_title=station,
        scheduled_start=start.replace(tzinfo=desk.clinic_timezone),
        not_indicated=choice.not_indicated,
        reason=choice.reason,
    )


def _different_person(patient: Patient, request: OrderRequest) -> bool:
    same_name = name_search_key(patient.name) == name_search_key(request.patient.name)
    same_birth = (
        patient.birth_date is None
        or request.patient.birth_date is None
        or patient.birth_date == request.patient.birth_date
    )
    return not (same_name and same_birth)


def _choose_slot(
    session: Session,
    desk: OrderDesk,
    request: OrderRequest,
    minutes: int,
    now: datetime,
) -> tuple[str, datetime]:
    stations = (
        [request.station] if request.station else [s.ae_title for s in desk.nodes.scanners("MR")]
    )
    if request.scheduled_date is not None and request.scheduled_time is not None:
        start = datetime.combine(request.scheduled_date, request.scheduled_time)
        for station in stations:
            clash = overlapping(station_bookings(session, station, start.date()), start, minutes)
            if clash is None:
                return station, start
        raise OrderRejected(
            [
                FieldProblem(
                    ("body", "scheduled_time"),
                    f"{', '.join(stations)} already booked at {start:%H:%M} for {minutes} minutes",
                )
            ]
        )
    not_before = now
    if request.scheduled_date is not None and request.scheduled_date > now.date():
        not_before = datetime.combine(request.scheduled_date, desk.day_start)
    best: tuple[datetime, str] | None = None
    for station in stations:
        try:
            start = next_free_slot(
                station_bookings(session, station, not_before.date()),
                not_before=not_before,
                minutes=minutes,
                day_start=desk.day_start,
                day_end=desk.day_end,
            )
        except NoFreeSlot:
            continue
        if request.scheduled_date is not None and start.date() != request.scheduled_date:
            continue
        if best is None or start < best[0]:
            best = (start, station)
    if best is None:
        raise OrderRejected(
            [FieldProblem(("body", "scheduled_date"), "no free slot on any MR station that day")]
        )
    return best[1], best[0]


def offer_replacement_step(session: Session, desk: OrderDesk, step: ScheduledStep) -> ScheduledStep:
    """A new SCHEDULED step (new SPS ID) at the next free slot of the same station."""
    minutes = 30
    if step.start_at is not None and step.end_at is not None:
        minutes = max(5, int((step.end_at - step.start_at).total_seconds() // 60))
    station = step.station_ae_title or desk.nodes.scanners("MR")[0].ae_title
    now = desk.local_now()
    start = next_free_slot(
        station_bookings(session, station, now.date()),
        not_before=now,
        minutes=minutes,
        day_start=desk.day_start,
        day_end=desk.day_end,
    )
    sps_id = f"SPS{next_number(session, 'sps'):07d}"
    return copy_step_for_rescheduling(session, step, sps_id=sps_id, start=start, at=desk.clock())
