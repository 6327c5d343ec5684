"""The lumbar spine protocol catalogue and the indication → priority/protocol rules (B.2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mri_pipeline.domain.errors import UnknownIndication, UnknownProtocol
from mri_pipeline.domain.yaml_source import SourceError, parse_yaml_model

LOCAL_SCHEME = "99LSPINE"


class CatalogueError(SourceError):
    """A protocol catalogue that cannot be used; the message names file, line and field."""


class Priority(StrEnum):
    """Requested Procedure Priority (0040,1003); URGENT requests are sent as HIGH."""

    STAT = "STAT"
    HIGH = "HIGH"
    ROUTINE = "ROUTINE"
    MEDIUM = "MEDIUM"
    LOW = "LOW"

    @property
    def rank(self) -> int:
        """Larger is more urgent."""
        return {"STAT": 4, "HIGH": 3, "ROUTINE": 2, "MEDIUM": 2, "LOW": 1}[self.value]


class CodedConcept(BaseModel):
    """A Code Sequence Macro item (PS3.3 8.1): value, scheme, meaning."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code_value: str = Field(min_length=1, max_length=16)
    coding_scheme_designator: str = Field(min_length=1, max_length=16)
    code_meaning: str = Field(min_length=1, max_length=64)


class SeriesSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    description: str = Field(min_length=1, max_length=64)
    required: bool = True


class RequestedCode(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(min_length=1, max_length=16)
    scheme: str = Field(default="LN", min_length=1, max_length=16)
    meaning: str = Field(min_length=1, max_length=64)


class Protocol(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(min_length=1, max_length=16)
    meaning: str = Field(min_length=1, max_length=64)
    series: tuple[SeriesSpec, ...] = Field(min_length=1)
    contrast: bool
    scan_minutes: int = Field(gt=0, le=240)
    slot_minutes: int = Field(gt=0, le=240)
    requested_procedure: tuple[RequestedCode, ...] = Field(min_length=1)
    default_priority: Priority
    subspecialty: tuple[str, ...] = ()
    axial_levels: str | None = Field(default=None, max_length=1024)

    @model_validator(mode="after")
    def _slot_holds_the_scan(self) -> Protocol:
        if self.slot_minutes < self.scan_minutes:
            raise ValueError("slot_minutes must be at least scan_minutes")
        return self

    @property
    def scheduled_protocol_code(self) -> CodedConcept:
        return CodedConcept(
            code_value=self.code, coding_scheme_designator=LOCAL_SCHEME, code_meaning=self.meaning
        )

    @property
    def requested_procedure_codes(self) -> tuple[CodedConcept, ...]:
        return tuple(
            CodedConcept(
                code_value=c.code, coding_scheme_designator=c.scheme, code_meaning=c.meaning
            )
            for c in self.requested_procedure
        )


class Indication(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(min_length=1, max_length=64)
    label: str = Field(min_length=1, max_length=128)
    priority: Priority
    protocol: str
    red_flag: bool = False
    not_indicated: str | None = None


class Catalogue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    contrast_agent: str = Field(min_length=1, max_length=64)
    protocols: tuple[Protocol, ...] = Field(min_length=1)
    indications: tuple[Indication, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Catalogue:
        for kind, codes in (
            ("protocol", [p.code for p in self.protocols]),
            ("indication", [i.code for i in self.indications]),
        ):
            duplicates = sorted({c for c in codes if codes.count(c) > 1})
            if duplicates:
                raise ValueError(f"{kind} codes appear twice: {', '.join(duplicates)}")
        known = {p.code for p in self.protocols}
        for indication in self.indications:
            if indication.protocol not in known:
                raise ValueError(
                    f"indication {indication.code} names unknown protocol {indication.protocol}"
                )
        return self

    def protocol(self, code: str) -> Protocol:
        for protocol in self.protocols:
            if protocol.code == code:
                return protocol
        raise UnknownProtocol(f"unknown protocol {code!r}")

    def indication(self, code: str) -> Indication:
        for indication in self.indications:
            if indication.code == code:
                return indication
        valid = ", ".join(i.code for i in self.indications)
        raise UnknownIndication(f"unknown indication {code!r}; valid: {valid}")

    @property
    def indication_codes(self) -> list[str]:
        return [i.code for i in self.indications]


@dataclass(frozen=True)
class ProtocolChoice:
    protocol: Protocol
    priority: Priority
    indications: tuple[str, ...]
    not_indicated: str | None
    reason: str


def parse_catalogue(text: str, source: str) -> Catalogue:
    """The catalogue in ``text``; ``CatalogueError`` names the line of the first fault."""
    try:
        return parse_yaml_model(text, source, Catalogue)
    except SourceError as exc:
        raise CatalogueError(str(exc)) from exc


def choose_protocol(
    catalogue: Catalogue, indication: str, red_flags: Sequence[str] = ()
) -> ProtocolChoice:
    """The highest priority among the indication and its red flags wins; never downgrade."""
    primary = catalogue.indication(indication)
    flags = [catalogue.indication(code) for code in red_flags]
    applied = [primary, *(f for f in flags if f.code != primary.code)]
    top = max(i.priority.rank for i in applied)
    tied = [i for i in applied if i.priority.rank == top]
    chosen = primary if primary in tied else tied[0]
    not_indicated = primary.not_indicated if not flags else None
    return ProtocolChoice(
        protocol=catalogue.protocol(chosen.protocol),
        priority=chosen.priority,
        indications=tuple(i.code for i in applied),
        not_indicated=not_indicated,
        reason=f"{chosen.code} → {chosen.priority.value} {chosen.protocol}",
    )
