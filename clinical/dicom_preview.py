"""Server-rendered PNG previews of DICOM frames, for viewers that get a reference, not the file.

Enhanced multi-frame objects keep rescale and window per frame in functional groups
(shared, then per frame); they are lifted onto a view of the frame's own attributes.

Monochrome: Modality LUT (rescale) -> VOI (the caller's window, else the dataset's
VOI LUT or window, else the frame's own min/max) -> MONOCHROME1 inverted so that
high values are always bright. Colour: RGB as decoded (YBR is converted by pydicom),
PALETTE COLOR expanded through its lookup table.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, pixel_array

from clinical.dicom_validate import DicomObject, frame_count, load_dataset, quiet_warnings
from clinical.errors import ClinicalError, library_errors


def render_png(
    source: bytes | Dataset | DicomObject,
    frame: int = 0,
    window: tuple[float, float] | None = None,
) -> bytes:
    """PNG of one frame; ``window`` is (center, width) in modality units (e.g. HU)."""
    ds = _dataset(source)
    if "PixelData" not in ds:
        raise ClinicalError("dicom-no-pixels", "object has no Pixel Data to preview")
    with library_errors("dicom-invalid", "malformed attribute"), quiet_warnings():
        frames = frame_count(ds)
    if type(frame) is not int or not 0 <= frame < frames:
        raise ClinicalError("preview-frame", f"frame {frame!r} outside 0..{frames - 1}")
    if window is not None:
        window = _check_window(window)
    with library_errors("preview-failed", f"frame {frame} cannot be rendered"), quiet_warnings():
        arr = pixel_array(ds, index=frame)
        image = _to_display(arr, frame_view(ds, frame), window)
        ok, png = cv2.imencode(".png", image)
    if not ok:
        raise ClinicalError("preview-failed", "PNG encoding failed")
    return png.tobytes()


# Functional group macro -> the attributes it carries that rendering reads.
_FRAME_MACROS = {
    "PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept", "RescaleType"),
    "FrameVOILUTSequence": ("WindowCenter", "WindowWidth", "VOILUTFunction"),
}


def frame_view(ds: Dataset, frame: int) -> Dataset:
    """``ds`` with one frame's functional-group rescale and window as top-level attributes;
    ``ds`` itself when it has no functional groups."""
    groups = [g[0] for g in (ds.get("SharedFunctionalGroupsSequence"), _per_frame(ds, frame)) if g]
    if not groups:
        return ds
    view = Dataset()
    for elem in ds:
        if elem.keyword not in ("PixelData", "PerFrameFunctionalGroupsSequence"):
            view.add(elem)
    for group in groups:  # per frame after shared: the frame's own value wins
        for macro, keywords in _FRAME_MACROS.items():
            for item in group.get(macro) or []:
                for keyword in keywords:
                    if keyword in item:
                        setattr(view, keyword, item[keyword].value)
    return view


def _per_frame(ds: Dataset, frame: int) -> list[Dataset] | None:
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    return [per_frame[frame]] if per_frame and frame < len(per_frame) else None


def _dataset(source: bytes | Dataset | DicomObject) -> Dataset:
    if isinstance(source, DicomObject):
        return source.dataset
    if isinstance(source, Dataset):
        return source
    return load_dataset(source)


def _check_window(window: tuple[float, float]) -> tuple[float, float]:
    try:
        center, width = (float(v) for v in window)
    except (TypeError, ValueError):
        raise ClinicalError("preview-window", "window must be (center, width)") from None
    if not (math.isfinite(center) and math.isfinite(width)) or width < 1:
        raise ClinicalError("preview-window", "window center must be finite and width >= 1")
    return center, width


def _to_display(arr: np.ndarray, ds: Dataset, window: tuple[float, float] | None) -> np.ndarray:
    """uint8 grey (H, W) or BGR (H, W, 3), ready for cv2.imencode."""
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if photometric == "PALETTE COLOR" or arr.ndim == 3:
        if window is not None:
            raise ClinicalError("preview-window", "windowing applies to monochrome images only")
        if photometric == "PALETTE COLOR":
            rgb = apply_color_lut(arr, ds)
            bits = 16 if rgb.dtype.itemsize > 1 else 8
        else:
            rgb, bits = arr, int(ds.get("BitsStored", 8))
        rgb8 = _scale(rgb.astype(np.float64), 0.0, float(2**bits - 1))
        return cv2.cvtColor(rgb8, cv2.COLOR_RGB2BGR)

    values = apply_modality_lut(arr, ds)
    if window is not None:
        grey = _linear_window(values.astype(np.float64), *window)
    elif ds.get("VOILUTSequence") or ("WindowCenter" in ds and "WindowWidth" in ds):
        lo, hi = _voi_output_range(values, ds)
        grey = (apply_voi_lut(values, ds).astype(np.float64) - lo) / (hi - lo) if hi > lo else None
    else:
        lo, hi = float(values.min()), float(values.max())
        grey = (values.astype(np.float64) - lo) / (hi - lo) if hi > lo else None
    if grey is None:  # a flat image or a degenerate VOI: render mid-grey, not garbage
        grey = np.full(values.shape, 0.5)
    if photometric == "MONOCHROME1":
        grey = 1.0 - grey
    return _scale(grey, 0.0, 1.0)


def _linear_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    # DICOM PS3.3 C.11.2.1.2.1 linear function, normalised to [0, 1].
    if width == 1:
        return (values > center - 0.5).astype(np.float64)
    return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def _voi_output_range(values: np.ndarray, ds: Dataset) -> tuple[float, float]:
    if ds.get("VOILUTSequence"):
        # Pass the LUT's whole input domain through it: its outputs bound the result.
        entries, first_map = ds.VOILUTSequence[0].LUTDescriptor[:2]
        out = apply_voi_lut(np.arange(first_map, first_map + (entries or 2**16)), ds)
    else:
        # Windowing sends everything outside the window to the two ends of its range.
        out = apply_voi_lut(np.array([-1e300, 1e300]), ds)
    return float(np.min(out)), float(np.max(out))


def _scale(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.rint(np.clip((values - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.uint8)
