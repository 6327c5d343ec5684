"""Specific Character Set of answers: UTF-8 where the peer reads it, Latin-1 otherwise."""

from __future__ import annotations

import unicodedata

from pydicom.dataset import Dataset

from mri_pipeline.domain.mwl_response import needs_extended_charset

TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"})


def transliterate(text: str, encoding: str) -> str:
    """``text`` with characters ``encoding`` cannot hold replaced by their base letter or '?'."""
    out = []
    for char in text:
        try:
            char.encode(encoding)
            out.append(char)
        except UnicodeEncodeError:
            base = "".join(
                c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
            )
            try:
                base.encode(encoding)
                out.append(base or "?")
            except UnicodeEncodeError:
                out.append("?")
    return "".join(out)


def _transliterate_dataset(dataset: Dataset, encoding: str) -> None:
    for element in dataset:
        if element.VR == "SQ":
            for item in element.value:
                _transliterate_dataset(item, encoding)
        elif element.VR in TEXT_VRS and element.value is not None:
            value = element.value
            if isinstance(value, str):
                element.value = transliterate(value, encoding)
            elif element.VR == "PN":
                element.value = transliterate(str(value), encoding)
            else:
                try:
                    element.value = [transliterate(str(v), encoding) for v in value]
                except TypeError:
                    continue


def set_response_charset(response: Dataset, peer_charset: str) -> Dataset:
    """Declare (0008,0005) only when a value needs it, in the peer's repertoire."""
    if not needs_extended_charset(response):
        return response
    if peer_charset == "ISO_IR 192":
        response.SpecificCharacterSet = "ISO_IR 192"
        return response
    encoding = "latin_1" if peer_charset == "ISO_IR 100" else "ascii"
    _transliterate_dataset(response, encoding)
    if peer_charset == "ISO_IR 100" and needs_extended_charset(response):
        response.SpecificCharacterSet = "ISO_IR 100"
    return response
