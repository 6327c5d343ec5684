"""The reporting radiologists: who they are, what they may report, when they work.

Read from ``worklist/radiologists.yaml``. Shifts are weekly patterns in clinic-local
time; ``shifts_on`` turns them into the concrete shifts the routing policy uses.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Self
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mri_pipeline.domain.nodes import NodeRole, NodeTable
from mri_pipeline.domain.routing import Radiologist, Shift
from mri_pipeline.domain.yaml_source import SourceError, parse_yaml_model

SUBSPECIALTIES = ("neuro", "MSK", "general")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


class Weekday(StrEnum):
    MON = "Mon"
    TUE = "Tue"
    WED = "Wed"
    THU = "Thu"
    FRI = "Fri"
    SAT = "Sat"
    SUN = "Sun"

    @property
    def number(self) -> int:
        """Monday 0 … Sunday 6, as ``date.weekday()``."""
        return _WEEKDAY_NUMBER[self]


_WEEKDAY_NUMBER = {day: number for number, day in enumerate(Weekday)}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _clock(text: str) -> time | None:
    """ "HH:MM"; ``24:00`` (end of day) is None."""
    return None if text == "24:00" else time.fromisoformat(text)


class ShiftPattern(_Frozen):
    """A weekly shift: these days, from ``start`` to ``end`` (24:00 = midnight after)."""

    days: tuple[Weekday, ...] = Field(min_length=1)
    start: str
    end: str
    on_call: bool = False

    @field_validator("start", "end")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError(f"not a time of day like 08:00: {value!r}")
        return value

    @model_validator(mode="after")
    def _order(self) -> Self:
        start, end = _clock(self.start), _clock(self.end)
        if start is None or (end is not None and end <= start):
            raise ValueError(f"the shift ends ({self.end}) before it starts ({self.start})")
        return self


class RadiologistEntry(_Frozen):
    key: str = Field(pattern=r"^[a-z][a-z0-9._-]{1,31}$")
    name: str = Field(min_length=1, max_length=64)
    subspecialties: tuple[str, ...] = Field(min_length=1)
    sites: tuple[str, ...] = Field(min_length=1)
    reports_contrast: bool = True
    max_in_hand: int = Field(default=10, ge=1, le=200)
    workstation: str | None = Field(default=None, max_length=16)
    shifts: tuple[ShiftPattern, ...] = ()

    @field_validator("subspecialties")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [s for s in value if s not in SUBSPECIALTIES]
        if unknown:
            raise ValueError(f"unknown subspecialty {unknown[0]!r}; one of {SUBSPECIALTIES}")
        return value


class RadiologistTable(_Frozen):
    radiologists: tuple[RadiologistEntry, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        keys = [r.key for r in self.radiologists]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"radiologist key appears twice: {', '.join(twice)}")
        return self

    def unknown_workstations(self, nodes: NodeTable) -> list[str]:
        """Workstation AE titles that are not workstations in the node table."""
        problems = []
        for entry in self.radiologists:
            if entry.workstation is None:
                continue
            node = nodes.get(entry.workstation)
            if node is None or node.role is not NodeRole.WORKSTATION:
                problems.append(
                    f"{entry.key}: {entry.workstation} is not a workstation in the node table"
                )
        return problems

    def on(self, day: date, zone: ZoneInfo, *, days: int = 2) -> list[Radiologist]:
        """The radiologists with their concrete shifts from the day before ``day`` for
        ``days`` days (a night shift that began yesterday still counts)."""
        return [
            Radiologist(
                key=entry.key,
                name=entry.name,
                subspecialties=frozenset(entry.subspecialties),
                sites=frozenset(entry.sites),
                reports_contrast=entry.reports_contrast,
                shifts=shifts_on(entry.shifts, day - timedelta(days=1), days + 1, zone),
                max_in_hand=entry.max_in_hand,
            )
            for entry in self.radiologists
        ]


def shifts_on(
    patterns: tuple[ShiftPattern, ...], first: date, days: int, zone: ZoneInfo
) -> tuple[Shift, ...]:
    """The concrete shifts of ``days`` days from ``first``, as aware datetimes."""
    shifts: list[Shift] = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        for pattern in patterns:
            if day.weekday() not in {d.number for d in pattern.days}:
                continue
            start = datetime.combine(day, _clock(pattern.start) or time(0), zone)
            end_clock = _clock(pattern.end)
            end = (
                datetime.combine(day + timedelta(days=1), time(0), zone)
                if end_clock is None
                else datetime.combine(day, end_clock, zone)
            )
            shifts.append(Shift(start, end, on_call=pattern.on_call))
    return tuple(sorted(shifts, key=lambda s: s.start))


class RadiologistsError(SourceError):
    """The radiologists file is not valid."""


def parse_radiologists(text: str, source: str) -> RadiologistTable:
    return parse_yaml_model(text, source, RadiologistTable, error=RadiologistsError)
