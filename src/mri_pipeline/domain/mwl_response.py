"""The C-FIND response Identifier: exactly the requested keys, from one stored item."""

from __future__ import annotations

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from mri_pipeline.domain.matching import SPECIFIC_CHARACTER_SET, TIMEZONE_OFFSET, values_of


def build_response(query: Dataset, item: Dataset) -> Dataset:
    """Copy the requested attributes of ``item``; requested but unknown ones come back empty.

    A sequence key with no item, or with an empty item, returns the whole stored
    sequence; otherwise each stored item is reduced to the requested sub-keys.
    Specific Character Set is left to the caller, which knows the peer.
    """
    response = Dataset()
    for key in query:
        tag = key.tag
        if tag.element == 0 or tag == SPECIFIC_CHARACTER_SET:
            continue
        stored = item.get(tag)
        if tag == TIMEZONE_OFFSET:
            if stored is not None and stored.value:
                response.add(copy_element(stored))
            continue
        if stored is None:
            response.add(DataElement(tag, key.VR, Sequence() if key.VR == "SQ" else None))
            continue
        if key.VR == "SQ" or stored.VR == "SQ":
            query_items = list(key.value) if key.VR == "SQ" and key.value else []
            if not query_items or len(query_items[0]) == 0:
                response.add(copy_element(stored))
            else:
                reduced = Sequence(build_response(query_items[0], s) for s in stored.value)
                response.add(DataElement(tag, "SQ", reduced))
            continue
        response.add(copy_element(stored))
    return response


def copy_element(element: DataElement) -> DataElement:
    """A copy that shares immutable values: answers are built from cached items, which
    must never change, and a deep copy of every value was most of an answer's cost."""
    if element.VR == "SQ":
        items = Sequence(copy_dataset(item) for item in element.value)
        return DataElement(element.tag, "SQ", items)
    value = element.value
    if isinstance(value, MultiValue | list):
        value = list(value)
    return DataElement(element.tag, element.VR, value)


def copy_dataset(dataset: Dataset) -> Dataset:
    copied = Dataset()
    for element in dataset:
        copied.add(copy_element(element))
    return copied


def needs_extended_charset(dataset: Dataset) -> bool:
    """Whether any text value in ``dataset`` (recursively) is outside ASCII."""
    for element in dataset:
        if element.VR == "SQ":
            if any(needs_extended_charset(item) for item in element.value):
                return True
            continue
        if element.VR in ("OB", "OW", "UN", "OF", "OD", "OL", "OV"):
            continue
        for value in values_of(element):
            if not str(value).isascii():
                return True
    return False
