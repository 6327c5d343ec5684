"""The lumbar protocol catalogue (``worklist/protocols.yaml``) and the indication → protocol rule.

DOMAIN.md A.2 (protocols), B.2 (indication → priority → protocol) and C.1–C.4 (codes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    PrivateAttr,
    field_validator,
    model_validator,
)

from mri_pipeline.domain.dicom_text import check_text
from mri_pipeline.domain.errors import UnknownIndication, UnknownProtocol
from mri_pipeline.domain.qc_thresholds import QcThresholds
from mri_pipeline.domain.yaml_source import Loc, NestedProblems, SourceError, parse_yaml_model

LOCAL_SCHEME = "99LSPINE"
POST_CONTRAST_MARK = "+C"


class Priority(StrEnum):
    """Requested Procedure Priority (0040,1003) defined terms; URGENT is written ``HIGH``."""

    STAT = "STAT"
    HIGH = "HIGH"
    ROUTINE = "ROUTINE"
    MEDIUM = "MEDIUM"
    LOW = "LOW"

    @property
    def rank(self) -> int:
        """Larger is more urgent; the defined terms are ranked in the order DICOM lists them."""
        return _RANK[self]


_RANK = {
    Priority.STAT: 5,
    Priority.HIGH: 4,
    Priority.ROUTINE: 3,
    Priority.MEDIUM: 2,
    Priority.LOW: 1,
}


class CatalogueError(SourceError):
    """A catalogue text that cannot be used; the message names file, line and field."""


def _sh(value: str) -> str:
    return check_text(value, "SH")


def _lo(value: str) -> str:
    return check_text(value, "LO")


ShortString = Annotated[str, Field(min_length=1), AfterValidator(_sh)]
LongString = Annotated[str, Field(min_length=1), AfterValidator(_lo)]

_SLUG = r"^[a-z0-9]+(-[a-z0-9]+)*$"
_LEVEL = re.compile(r"^(T1[12]|L[1-5])-(T12|L[1-5]|S1)$")


class _Frozen(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True
    )


def _project_priority(value: Priority) -> Priority:
    if value is Priority.MEDIUM:
        raise ValueError("MEDIUM is not used by this project; use STAT, HIGH, ROUTINE or LOW")
    return value


def _urgent_is_high(value: Any) -> Any:
    if isinstance(value, str) and value.upper() == "URGENT":
        raise ValueError("URGENT is written HIGH (DICOM Requested Procedure Priority)")
    return value


ProjectPriority = Annotated[
    Priority, BeforeValidator(_urgent_is_high), AfterValidator(_project_priority)
]


class CodedConcept(_Frozen):
    """One Code Sequence Macro item (PS3.3 §8): match on scheme + value, never on meaning."""

    code_value: ShortString = Field(alias="code")
    coding_scheme_designator: ShortString = Field(alias="scheme")
    code_meaning: LongString = Field(alias="meaning")


class SeriesSpec(_Frozen):
    """One series the exam card runs, by its Series Description (DOMAIN.md A.1)."""

    description: LongString
    required: bool = True

    @property
    def post_contrast(self) -> bool:
        return self.description.endswith(POST_CONTRAST_MARK)


class ProtocolQc(_Frozen):
    """A protocol's own image-QC limits (``qc:``); a field left out keeps the default."""

    snr_warn: float | None = Field(default=None, gt=0)
    snr_fail: float | None = Field(default=None, gt=0)
    ghosting_warn: float | None = Field(default=None, gt=0)
    ghosting_fail: float | None = Field(default=None, gt=0)
    sagittal_min_field_mm: float | None = Field(default=None, gt=0)
    sagittal_min_lr_mm: float | None = Field(default=None, gt=0)
    axial_mm_per_level: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _consistent_with_defaults(self) -> Self:
        self.thresholds()  # e.g. snr_fail above the default snr_warn
        return self

    def thresholds(self, base: QcThresholds | None = None) -> QcThresholds:
        """``base`` (the project defaults) with this protocol's values put in."""
        given = {name: value for name, value in self if value is not None}
        return replace(base if base is not None else QcThresholds(), **given)


