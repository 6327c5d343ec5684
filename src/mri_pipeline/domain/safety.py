"""MR safety screening before the scan: what must be answered before a step is READY."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

EGFR_GADOLINIUM_CAUTION = 30.0  # mL/min/1.73 m²; below this a radiologist must approve Gd


class SafetyChecklist(BaseModel):
    """The radiographer's answers; ``None`` means not yet asked."""

    model_config = ConfigDict(extra="forbid")

    implants_and_pacemaker_cleared: bool | None = Field(
        default=None, description="implants, pacemaker and foreign bodies checked and MR safe"
    )
    claustrophobia_discussed: bool | None = None
    pregnancy_excluded_or_not_applicable: bool | None = None
    egfr_ml_min: float | None = Field(default=None, ge=0, le=200)
    contrast_allergy_checked: bool | None = None
    radiologist_approved_low_egfr: bool | None = None
    notes: str | None = Field(default=None, max_length=1024)


def missing_items(checklist: SafetyChecklist, *, contrast: bool) -> list[str]:
    """What still stops the step from being READY, in words a radiographer reads."""
    missing = []
    if checklist.implants_and_pacemaker_cleared is not True:
        missing.append("implants and pacemaker not cleared")
    if checklist.claustrophobia_discussed is not True:
        missing.append("claustrophobia not discussed")
    if checklist.pregnancy_excluded_or_not_applicable is not True:
        missing.append("pregnancy not excluded")
    if contrast:
        if checklist.contrast_allergy_checked is not True:
            missing.append("contrast allergy not checked")
        if checklist.egfr_ml_min is None:
            missing.append("eGFR not recorded (gadolinium protocol)")
        elif (
            checklist.egfr_ml_min < EGFR_GADOLINIUM_CAUTION
            and checklist.radiologist_approved_low_egfr is not True
        ):
            missing.append(
                f"eGFR {checklist.egfr_ml_min:g} below {EGFR_GADOLINIUM_CAUTION:g}: "
                "radiologist approval needed"
            )
    return missing
