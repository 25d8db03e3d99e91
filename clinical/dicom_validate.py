"""Strict DICOM intake: Part 10 only, allow-listed SOP classes, pixels proven decodable."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from io import BytesIO
from typing import Any

from pydicom import dcmread
from pydicom import uid as dicom_uid
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import pixel_array

from clinical.errors import ClinicalError, describe, library_errors

IMAGE_CLASSES = frozenset(
    {
        dicom_uid.CTImageStorage,
        dicom_uid.MRImageStorage,
        dicom_uid.ComputedRadiographyImageStorage,
        dicom_uid.DigitalXRayImageStorageForPresentation,
        dicom_uid.DigitalXRayImageStorageForProcessing,
        dicom_uid.UltrasoundImageStorage,
        dicom_uid.UltrasoundMultiFrameImageStorage,
        dicom_uid.SecondaryCaptureImageStorage,
        dicom_uid.XRayAngiographicImageStorage,
        dicom_uid.XRayRadiofluoroscopicImageStorage,
        dicom_uid.NuclearMedicineImageStorage,
        dicom_uid.PositronEmissionTomographyImageStorage,
        # Enhanced multi-frame objects: geometry, rescale and window per frame in
        # functional groups (read by clinical/dicom_preview.py).
        dicom_uid.EnhancedCTImageStorage,
        dicom_uid.EnhancedMRImageStorage,
        dicom_uid.EnhancedMRColorImageStorage,
        dicom_uid.EnhancedUSVolumeStorage,
    }
)
WAVEFORM_CLASSES = frozenset({dicom_uid.TwelveLeadECGWaveformStorage})
DEFAULT_ALLOWED = IMAGE_CLASSES | WAVEFORM_CLASSES

# A compressed frame can claim any size; refuse to allocate more than this many
# samples (rows * columns * samples per pixel) for one decoded frame.
MAX_FRAME_SAMPLES = 2**26

_UNDEFINED_LENGTH = 0xFFFFFFFF


@dataclass(frozen=True)
class DicomObject:
    """What the session shares about an accepted object. ``dataset`` stays server-side."""

    kind: str  # "image" or "waveform"
    sop_class_uid: str
    sop_class_name: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    modality: str
    transfer_syntax_uid: str
    rows: int | None
    columns: int | None
    frames: int
    burned_in_annotation: bool
    window_center: float | None
    window_width: float | None
    dataset: Dataset = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it would deep-copy the whole dataset, pixels included.
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "dataset"}


def load_dataset(data: bytes) -> Dataset:
    """Parse a DICOM Part 10 file (preamble and File Meta required) and detect truncation."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ClinicalError("dicom-invalid", f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    # pydicom reports a missing delimiter only as a warning and keeps going.
    with quiet_warnings() as caught:
        try:
            ds = dcmread(BytesIO(data), force=False)
        except InvalidDicomError:
            raise ClinicalError(
                "dicom-not-part10",
                "not a DICOM Part 10 file: no 128-byte preamble and 'DICM' prefix",
            ) from None
        except (EOFError, OSError) as exc:
            raise ClinicalError(
                "dicom-truncated", f"file ends inside an element: {describe(exc)}"
            ) from exc
        except Exception as exc:  # pydicom raises many unrelated types on malformed input
            raise ClinicalError("dicom-invalid", f"unreadable DICOM: {describe(exc)}") from exc
    if any("End of file" in str(w.message) for w in caught):
        raise ClinicalError(
            "dicom-truncated", "file ends before a sequence or pixel data delimiter"
        )
    _check_value_lengths(ds)
    if not ds.file_meta.get("TransferSyntaxUID"):
        raise ClinicalError("dicom-no-meta", "File Meta Information has no Transfer Syntax UID")
    if len(ds) == 0:
        raise ClinicalError("dicom-truncated", "no data elements after the File Meta Information")
    return ds


