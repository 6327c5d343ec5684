"""SQL narrowing never changes an answer: generated queries, both paths, every backend."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from mri_pipeline.db.engine import make_engine, make_session_factory
from mri_pipeline.db.migrate import upgrade
from mri_pipeline.services.worklist import WorklistFinder
from mri_pipeline.services.worklist_files import store_item

NAMES = [
    "Müller^Hans",
    "MULLER^Anna",
    "Dvořák^Antonín",
    "Smith^John",
    "Smith^Jane",
    "O'Brien^Sean",
    "Ødegaard^Ingrid",
    "Yamada^Tarou=山田^太郎",
    "Dubois^Céline",
    "Ng^Li",
]
STATIONS: list[str | list[str]] = ["MRI1", "MRI2", "MRI3", ["MRI1", "MRI2"]]
STATUSES = [
    "SCHEDULED",
    "ARRIVED",
    "READY",
    "STARTED",
    "DEPARTED",
    "CANCELED",
    "DISCONTINUED",
    "COMPLETED",
]
DAYS = ["20260301", "20260302", "20260303", "20260304"]
TIMES = ["000000", "073000", "083000", "120000", "180000", "235959"]


def synthetic_item(rng: random.Random, n: int) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = rng.choice(NAMES)
    ds.PatientID = f"P{rng.randrange(8):02d}"
    ds.AccessionNumber = f"A{n:05d}" if rng.random() > 0.1 else ""
    ds.StudyInstanceUID = f"1.2.3.{n}"
    ds.RequestedProcedureID = f"RP{rng.randrange(5)}"
    ds.ReferringPhysicianName = rng.choice(["", "Referrer^Anna"])
    step = Dataset()
    step.ScheduledStationAETitle = rng.choice(STATIONS)
    step.ScheduledProcedureStepStartDate = rng.choice(DAYS)
    step.ScheduledProcedureStepStartTime = rng.choice(TIMES)
    step.Modality = rng.choice(["MR", "MR", "CT"])
    step.ScheduledProcedureStepID = f"S{n:05d}"
    step.ScheduledProcedureStepStatus = rng.choice(STATUSES)
    step.ScheduledPerformingPhysicianName = ""
    ds.ScheduledProcedureStepSequence = Sequence([step])
    return ds


@pytest.fixture
def finder(database_url: str) -> Iterator[WorklistFinder]:
    engine = make_engine(database_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    rng = random.Random(20260302)
    with sessions() as session, session.begin():
        for n in range(160):
            store_item(session, synthetic_item(rng, n), source="test")
    try:
        yield WorklistFinder(sessions)
    finally:
        engine.dispose()


def optional(values: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), st.just(""), values)


date_keys = st.one_of(
    st.sampled_from(DAYS),
    st.tuples(st.sampled_from(["", *DAYS]), st.sampled_from(["", *DAYS]))
    .filter(lambda p: p != ("", ""))
    .map(lambda p: f"{p[0]}-{p[1]}"),
)
time_keys = st.one_of(
    st.sampled_from([*TIMES, "0830", "12"]),
    st.tuples(
        st.sampled_from(["", "07", "0830", "1200"]), st.sampled_from(["", "0900", "1800", "235959"])
    )
    .filter(lambda p: p != ("", ""))
    .map(lambda p: f"{p[0]}-{p[1]}"),
)
name_keys = st.one_of(
    st.sampled_from(NAMES),
    st.sampled_from(
        ["m*", "MÜLLER*", "smith", "*n", "?g^Li", "DVORAK*", "Sm?th^J*", "=山田*", "*"]
    ),
)


@st.composite
def queries(draw: st.DrawFn) -> Dataset:
    ds = Dataset()
    ds.PatientName = draw(optional(name_keys)) or ""
    patient_id = draw(optional(st.sampled_from(["P01", "P03", "P0*", "P0?"])))
    if patient_id is not None:
        ds.PatientID = patient_id
    accession = draw(optional(st.sampled_from(["A00001", "A0001*", "A00150"])))
    if accession is not None:
        ds.AccessionNumber = accession
    uid = draw(optional(st.sampled_from(["1.2.3.5", "1.2.3.5\\1.2.3.77", "9.9"])))
    if uid is not None:
        ds.StudyInstanceUID = uid
    step = Dataset()
    station = draw(optional(st.sampled_from(["MRI1", "MRI2", "MRI*", "MRI3"])))
    if station is not None:
        step.ScheduledStationAETitle = station
    start_date = draw(optional(date_keys))
    if start_date is not None:
        step.ScheduledProcedureStepStartDate = start_date
    start_time = draw(optional(time_keys))
    if start_time is not None:
        step.ScheduledProcedureStepStartTime = start_time
    modality = draw(optional(st.sampled_from(["MR", "CT"])))
    if modality is not None:
        step.Modality = modality
    status = draw(optional(st.sampled_from([*STATUSES, "S*"])))
    if status is not None:
        step.ScheduledProcedureStepStatus = status
    if draw(st.booleans()):
        ds.ScheduledProcedureStepSequence = Sequence([step])
    return ds


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=queries())
def test_narrowed_answer_equals_scanning_every_item(finder: WorklistFinder, query: Dataset) -> None:
    narrowed = [
        str(d.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID)
        for d in finder.find(query).items
    ]
    scanned = [
        str(d.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID)
        for d in finder.find_by_scanning(query)
    ]
    assert narrowed == scanned


def test_the_generated_queries_do_find_things(finder: WorklistFinder) -> None:
    # Guards the property test against a data set where every answer is empty.
    query = Dataset()
    query.PatientName = "m*"
    assert len(finder.find(query).items) > 3
