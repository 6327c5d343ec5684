"""One MR series as QC needs it: headers, geometry and a float32 pixel stack.

The images come as pydicom datasets or as the bytes of ``/instances/{id}/file`` from
Orthanc. An instance whose pixels do not decode is recorded with the reason, not raised:
the radiographer must hear about it, and the rest of the series is still checked.
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.multival import MultiValue

from mri_pipeline.domain.qc_measurements import AcquisitionFacts, ImageGrid, Vec3

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float32]

_DECODE_ERRORS = (ValueError, NotImplementedError, RuntimeError, AttributeError, TypeError)
# What pydicom raises on a file cut short or not DICOM at all.
_READ_ERRORS = (
    InvalidDicomError,
    BytesLengthException,
    zlib.error,
    struct.error,
    EOFError,
    OSError,
    ValueError,
    KeyError,
)


@dataclass(frozen=True)
class SliceHeader:
    """The Image Plane module values of one instance (PS3.3 C.7.6.2), as floats."""

    instance_number: int | None
    sop_instance_uid: str
    position: Vec3 | None  # Image Position (Patient): centre of the first pixel
    row_direction: Vec3 | None  # first half of Image Orientation (Patient)
    column_direction: Vec3 | None
    grid: ImageGrid | None
    slice_thickness: float | None

    @property
    def normal(self) -> Vec3 | None:
        if self.row_direction is None or self.column_direction is None:
            return None
        return _cross(self.row_direction, self.column_direction)


@dataclass(frozen=True)
class Undecodable:
    """An instance whose pixel data could not be turned into an image."""

    instance_number: int | None
    sop_instance_uid: str
    reason: str
    slice_index: int  # into ``SeriesImages.slices``


@dataclass(frozen=True, eq=False)
class SeriesImages:
    """A series' instances sorted along the slice normal, with the pixels that decoded.

    ``pixels`` holds the decoded images of the series' usual matrix, one plane per entry
    of ``pixel_slices`` (indices into ``slices``); images of another matrix are in
    ``other_pixels`` by the same index.
    """

    acquisition: AcquisitionFacts
    slices: tuple[SliceHeader, ...]
    pixels: FloatArray
    pixel_slices: tuple[int, ...]
    other_pixels: tuple[tuple[int, FloatArray], ...] = ()
    undecodable: tuple[Undecodable, ...] = ()
    unreadable: tuple[str, ...] = ()  # files that are not readable DICOM: why


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple, MultiValue)):
        value = value[0] if len(value) else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _floats(value: Any, count: int) -> tuple[float, ...] | None:
    if value is None or value == "":
        return None
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == count else None


def _strings(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(part.strip().upper() for part in value.split("\\") if part.strip())
    return tuple(str(v).strip().upper() for v in value if str(v).strip())


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _cross(a: Vec3, b: Vec3) -> Vec3:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def acquisition_facts(ds: Dataset) -> AcquisitionFacts:
    """The sequence-identifying values of an MR Image (PS3.3 C.8.3.1), missing as None."""
    phase = _text(ds.get("InPlanePhaseEncodingDirection")).upper()
    agent = _text(ds.get("ContrastBolusAgent"))
    return AcquisitionFacts(
        series_description=_text(ds.get("SeriesDescription")),
        protocol_name=_text(ds.get("ProtocolName")),
        series_number=_int(ds.get("SeriesNumber")),
        repetition_time=_float(ds.get("RepetitionTime")),
        echo_time=_float(ds.get("EchoTime")),
        inversion_time=_float(ds.get("InversionTime")),
        scanning_sequence=_strings(ds.get("ScanningSequence")),
        sequence_variant=_strings(ds.get("SequenceVariant")),
        scan_options=_strings(ds.get("ScanOptions")),
        mr_acquisition_type=_text(ds.get("MRAcquisitionType")).upper() or None,
        contrast_agent=agent or None,
        phase_encoding_direction=phase if phase in ("ROW", "COL") else None,
    )


def slice_header(ds: Dataset) -> SliceHeader:
    orientation = _floats(ds.get("ImageOrientationPatient"), 6)
    position = _floats(ds.get("ImagePositionPatient"), 3)
    spacing = _floats(ds.get("PixelSpacing"), 2)
    rows, columns = _int(ds.get("Rows")), _int(ds.get("Columns"))
    return SliceHeader(
        instance_number=_int(ds.get("InstanceNumber")),
        sop_instance_uid=_text(ds.get("SOPInstanceUID")),
        position=(position[0], position[1], position[2]) if position else None,
        row_direction=(orientation[0], orientation[1], orientation[2]) if orientation else None,
        column_direction=(orientation[3], orientation[4], orientation[5]) if orientation else None,
        grid=(
            ImageGrid(rows, columns, (spacing[0], spacing[1]) if spacing else None)
            if rows and columns
            else None
        ),
        slice_thickness=_float(ds.get("SliceThickness")),
    )


def _native(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    return syntax is None or not syntax.is_compressed


def decode(ds: Dataset) -> FloatArray | str:
    """The rescaled pixels of a single-frame greyscale image, or why there are none."""
    if "PixelData" not in ds:
        return "no pixel data"
    rows, columns = _int(ds.get("Rows")) or 0, _int(ds.get("Columns")) or 0
    frames = _int(ds.get("NumberOfFrames")) or 1
    samples = _int(ds.get("SamplesPerPixel")) or 1
    bits = _int(ds.get("BitsAllocated")) or 0
    if frames > 1:
        return f"multi-frame images ({frames} frames) are not supported"
    if samples != 1:
        return "not a greyscale image"
    expected = rows * columns * bits // 8
    if _native(ds) and bits % 8 == 0:
        held = len(ds.PixelData)
        if held < expected:
            return f"pixel data truncated ({held} of {expected} bytes)"
    try:
        array = np.array(ds.pixel_array, dtype=np.float32)  # a copy: rescaled in place
    except _DECODE_ERRORS as exc:
        return f"pixel data does not decode ({exc})"
    if array.shape != (rows, columns):
        return f"pixel data is {array.shape}, not {rows}×{columns}"
    slope = _float(ds.get("RescaleSlope"))
    intercept = _float(ds.get("RescaleIntercept"))
    if slope is not None and slope != 1:
        array *= np.float32(slope)
    if intercept:
        array += np.float32(intercept)
    return array


def _order(headers: Sequence[SliceHeader]) -> list[int]:
    """Indices sorted along the normal of the most common orientation, then by number;
    instances without geometry last."""
    orientations = Counter(
        (h.row_direction, h.column_direction)
        for h in headers
        if h.row_direction is not None and h.column_direction is not None
    )
    if not orientations:
        return sorted(range(len(headers)), key=lambda i: headers[i].instance_number or 0)
    row, column = orientations.most_common(1)[0][0]
    normal = _cross(row, column)

    def key(i: int) -> tuple[int, float, int]:
        h = headers[i]
        if h.position is None:
            return (1, 0.0, h.instance_number or 0)
        along = sum(p * n for p, n in zip(h.position, normal, strict=True))
        return (0, along, h.instance_number or 0)

    return sorted(range(len(headers)), key=key)


def load_series(datasets: Sequence[Dataset], unreadable: Sequence[str] = ()) -> SeriesImages:
    """Sort ``datasets`` (one series) along the slice normal and decode their pixels.

    ``unreadable`` carries the reasons for files of the series that did not parse.
    """
    headers = [slice_header(ds) for ds in datasets]
    order = _order(headers)
    datasets = [datasets[i] for i in order]
    headers = [headers[i] for i in order]
    decoded: list[tuple[int, FloatArray]] = []
    undecodable: list[Undecodable] = []
    for index, (ds, header) in enumerate(zip(datasets, headers, strict=True)):
        result = decode(ds)
        if isinstance(result, str):
            undecodable.append(
                Undecodable(header.instance_number, header.sop_instance_uid, result, index)
            )
            log.warning(
                "undecodable instance %s of series %s: %s",
                header.sop_instance_uid,
                _text(ds.get("SeriesInstanceUID")),
                result,
            )
        else:
            decoded.append((index, result))
    shapes = Counter(array.shape for _, array in decoded)
    usual = shapes.most_common(1)[0][0] if shapes else (0, 0)
    stacked = [(i, a) for i, a in decoded if a.shape == usual]
    pixels = (
        np.stack([a for _, a in stacked]) if stacked else np.zeros((0, *usual), dtype=np.float32)
    )
    return SeriesImages(
        acquisition=acquisition_facts(datasets[0]) if datasets else AcquisitionFacts(),
        slices=tuple(headers),
        pixels=pixels,
        pixel_slices=tuple(i for i, _ in stacked),
        other_pixels=tuple((i, a) for i, a in decoded if a.shape != usual),
        undecodable=tuple(undecodable),
        unreadable=tuple(unreadable),
    )


def load_series_bytes(files: Sequence[bytes]) -> SeriesImages:
    """:func:`load_series` for DICOM files as bytes (Orthanc's ``/instances/{id}/file``);
    a file that does not parse is recorded in ``unreadable`` with the reason."""
    datasets: list[Dataset] = []
    unreadable: list[str] = []
    for number, data in enumerate(files, start=1):
        try:
            ds = dcmread(BytesIO(data))
            for _ in ds:  # pydicom converts values on first access: a short one raises here
                pass
            datasets.append(ds)
        except _READ_ERRORS as exc:
            unreadable.append(f"file {number} of {len(files)}: {_reason(exc)}")
    return load_series(datasets, unreadable)


def _reason(exc: Exception) -> str:
    text = str(exc)
    cut_short = (zlib.error, struct.error, EOFError, BytesLengthException)
    if isinstance(exc, cut_short) or "truncated" in text or "incomplete" in text:
        return "the file is incomplete (truncated)"
    return f"not a readable DICOM file ({text})"
