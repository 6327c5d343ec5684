"""Rows as ingest and QC leave them, for tests that start from received images."""

from __future__ import annotations

from datetime import datetime

from mri_pipeline.db.models import ReceivedSeries, ReceivedStudy, RequestedProcedure


def received_study(
    procedure: RequestedProcedure,
    at: datetime,
    *,
    qc_verdict: str = "PASSED",
    qc_summary: str | None = None,
    instances: int = 10,
) -> ReceivedStudy:
    """The order's study, matched, complete at ``at`` and judged by QC (not yet added)."""
    return ReceivedStudy(
        study_instance_uid=procedure.study_instance_uid,
        orthanc_id=f"o-{procedure.accession_number}",
        accession_number=procedure.accession_number,
        patient_id=procedure.patient.patient_id,
        patient_name=procedure.patient.name,
        procedure_pk=procedure.id,
        reconciliation="matched",
        state="ready_for_reading",
        stable=False,
        instance_count=instances,
        first_received_at=at,
        last_received_at=at,
        completed_at=at,
        qc_verdict=qc_verdict,
        qc_summary=qc_summary,
    )


def checked_series(
    study: ReceivedStudy,
    number: int,
    description: str,
    outcome: str,
    at: datetime,
    *,
    thumbnail: bytes | None = None,
    images: int = 15,
) -> ReceivedSeries:
    """A series of ``study`` that QC checked with ``outcome`` (not yet added)."""
    return ReceivedSeries(
        study_pk=study.id,
        series_instance_uid=f"{study.study_instance_uid}.{number}",
        orthanc_id=f"series-{study.accession_number}-{number}",
        modality="MR",
        series_number=number,
        series_description=description,
        instance_count=images,
        last_received_at=at,
        qc_instance_count=images,
        qc_outcome=outcome,
        thumbnail_png=thumbnail,
    )
