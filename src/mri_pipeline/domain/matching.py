"""C-FIND attribute matching for the Modality Worklist (PS3.4 C.2.2.2, K.2.2).

Pure functions over pydicom Datasets: the query Identifier against one stored
worklist item. Values are compared as decoded Unicode, so ``?`` stands for one
character whatever its encoded length. Person names match without regard to case
or accents, component by component or as a whole string (our conformance
statement says so; DOMAIN.md D.3).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag

from mri_pipeline.domain.dicom_values import (
    combine_interval,
    parse_da,
    parse_date_key,
    parse_time_key,
    parse_tm,
)
from mri_pipeline.domain.errors import InvalidQuery

V = TypeVar("V")

SPECIFIC_CHARACTER_SET = Tag(0x0008, 0x0005)
TIMEZONE_OFFSET = Tag(0x0008, 0x0201)
PROTOCOL_CONTEXT_SEQUENCE = Tag(0x0040, 0x0440)
PERTINENT_DOCUMENTS_SEQUENCE = Tag(0x0038, 0x0100)

# Identifier-level attributes that are never matching keys (K.4.1.1.3, K.6-1).
NEVER_MATCHED = frozenset({SPECIFIC_CHARACTER_SET, TIMEZONE_OFFSET})
# Return keys the standard excludes from matching; a value in them is ignored (FF01).
RETURN_ONLY = frozenset({PROTOCOL_CONTEXT_SEQUENCE, PERTINENT_DOCUMENTS_SEQUENCE})

WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
TEXT_VRS = WILDCARD_VRS | {"UI", "DA", "TM", "DT", "AS", "IS", "DS"}
NUMERIC_VRS = frozenset({"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "IS", "DS"})
UNMATCHABLE_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN", "AT"})

# Date and time keys that form one interval when both are present (K.6-1 remark).
DATE_TIME_PAIRS: tuple[tuple[BaseTag, BaseTag], ...] = (
    (Tag(0x0040, 0x0002), Tag(0x0040, 0x0003)),  # Scheduled Procedure Step Start
    (Tag(0x0040, 0x0004), Tag(0x0040, 0x0005)),  # Scheduled Procedure Step End
    (Tag(0x0008, 0x0020), Tag(0x0008, 0x0030)),  # Study
)


def is_empty(element: DataElement) -> bool:
    """A zero-length value: universal matching for a key, unknown for a stored value."""
    value = element.value
    if value is None:
        return True
    if element.VR == "SQ":
        return len(value) == 0
    if isinstance(value, MultiValue | list | tuple):
        return all(str(v).strip() == "" for v in value)
    if isinstance(value, bytes):
        return len(value.strip()) == 0
    return str(value).strip() == ""


def has_wildcard(text: str) -> bool:
    return "*" in text or "?" in text


def values_of(element: DataElement) -> list[Any]:
    """The element's values as a list (one item for VM 1)."""
    value = element.value
    if value is None:
        return []
    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    return [value]


@lru_cache(maxsize=4096)
def _wildcard_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile("".join(parts), flags)


def wildcard_match(pattern: str, value: str) -> bool:
    """``*`` any run of characters (even none), ``?`` exactly one character."""
    if not has_wildcard(pattern):
        return pattern == value
    if pattern.strip("*") == "":
        return True
    return _wildcard_regex(pattern, False).fullmatch(value) is not None