class Protocol(_Frozen):
    """One lumbar protocol of the catalogue (DOMAIN.md A.2)."""

    code: ShortString
    meaning: LongString
    series: tuple[SeriesSpec, ...]
    contrast: bool
    scan_minutes: PositiveInt
    slot_minutes: PositiveInt
    requested_procedure_codes: tuple[CodedConcept, ...] = Field(alias="requested_procedure")
    default_priority: ProjectPriority
    subspecialty: tuple[str, ...] = ()
    axial_levels: str | None = None
    qc: ProtocolQc = ProtocolQc()

    @field_validator("axial_levels")
    @classmethod
    def _levels(cls, value: str | None) -> str | None:
        if value is not None:
            bad = [level for level in value.split("\\") if not _LEVEL.match(level)]
            if bad:
                raise ValueError(f"not a disc level like L4-L5: {', '.join(map(repr, bad))}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        # Emptiness is checked here, not with min_length: pydantic would also report an
        # "at least 1 item" error for a list whose only item has a wrong field.
        problems = _empty(self, "series", "requested_procedure_codes")
        if self.slot_minutes < self.scan_minutes:
            problems.append(
                (
                    ("slot_minutes",),
                    f"the slot ({self.slot_minutes} min) is shorter than the scan "
                    f"({self.scan_minutes} min)",
                )
            )
        seen: set[str] = set()
        for index, spec in enumerate(self.series):
            if spec.description in seen:
                problems.append((("series", index, "description"), "appears twice"))
            seen.add(spec.description)
        has_contrast_series = any(spec.post_contrast for spec in self.series)
        if self.contrast and not has_contrast_series:
            problems.append((("contrast",), "is true but no series is post-contrast (+C)"))
        if not self.contrast and has_contrast_series:
            problems.append((("contrast",), "is false but a series is post-contrast (+C)"))
        if problems:
            raise NestedProblems(problems)
        return self

    @property
    def scheduled_protocol_code(self) -> CodedConcept:
        """The Scheduled Protocol Code Sequence item, scheme ``99LSPINE``."""
        return CodedConcept(
            code_value=self.code, coding_scheme_designator=LOCAL_SCHEME, code_meaning=self.meaning
        )

    @property
    def requested_procedure_code(self) -> CodedConcept:
        """The primary Requested Procedure code (the MWL carries exactly one)."""
        return self.requested_procedure_codes[0]

    @property
    def required_series(self) -> tuple[SeriesSpec, ...]:
        return tuple(spec for spec in self.series if spec.required)

    @property
    def axial_level_names(self) -> tuple[str, ...]:
        """The disc levels the axial series must cover, e.g. ``("L4-L5", "L5-S1")``."""
        return tuple(self.axial_levels.split("\\")) if self.axial_levels else ()

    @property
    def qc_thresholds(self) -> QcThresholds:
        """The image-QC limits for this protocol: the defaults with its ``qc:`` values."""
        return self.qc.thresholds()


class Indication(_Frozen):
    """One line of the request form (DOMAIN.md B.2)."""

    code: str = Field(pattern=_SLUG, max_length=32)
    label: LongString
    priority: ProjectPriority
    protocol: ShortString
    red_flag: bool = False
    not_indicated: str | None = None


class Catalogue(_Frozen):
    """Protocols and indications in file order, looked up by code."""

    contrast_agent: LongString
    protocols: tuple[Protocol, ...]
    indications: tuple[Indication, ...]

    _protocol_by_code: Mapping[str, Protocol] = PrivateAttr()
    _indication_by_code: Mapping[str, Indication] = PrivateAttr()

    @model_validator(mode="after")
    def _cross_references(self) -> Self:
        problems = _empty(self, "protocols", "indications")
        problems += _duplicates("protocols", [p.code for p in self.protocols])
        problems += _duplicates("indications", [i.code for i in self.indications])
        known = [p.code for p in self.protocols]
        for index, indication in enumerate(self.indications):
            if indication.protocol not in known:
                problems.append(
                    (
                        ("indications", index, "protocol"),
                        f"unknown protocol {indication.protocol} (known: {', '.join(known)})",
                    )
                )
        if problems:
            raise NestedProblems(problems)
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._protocol_by_code = MappingProxyType({p.code: p for p in self.protocols})
        self._indication_by_code = MappingProxyType({i.code: i for i in self.indications})

    @property
    def protocol_codes(self) -> list[str]:
        return list(self._protocol_by_code)

    @property
    def indication_codes(self) -> list[str]:
        return list(self._indication_by_code)

    @property
    def red_flag_codes(self) -> list[str]:
        return [i.code for i in self.indications if i.red_flag]

    def protocol(self, code: str) -> Protocol:
        """The protocol with ``code``; ``UnknownProtocol`` lists the valid codes."""
        try:
            return self._protocol_by_code[code]
        except KeyError:
            valid = ", ".join(self._protocol_by_code)
            raise UnknownProtocol(f"unknown protocol {code!r}; valid: {valid}") from None

    def indication(self, code: str) -> Indication:
        """The indication with ``code``; ``UnknownIndication`` lists the valid codes."""
        try:
            return self._indication_by_code[code]
        except KeyError:
            valid = ", ".join(self._indication_by_code)
            raise UnknownIndication(f"unknown indication {code!r}; valid: {valid}") from None

    def find_protocol(self, code: str | None) -> Protocol | None:
        """The protocol with ``code``, or None for no code or one outside the catalogue."""
        return self._protocol_by_code.get(code) if code else None

    def indication_label(self, code: str | None) -> str | None:
        """How the request form words an indication; an unknown code as it is."""
        found = self._indication_by_code.get(code) if code else None
        return found.label if found is not None else code

    def red_flags(self, indication: str | None, ticked: Iterable[str]) -> tuple[Indication, ...]:
        """An order's red flags: its indication when the form offers it as one, then each
        ticked red flag, each once (codes outside the catalogue are left out)."""
        codes = dict.fromkeys([indication, *ticked] if indication else list(ticked))
        found = (self._indication_by_code.get(code) for code in codes if code)
        return tuple(i for i in found if i is not None and i.red_flag)


def _empty(model: BaseModel, *fields: str) -> list[tuple[Loc, str]]:
    """A problem for each of ``fields`` that holds no item, at the field's alias."""
    problems: list[tuple[Loc, str]] = []
    for name in fields:
        if not getattr(model, name):
            alias = type(model).model_fields[name].alias or name
            problems.append(((alias,), "needs at least one item"))
    return problems


def _duplicates(section: str, codes: Sequence[str]) -> Iterator[tuple[Loc, str]]:
    seen: set[str] = set()
    for index, code in enumerate(codes):
        if code in seen:
            yield (section, index, "code"), f"{code} appears twice"
        seen.add(code)


@dataclass(frozen=True)
class ProtocolChoice:
    """What the order gets: protocol and priority, and why."""

    protocol: Protocol
    priority: Priority
    indications: tuple[str, ...]
    not_indicated: str | None
    reason: str


def choose_protocol(
    catalogue: Catalogue, indication: str, red_flags: Sequence[str] = ()
) -> ProtocolChoice:
    """The highest priority among the indication and the ticked red flags wins; never downgrade.

    The protocol is that of the most urgent indication; on a tie the primary indication's,
    else the first tied one in catalogue order. A ticked red flag clears ``not_indicated``.
    """
    primary = catalogue.indication(indication)
    for code in red_flags:
        if code not in catalogue.indication_codes:
            valid = ", ".join(catalogue.red_flag_codes)
            raise UnknownIndication(f"unknown red flag {code!r}; red flags: {valid}")
    applied = tuple(dict.fromkeys((primary.code, *red_flags)))
    chosen = [i for i in catalogue.indications if i.code in applied]
    top = max(i.priority.rank for i in chosen)
    tied = [i for i in chosen if i.priority.rank == top]
    winner = primary if primary in tied else tied[0]
    protocol = catalogue.protocol(winner.protocol)
    flagged = any(i.red_flag for i in chosen if i is not primary)
    return ProtocolChoice(
        protocol=protocol,
        priority=winner.priority,
        indications=applied,
        not_indicated=None if flagged else primary.not_indicated,
        reason=f"{' + '.join(applied)} → {winner.priority} {protocol.code}",
    )


def parse_catalogue(text: str, source: str) -> Catalogue:
    """Validate a catalogue text; ``CatalogueError`` names the line of every fault."""
    return parse_yaml_model(text, source, Catalogue, error=CatalogueError)
