"""A worklist query, read once: matching keys for SQL narrowing and the visibility rule.

The hints only ever narrow to a superset of the true answer; ``matching.matches``
decides. Both paths are compared on generated queries in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time

from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag

from mri_pipeline.domain.dicom_values import parse_date_key, parse_time_key
from mri_pipeline.domain.errors import InvalidQuery
from mri_pipeline.domain.matching import has_wildcard, is_empty, name_literal_prefix, values_of
from mri_pipeline.domain.steps import hidden_statuses

SPS_SEQUENCE = Tag(0x0040, 0x0100)
PATIENT_BASED_KEYS = (
    Tag(0x0010, 0x0010),  # PatientName
    Tag(0x0010, 0x0020),  # PatientID
    Tag(0x0008, 0x0050),  # AccessionNumber
    Tag(0x0040, 0x1001),  # RequestedProcedureID
)


@dataclass(frozen=True)
class WorklistQuery:
    """What the SQL narrowing may use; every field ``None`` means no constraint."""

    station_ae_title: str | None = None
    modality: str | None = None
    start_from: datetime | None = None
    start_until: datetime | None = None
    patient_id: str | None = None
    accession_number: str | None = None
    requested_procedure_id: str | None = None
    sps_id: str | None = None
    status: str | None = None
    study_instance_uids: tuple[str, ...] = ()
    name_prefix: str = ""
    hidden_statuses: frozenset[str] = frozenset()


def _single_value(dataset: Dataset, tag: BaseTag) -> str | None:
    """A key usable for equality in SQL: one value, no wildcard."""
    element = dataset.get(tag)
    if element is None or is_empty(element):
        return None
    values = [str(v).strip() for v in values_of(element)]
    if len(values) != 1 or has_wildcard(values[0]):
        return None
    return values[0]


def sps_item(query: Dataset) -> Dataset:
    """The query's single Scheduled Procedure Step item (empty when not given)."""
    element = query.get(SPS_SEQUENCE)
    if element is None or element.VR != "SQ" or len(element.value) == 0:
        return Dataset()
    if len(element.value) > 1:
        raise InvalidQuery("Scheduled Procedure Step Sequence must hold exactly one item")
    item: Dataset = element.value[0]
    return item


def read_query(query: Dataset) -> WorklistQuery:
    """Read the indexed keys of a C-FIND Identifier; raises ``InvalidQuery`` on bad values."""
    step = sps_item(query)
    start_from, start_until = _start_window(step)
    status = _single_value(step, Tag(0x0040, 0x0020))
    status_keyed = not _is_universal(step, Tag(0x0040, 0x0020))
    patient_based = any(not _is_universal(query, tag) for tag in PATIENT_BASED_KEYS)
    uids: tuple[str, ...] = ()
    uid_element = query.get(Tag(0x0020, 0x000D))
    if uid_element is not None and not is_empty(uid_element):
        uids = tuple(str(v).strip() for v in values_of(uid_element) if str(v).strip())
    name_element = query.get(Tag(0x0010, 0x0010))
    name_prefix = ""
    if name_element is not None and not is_empty(name_element):
        name_prefix = name_literal_prefix(str(name_element.value))
    return WorklistQuery(
        station_ae_title=_single_value(step, Tag(0x0040, 0x0001)),
        modality=_single_value(step, Tag(0x0008, 0x0060)),
        start_from=start_from,
        start_until=start_until,
        patient_id=_single_value(query, Tag(0x0010, 0x0020)),
        accession_number=_single_value(query, Tag(0x0008, 0x0050)),
        requested_procedure_id=_single_value(query, Tag(0x0040, 0x1001)),
        sps_id=_single_value(step, Tag(0x0040, 0x0009)),
        status=status,
        study_instance_uids=uids,
        name_prefix=name_prefix,
        hidden_statuses=hidden_statuses(
            status_is_matching_key=status_keyed, patient_based=patient_based
        ),
    )


def _is_universal(dataset: Dataset, tag: BaseTag) -> bool:
    element = dataset.get(tag)
    if element is None or is_empty(element):
        return True
    return all(str(v).strip().strip("*") == "" for v in values_of(element))


def _start_window(step: Dataset) -> tuple[datetime | None, datetime | None]:
    """Whole days covered by the start date key (the time key only narrows further)."""
    date_element = step.get(Tag(0x0040, 0x0002))
    time_element = step.get(Tag(0x0040, 0x0003))
    if time_element is not None and not is_empty(time_element):
        parse_time_key(str(time_element.value))  # validate early: a bad key is an error
    if date_element is None or is_empty(date_element):
        return None, None
    dates = parse_date_key(str(date_element.value))
    low = datetime.combine(dates.low, time.min) if dates.low is not None else None
    high = datetime.combine(dates.high, time.max) if dates.high is not None else None
    return low, high


def visible(status: str, query: WorklistQuery) -> bool:
    return status not in query.hidden_statuses
