"""Who may do what: roles and the areas of the product each may use. Pure.

A radiographer runs the scanners' day (orders, schedule, examinations, received studies
and their QC); a radiologist reads (studies, their own reading list); an administrator
sees everything, reassigns studies, and reads the department view and the audit log.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    RADIOGRAPHER = "radiographer"
    RADIOLOGIST = "radiologist"
    ADMIN = "admin"


class Area(StrEnum):
    ORDERS = "orders"  # referrals in
    SCHEDULE = "schedule"  # the worklist, examinations, reconciliation
    STUDIES = "studies"  # received studies, QC, thumbnails
    READING = "reading"  # reading lists and the study view
    REASSIGN = "reassign"  # move a study to another radiologist
    DEPARTMENT = "department"  # waiting times and turnaround, the queues
    AUDIT = "audit"  # who looked at which patient's data


GRANTS: dict[Role, frozenset[Area]] = {
    Role.RADIOGRAPHER: frozenset({Area.ORDERS, Area.SCHEDULE, Area.STUDIES}),
    Role.RADIOLOGIST: frozenset({Area.STUDIES, Area.READING}),
    Role.ADMIN: frozenset(Area),
}


def may(role: Role, area: Area) -> bool:
    return area in GRANTS[role]
