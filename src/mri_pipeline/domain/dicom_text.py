"""Checks of text against DICOM value representations (lengths, forbidden characters)."""

from __future__ import annotations

MAX_LENGTH = {"AE": 16, "CS": 16, "SH": 16, "LO": 64, "PN": 64, "UI": 64, "LT": 10240}


def check_text(value: str, vr: str) -> str:
    """``value`` if it fits ``vr``; otherwise ``ValueError`` saying why, in plain words."""
    limit = MAX_LENGTH[vr]
    if "\\" in value:
        raise ValueError("must not contain a backslash (it separates DICOM values)")
    if any(ord(c) < 32 for c in value) and vr != "LT":
        raise ValueError("must not contain control characters")
    if vr == "PN":
        return check_person_name(value)
    if len(value) > limit:
        raise ValueError(f"is {len(value)} characters; DICOM {vr} allows {limit}")
    return value


def check_person_name(value: str) -> str:
    """A PN value: ``Family^Given^Middle^Prefix^Suffix``, groups split by ``=``."""
    groups = value.split("=")
    if len(groups) > 3:
        raise ValueError("has more than three component groups ('=')")
    for group in groups:
        if len(group) > 64:
            raise ValueError(
                f"is {len(group)} characters in one component group; DICOM PN allows 64"
            )
        if group.count("^") > 4:
            raise ValueError("has more than five components ('^')")
    if not groups[0].split("^")[0].strip():
        raise ValueError("needs at least a family name")
    return value