def normalize_name(text: str) -> str:
    """Case- and accent-free form of a name, as PN matching compares them."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.casefold()


def _strip_components(group: str) -> str:
    return group.rstrip("^ ").strip()


def name_search_key(person_name: str) -> str:
    """The normalised first (alphabetic) group of a stored name, for prefix look-ups."""
    return normalize_name(_strip_components(person_name.split("=")[0]))


def name_literal_prefix(pattern: str) -> str:
    """The normalised part of a PN key before its first wildcard (may be empty)."""
    if "=" in pattern:
        return ""
    key = name_search_key(pattern)
    for index, char in enumerate(key):
        if char in "*?":
            return key[:index]
    return key


def person_name_match(pattern: str, stored: str) -> bool:
    """PN key against a stored name: whole string, or component by component.

    Components missing from the key match anything, so ``MÜLLER`` finds
    ``Müller^Hans``; a key with ``=`` groups is compared group for group.
    """
    if "=" in pattern:
        query_groups = pattern.split("=")
        stored_groups = stored.split("=") + [""] * len(query_groups)
        return all(
            _single_group_match(q, s)
            for q, s in zip(query_groups, stored_groups, strict=False)
            if _strip_components(q)
        )
    return _single_group_match(pattern, stored.split("=")[0])


def _single_group_match(pattern: str, stored: str) -> bool:
    query = normalize_name(_strip_components(pattern))
    value = normalize_name(_strip_components(stored))
    if query.strip("*") == "":
        return True
    if not value:
        return False
    if _wildcard_regex(query, False).fullmatch(value) is not None:
        return True
    query_parts = query.split("^")
    value_parts = value.split("^") + [""] * max(0, len(query_parts) - len(value.split("^")))
    return all(
        _wildcard_regex(q, False).fullmatch(value_parts[i].strip()) is not None
        for i, q in enumerate(query_parts)
        if q.strip() and q.strip("*") != ""
    )


def _as_text(value: Any) -> str:
    return str(value).strip() if value is not None else ""


def _stored(item: Dataset, tag: BaseTag, parse: Callable[[str], V]) -> V | None:
    """A stored date or time; unknown or unreadable counts as absent."""
    element = item.get(tag)
    if element is None or is_empty(element):
        return None
    try:
        return parse(_as_text(values_of(element)[0]))
    except InvalidQuery:
        return None


def _key_text(query: Dataset, tag: BaseTag) -> str | None:
    element = query.get(tag)
    if element is None or is_empty(element):
        return None
    return _as_text(element.value)


def _date_time_pair_match(
    query: Dataset, item: Dataset, date_tag: BaseTag, time_tag: BaseTag
) -> bool:
    date_key = _key_text(query, date_tag)
    time_key = _key_text(query, time_tag)
    if date_key is None and time_key is None:
        return True
    times = parse_time_key(time_key) if time_key is not None else None
    if date_key is None:
        assert times is not None
        moment = _stored(item, time_tag, parse_tm)
        if moment is None:
            return False
        return (times.low is None or moment >= times.low) and (
            times.high is None or moment <= times.high
        )
    dates = parse_date_key(date_key)
    day = _stored(item, date_tag, parse_da)
    if day is None:
        return False
    if times is None:
        return (dates.low is None or day >= dates.low) and (dates.high is None or day <= dates.high)
    moment = _stored(item, time_tag, parse_tm)
    if moment is None:
        return False
    low, high = combine_interval(dates, times)
    stamp = datetime.combine(day, moment)
    return (low is None or stamp >= low) and (high is None or stamp <= high)


def _value_match(vr: str, key: DataElement, stored: DataElement) -> bool:
    stored_values = [v for v in values_of(stored) if _as_text(v) != ""]
    if not stored_values:
        return False
    if vr == "PN":
        pattern = _as_text(key.value)
        return any(person_name_match(pattern, _as_text(v)) for v in stored_values)
    key_values = [_as_text(v) for v in values_of(key) if _as_text(v) != ""]
    if vr == "UI":
        wanted = set(key_values)
        return any(_as_text(v) in wanted for v in stored_values)
    if vr in ("DA", "TM", "DT"):
        return _single_date_or_time_match(vr, key_values[0], stored_values)
    if vr in NUMERIC_VRS:
        try:
            targets = [float(v) for v in key_values]
            return any(float(v) in targets for v in stored_values)
        except (TypeError, ValueError) as exc:
            raise InvalidQuery(f"{key.keyword or key.tag}: {key.value!r} is not a number") from exc
    texts = [_as_text(v) for v in stored_values]
    return any(wildcard_match(pattern, text) for pattern in key_values for text in texts)


def _single_date_or_time_match(vr: str, key: str, stored_values: list[Any]) -> bool:
    if vr == "DA":
        dates = parse_date_key(key)
        for value in stored_values:
            try:
                day = parse_da(_as_text(value))
            except InvalidQuery:
                continue
            if (dates.low is None or day >= dates.low) and (
                dates.high is None or day <= dates.high
            ):
                return True
        return False
    if vr == "TM":
        times = parse_time_key(key)
        for value in stored_values:
            try:
                moment = parse_tm(_as_text(value))
            except InvalidQuery:
                continue
            if (times.low is None or moment >= times.low) and (
                times.high is None or moment <= times.high
            ):
                return True
        return False
    # DT: compare as text; ranges by lexical order of equal-length prefixes.
    if "-" in key[1:] and not key.startswith("-") and key.count("-") == 1:
        low, _, high = key.partition("-")
        return any(
            (not low or _as_text(v) >= low) and (not high or _as_text(v)[: len(high)] <= high)
            for v in stored_values
        )
    return any(_as_text(v).startswith(key) for v in stored_values)


def matching_keys(query: Dataset) -> Iterator[DataElement]:
    """The elements of ``query`` that act as matching keys (non-empty, matchable)."""
    for element in query:
        if element.tag.is_private or element.tag.element == 0 or element.tag in NEVER_MATCHED:
            continue
        if element.tag in RETURN_ONLY or element.VR in UNMATCHABLE_VRS:
            continue
        if element.VR == "SQ":
            if len(element.value) and has_matching_keys(element.value[0]):
                yield element
            continue
        if not is_empty(element) and not _is_lone_star(element):
            yield element


def _is_lone_star(element: DataElement) -> bool:
    """``*`` alone is universal matching, so it matches even an empty stored value."""
    return element.VR in WILDCARD_VRS and all(
        str(v).strip().strip("*") == "" for v in values_of(element)
    )


def has_matching_keys(query: Dataset) -> bool:
    return next(matching_keys(query), None) is not None


def unsupported_keys(query: Dataset) -> list[BaseTag]:
    """Keys with a value that we do not match on (the answer is then FF01)."""
    found: list[BaseTag] = []
    for element in query:
        if element.tag.element == 0 or element.tag in NEVER_MATCHED:
            continue
        if element.VR == "SQ":
            if element.tag in RETURN_ONLY:
                if any(has_matching_keys(item) for item in element.value):
                    found.append(element.tag)
                continue
            for item in element.value:
                found.extend(unsupported_keys(item))
            continue
        if is_empty(element):
            continue
        if element.tag.is_private or element.tag in RETURN_ONLY or element.VR in UNMATCHABLE_VRS:
            found.append(element.tag)
    return found


def matches(query: Dataset, item: Dataset) -> bool:
    """Whether the stored ``item`` matches every matching key of ``query``.

    Raises ``InvalidQuery`` for a key value the matching rules cannot read (a date
    that is not a date, say), so the edge can answer with a failure status.
    """
    paired: set[BaseTag] = set()
    for date_tag, time_tag in DATE_TIME_PAIRS:
        if date_tag in query or time_tag in query:
            paired.update((date_tag, time_tag))
            if not _date_time_pair_match(query, item, date_tag, time_tag):
                return False
    for key in matching_keys(query):
        if key.tag in paired:
            continue
        stored = item.get(key.tag)
        if stored is None or is_empty(stored):
            return False
        if key.VR == "SQ":
            if not _sequence_match(key.value[0], stored.value):
                return False
            continue
        if not _value_match(key.VR, key, stored):
            return False
    return True


def _sequence_match(query_item: Dataset, stored_items: Iterable[Dataset]) -> bool:
    return any(matches(query_item, stored_item) for stored_item in stored_items)
