"""MR Image Storage datasets for the sample studies: identity, acquisition, geometry.

Patient and study identifiers live in one :class:`StudyIdentity`, stamped by
:meth:`StudyIdentity.stamp`; the scanner simulator overwrites exactly those (and the
series and instance UIDs) when it turns a sample into a worklist patient's examination.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from mri_pipeline.imaging.geometry import SliceStack
from mri_pipeline.imaging.mr_signal import PixelArray

MR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.4")
TRANSFER_SYNTAX = DeflatedExplicitVRLittleEndian
MANUFACTURER = "LSP Synthetic"
MODEL_NAME = "Lumbar Spine Phantom"
STATION_NAME = "LSPSIM_MR1"
STUDY_DATE = "20260302"
STUDY_TIME = "090000"
CONTRAST_AGENT = "Gadolinium macrocyclic 0.1 mmol/kg IV"
_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:mri-pipeline:sample-studies")
IMPLEMENTATION_CLASS_UID = UID(f"2.25.{uuid.uuid5(_UID_NAMESPACE, 'implementation').int}")
IMPLEMENTATION_VERSION_NAME = "LSP_SAMPLES_1"


def sample_uid(*names: str) -> str:
    """A UID under 2.25 from a name-based (version 5) UUID of ``names``: the same names
    always give the same UID (ISO/IEC 9834-8, PS3.5 B.2)."""
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, '/'.join(names)).int}"


@dataclass(frozen=True)
class StudyIdentity:
    """Who the images belong to and which study they are: the placeholders a scanner
    replaces with the worklist's values."""

    patient_name: str
    patient_id: str
    patient_birth_date: str
    patient_sex: str
    study_instance_uid: str
    study_id: str = "1"
    accession_number: str = ""
    referring_physician_name: str = ""
    study_date: str = STUDY_DATE
    study_time: str = STUDY_TIME
    study_description: str = "MR LUMBAR SPINE"

    def stamp(self, ds: Dataset) -> None:
        ds.PatientName = self.patient_name
        ds.PatientID = self.patient_id
        ds.PatientBirthDate = self.patient_birth_date
        ds.PatientSex = self.patient_sex
        ds.StudyInstanceUID = self.study_instance_uid
        ds.StudyID = self.study_id
        ds.AccessionNumber = self.accession_number
        ds.ReferringPhysicianName = self.referring_physician_name
        ds.StudyDate = self.study_date
        ds.StudyTime = self.study_time
        ds.StudyDescription = self.study_description


@dataclass(frozen=True)
class PulseSequence:
    """The acquisition parameters a console writes into the MR Image module."""

    scanning_sequence: tuple[str, ...]
    sequence_variant: tuple[str, ...]
    scan_options: tuple[str, ...]
    sequence_name: str
    repetition_time: float
    echo_time: float
    echo_train_length: int
    flip_angle: float
    pixel_bandwidth: float
    averages: float
    inversion_time: float | None = None


@dataclass(frozen=True)
class SeriesHeader:
    """What every instance of one series shares."""

    identity: StudyIdentity
    frame_of_reference_uid: str
    series_instance_uid: str
    series_number: int
    description: str
    series_time: str
    sequence: PulseSequence
    contrast: bool
    window: tuple[float, float]  # centre, width
    software_version: str


def _ds(value: float) -> str:
    """A Decimal String that keeps the exact binary value when it fits in 16 characters."""
    text = repr(float(value) + 0.0)
    if text.endswith(".0"):
        text = text[:-2]
    if len(text) > 16:
        text = f"{value:.10g}"
    return text


def mr_image(
    header: SeriesHeader,
    stack: SliceStack,
    index: int,
    pixels: PixelArray,
    *,
    instance_number: int,
    stack_id: str,
) -> Dataset:
    """One MR Image Storage instance: slice ``index`` of ``stack`` with its pixels."""
    sop_instance_uid = UID(sample_uid(header.series_instance_uid, str(instance_number)))
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.InstanceCreationDate = header.identity.study_date
    ds.InstanceCreationTime = header.series_time
    ds.SOPClassUID = MR_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_instance_uid
    header.identity.stamp(ds)
    ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = header.identity.study_date
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = header.series_time
    ds.Modality = "MR"
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MODEL_NAME
    ds.StationName = STATION_NAME
    ds.SoftwareVersions = header.software_version
    ds.SeriesDescription = header.description
    ds.ProtocolName = header.description
    ds.BodyPartExamined = "LSPINE"
    ds.PatientPosition = "HFS"
    ds.SeriesInstanceUID = header.series_instance_uid
    ds.SeriesNumber = header.series_number
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = instance_number
    ds.FrameOfReferenceUID = header.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    _acquisition(ds, header)
    _plane(ds, stack, index, stack_id)
    _pixels(ds, pixels, header.window)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = TRANSFER_SYNTAX
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    return ds


def _acquisition(ds: Dataset, header: SeriesHeader) -> None:
    sequence = header.sequence
    ds.ScanningSequence = list(sequence.scanning_sequence)
    ds.SequenceVariant = list(sequence.sequence_variant)
    ds.ScanOptions = list(sequence.scan_options) if sequence.scan_options else ""
    ds.MRAcquisitionType = "2D"
    ds.SequenceName = sequence.sequence_name
    ds.AngioFlag = "N"
    ds.RepetitionTime = _ds(sequence.repetition_time)
    ds.EchoTime = _ds(sequence.echo_time)
    if sequence.inversion_time is not None:
        ds.InversionTime = _ds(sequence.inversion_time)
    ds.NumberOfAverages = _ds(sequence.averages)
    ds.ImagingFrequency = "63.87"
    ds.ImagedNucleus = "1H"
    ds.EchoNumbers = 1
    ds.MagneticFieldStrength = "1.5"
    ds.EchoTrainLength = sequence.echo_train_length
    ds.PercentSampling = "100"
    ds.PercentPhaseFieldOfView = "100"
    ds.PixelBandwidth = _ds(sequence.pixel_bandwidth)
    ds.ReceiveCoilName = "SPINE"
    ds.TransmitCoilName = "BODY"
    ds.FlipAngle = _ds(sequence.flip_angle)
    if header.contrast:
        ds.ContrastBolusAgent = CONTRAST_AGENT
        ds.ContrastBolusRoute = "IV"
        ds.ContrastBolusIngredient = "GADOLINIUM"


def _plane(ds: Dataset, stack: SliceStack, index: int, stack_id: str) -> None:
    ds.AcquisitionMatrix = [0, stack.columns, stack.rows, 0]
    ds.InPlanePhaseEncodingDirection = "ROW"
    ds.NumberOfPhaseEncodingSteps = stack.rows
    ds.SliceThickness = _ds(stack.slice_thickness)
    spacing = stack.spacing_between_slices
    if spacing is not None:
        ds.SpacingBetweenSlices = _ds(spacing)
    ds.ImagePositionPatient = [_ds(c) for c in stack.positions[index]]
    ds.ImageOrientationPatient = [_ds(c) for c in stack.image_orientation]
    ds.SliceLocation = _ds(stack.slice_location(index))
    ds.StackID = stack_id
    ds.InStackPositionNumber = index + 1
    ds.PixelSpacing = [_ds(s) for s in stack.pixel_spacing]


def _pixels(ds: Dataset, pixels: PixelArray, window: tuple[float, float]) -> None:
    rows, columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = _ds(window[0])
    ds.WindowWidth = _ds(window[1])
    ds.PixelData = pixels.astype("<u2").tobytes()


def write(ds: Dataset, path: Path) -> None:
    """Write ``ds`` as a DICOM file (preamble, file meta, deflated data set)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