def read_dicom(
    data: bytes,
    allowed_sop_classes: frozenset[str] | set[str] = DEFAULT_ALLOWED,
    *,
    allow_burned_in: bool = False,
) -> DicomObject:
    """Validate an uploaded object and summarise it, or raise ``ClinicalError``."""
    ds = load_dataset(data)
    with library_errors("dicom-invalid", "malformed attribute"), quiet_warnings():
        sop_class = str(ds.get("SOPClassUID", "") or "")
        if not sop_class:
            raise ClinicalError("dicom-missing-uid", "SOP Class UID is missing")
        media_class = str(ds.file_meta.get("MediaStorageSOPClassUID", "") or "")
        if media_class and media_class != sop_class:
            raise ClinicalError("dicom-invalid", "File Meta SOP Class does not match the dataset")
        if sop_class not in allowed_sop_classes:
            name = dicom_uid.UID(sop_class).name
            raise ClinicalError(
                "dicom-sop-class", f"SOP Class {name} ({sop_class}) is not accepted"
            )
        uids = {
            key: _require_uid(ds, key)
            for key in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
        }
        burned_in = str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES"
        if burned_in and not allow_burned_in:
            raise ClinicalError(
                "dicom-burned-in",
                "pixel data carries burned-in annotation (possible patient identifiers)",
            )
        is_image = sop_class not in WAVEFORM_CLASSES
        rows = columns = None
        frames = 0
        if is_image:
            rows, columns, frames = _check_image(ds)
        else:
            _check_waveform(ds)
        return DicomObject(
            kind="image" if is_image else "waveform",
            sop_class_uid=sop_class,
            sop_class_name=dicom_uid.UID(sop_class).name,
            sop_instance_uid=uids["SOPInstanceUID"],
            study_instance_uid=uids["StudyInstanceUID"],
            series_instance_uid=uids["SeriesInstanceUID"],
            modality=str(ds.get("Modality", "") or ""),
            transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
            rows=rows,
            columns=columns,
            frames=frames,
            burned_in_annotation=burned_in,
            window_center=_first_float(ds, "WindowCenter"),
            window_width=_first_float(ds, "WindowWidth"),
            dataset=ds,
        )


def frame_count(ds: Dataset) -> int:
    value = ds.get("NumberOfFrames", 1)
    frames = int(value) if value not in (None, "") else 1
    if frames < 1:
        raise ClinicalError("dicom-invalid", f"Number of Frames is {frames}")
    return frames


def _check_image(ds: Dataset) -> tuple[int, int, int]:
    if "PixelData" not in ds:
        raise ClinicalError("dicom-no-pixels", "image object without Pixel Data")
    rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if rows < 1 or columns < 1:
        raise ClinicalError("dicom-pixels", f"image size {rows}x{columns} is invalid")
    if rows * columns * samples > MAX_FRAME_SAMPLES:
        raise ClinicalError(
            "dicom-pixels", f"frame of {rows}x{columns}x{samples} samples is too large"
        )
    frames = frame_count(ds)
    with library_errors("dicom-pixels", "frame 0 cannot be decoded"), quiet_warnings():
        frame = pixel_array(ds, index=0)
    if frame.shape[:2] != (rows, columns):
        raise ClinicalError(
            "dicom-pixels", f"decoded frame is {frame.shape}, expected {rows}x{columns}"
        )
    return rows, columns, frames


def _check_waveform(ds: Dataset) -> None:
    if not ds.get("WaveformSequence"):
        raise ClinicalError("dicom-no-waveform", "waveform object without a Waveform Sequence")
    with library_errors("dicom-waveform", "waveform cannot be decoded"), quiet_warnings():
        samples = ds.waveform_array(0)
    if samples.size == 0:
        raise ClinicalError("dicom-waveform", "waveform has no samples")


def _check_value_lengths(ds: Dataset) -> None:
    # pydicom keeps a short read of the final element silently; compare each raw
    # value with its declared length.
    for elem in ds.elements():
        if not isinstance(elem, RawDataElement) or elem.length == _UNDEFINED_LENGTH:
            continue
        if len(elem.value or b"") < elem.length:
            raise ClinicalError(
                "dicom-truncated", f"element {elem.tag} is shorter than its declared length"
            )


def _require_uid(ds: Dataset, keyword: str) -> str:
    value = str(ds.get(keyword, "") or "")
    if not value or not dicom_uid.UID(value).is_valid:
        raise ClinicalError("dicom-missing-uid", f"{keyword} is missing or not a valid UID")
    return value


def _first_float(ds: Dataset, keyword: str) -> float | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    if isinstance(value, MultiValue):
        value = value[0]
    return float(value)


@contextmanager
def quiet_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Record pydicom's warnings instead of letting hostile input flood the server log."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
