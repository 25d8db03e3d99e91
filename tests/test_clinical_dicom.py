"""DICOM intake, preview and de-identification, on pydicom's bundled files only."""

from io import BytesIO

import cv2
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import RTDoseStorage

from clinical.deidentify import Deidentifier, deidentify
from clinical.dicom_preview import render_png
from clinical.dicom_validate import DEFAULT_ALLOWED, read_dicom
from clinical.errors import ClinicalError


def sample(name: str) -> bytes:
    path = get_testdata_file(name)
    assert path, f"{name} is not bundled with pydicom"
    with open(path, "rb") as f:
        return f.read()


def encode(ds) -> bytes:
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def edited(name: str, **attrs) -> bytes:
    ds = dcmread(BytesIO(sample(name)))
    for key, value in attrs.items():
        setattr(ds, key, value)
    return encode(ds)


def decode_png(png: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None
    return image


def code_of(excinfo) -> str:
    return excinfo.value.code


# --- read_dicom -----------------------------------------------------------------------


def test_ct_summary():
    obj = read_dicom(sample("CT_small.dcm"))
    assert obj.kind == "image"
    assert obj.modality == "CT"
    assert (obj.rows, obj.columns, obj.frames) == (128, 128, 1)
    assert obj.sop_class_name == "CT Image Storage"
    assert obj.sop_instance_uid.startswith("1.3.6.1.4.1.5962")
    assert obj.burned_in_annotation is False
    summary = obj.to_dict()
    assert "dataset" not in summary
    assert summary["study_instance_uid"] == obj.study_instance_uid


def test_mr_window_is_reported():
    obj = read_dicom(sample("MR_small.dcm"))
    assert (obj.window_center, obj.window_width) == (600.0, 1600.0)


def test_multiframe_ultrasound():
    obj = read_dicom(sample("examples_ybr_color.dcm"))
    assert obj.sop_class_name == "Ultrasound Multi-frame Image Storage"
    assert (obj.rows, obj.columns, obj.frames) == (240, 320, 30)


def test_ecg_waveform_is_accepted_without_pixels():
    obj = read_dicom(sample("waveform_ecg.dcm"))
    assert obj.kind == "waveform"
    assert obj.modality == "ECG"
    assert obj.rows is None and obj.frames == 0


@pytest.mark.parametrize(
    "data", [b"", b"hello", bytes(range(256)) * 10, b"\0" * 128 + b"DICX" + b"\0" * 64]
)
def test_garbage_is_refused(data):
    with pytest.raises(ClinicalError) as e:
        read_dicom(data)
    assert code_of(e) == "dicom-not-part10"


def test_non_bytes_is_refused():
    with pytest.raises(ClinicalError) as e:
        read_dicom("CT_small.dcm")  # type: ignore[arg-type]
    assert code_of(e) == "dicom-invalid"


def test_file_readable_only_with_force_is_refused():
    data = sample("no_meta.dcm")
    dcmread(BytesIO(data), force=True)  # pydicom can read it when forced...
    with pytest.raises(ClinicalError) as e:  # ...we never force
        read_dicom(data)
    assert code_of(e) == "dicom-not-part10"


def test_truncated_inside_pixel_data():
    data = sample("CT_small.dcm")
    with pytest.raises(ClinicalError) as e:
        read_dicom(data[: len(data) - 1000])
    assert code_of(e) == "dicom-truncated"


def test_truncated_encapsulated_pixel_data():
    data = sample("examples_ybr_color.dcm")
    with pytest.raises(ClinicalError) as e:
        read_dicom(data[: len(data) // 2])
    assert code_of(e) == "dicom-truncated"


@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "MR_small_RLE.dcm", "waveform_ecg.dcm", "JPEG2000.dcm"]
)
def test_every_truncation_is_a_clean_error(name):
    data = sample(name)
    for cut in range(0, len(data) - 16, max(1, len(data) // 50)):
        with pytest.raises(ClinicalError):
            read_dicom(data[:cut])


def test_missing_transfer_syntax_is_refused():
    with pytest.raises(ClinicalError) as e:
        read_dicom(sample("meta_missing_tsyntax.dcm"))
    assert code_of(e) == "dicom-no-meta"


def test_disallowed_sop_class():
    with pytest.raises(ClinicalError) as e:
        read_dicom(sample("rtdose.dcm"))
    assert code_of(e) == "dicom-sop-class"
    assert "RT Dose Storage" in e.value.message
    assert RTDoseStorage not in DEFAULT_ALLOWED


def test_custom_allow_list():
    with pytest.raises(ClinicalError) as e:
        read_dicom(sample("CT_small.dcm"), allowed_sop_classes={"1.2.840.10008.5.1.4.1.1.4"})
    assert code_of(e) == "dicom-sop-class"


def test_burned_in_refused_by_default_and_flagged_when_allowed():
    data = edited("CT_small.dcm", BurnedInAnnotation="YES")
    with pytest.raises(ClinicalError) as e:
        read_dicom(data)
    assert code_of(e) == "dicom-burned-in"
    assert read_dicom(data, allow_burned_in=True).burned_in_annotation is True


def test_undecodable_pixels_are_refused():
    # Declares a 256x256 frame but carries only 128x128 of native pixel data.
    data = edited("CT_small.dcm", Rows=256, Columns=256)
    with pytest.raises(ClinicalError) as e:
        read_dicom(data)
    assert code_of(e) == "dicom-pixels"


def test_image_without_pixel_data_is_refused():
    ds = dcmread(BytesIO(sample("CT_small.dcm")))
    del ds.PixelData
    with pytest.raises(ClinicalError) as e:
        read_dicom(encode(ds))
    assert code_of(e) == "dicom-no-pixels"


def test_missing_instance_uid_is_refused():
    ds = dcmread(BytesIO(sample("CT_small.dcm")))
    del ds.StudyInstanceUID
    with pytest.raises(ClinicalError) as e:
        read_dicom(encode(ds))
    assert code_of(e) == "dicom-missing-uid"


def test_malformed_attribute_is_a_clean_error():
    # badVR.dcm in miniature: Number of Frames (IS) that is not an integer.
    ds = dcmread(BytesIO(sample("CT_small.dcm")))
    ds.NumberOfFrames = 1
    element = b"\x28\x00\x08\x00IS\x02\x00"
    data = encode(ds)
    assert data.count(element + b"1 ") == 1
    with pytest.raises(ClinicalError) as e:
        read_dicom(data.replace(element + b"1 ", element + b"1A"))
    assert code_of(e) == "dicom-invalid"


# --- render_png ---------------------------------------------------------------------


def test_preview_ct_size_and_contrast():
    image = decode_png(render_png(sample("CT_small.dcm")))
    assert image.shape == (128, 128)
    assert image.min() == 0 and image.max() == 255


def test_preview_accepts_summary_and_dataset():
    obj = read_dicom(sample("MR_small.dcm"))
    assert render_png(obj) == render_png(obj.dataset) == render_png(sample("MR_small.dcm"))


def test_preview_explicit_window_in_modality_units():
    data = sample("CT_small.dcm")
    ds = dcmread(BytesIO(data))
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    image = decode_png(render_png(data, window=(40, 400)))  # soft-tissue window
    assert np.all(image[hu <= 40 - 0.5 - 399 / 2] == 0)
    assert np.all(image[hu > 40 - 0.5 + 399 / 2] == 255)


def test_preview_dataset_window_matches_explicit_window():
    data = sample("MR_small.dcm")  # carries WindowCenter 600 / WindowWidth 1600
    assert np.array_equal(
        decode_png(render_png(data)), decode_png(render_png(data, window=(600, 1600)))
    )


def test_preview_monochrome1_is_inverted():
    mono2 = decode_png(render_png(sample("CT_small.dcm")))
    mono1 = decode_png(render_png(edited("CT_small.dcm", PhotometricInterpretation="MONOCHROME1")))
    assert np.array_equal(mono1.astype(int), 255 - mono2.astype(int))


def test_preview_rgb_passthrough():
    data = sample("SC_rgb_rle.dcm")
    rgb = dcmread(BytesIO(data)).pixel_array
    image = decode_png(render_png(data))
    assert image.shape == (100, 100, 3)
    assert np.array_equal(image[..., ::-1], rgb)  # PNG via OpenCV is BGR


def test_preview_palette_color_is_expanded():
    image = decode_png(render_png(sample("examples_palette.dcm")))
    assert image.shape == (350, 800, 3)


def test_preview_multiframe_bounds():
    data = sample("examples_ybr_color.dcm")
    first, last = render_png(data, frame=0), render_png(data, frame=29)
    assert decode_png(last).shape == (240, 320, 3)
    assert first != last
    for bad in (-1, 30, 1.5):
        with pytest.raises(ClinicalError) as e:
            render_png(data, frame=bad)
        assert code_of(e) == "preview-frame"


@pytest.mark.parametrize("window", [(40, 0), (float("nan"), 100), ("a", "b"), (1, 2, 3)])
def test_preview_bad_window(window):
    with pytest.raises(ClinicalError) as e:
        render_png(sample("CT_small.dcm"), window=window)
    assert code_of(e) == "preview-window"


def test_preview_window_on_colour_is_refused():
    with pytest.raises(ClinicalError) as e:
        render_png(sample("SC_rgb_rle.dcm"), window=(128, 256))
    assert code_of(e) == "preview-window"


def test_preview_of_waveform_is_refused():
    with pytest.raises(ClinicalError) as e:
        render_png(sample("waveform_ecg.dcm"))
    assert code_of(e) == "dicom-no-pixels"


def test_preview_of_garbage_is_refused():
    with pytest.raises(ClinicalError):
        render_png(b"not dicom")


# --- deidentify ---------------------------------------------------------------------

PHI = ("PatientName", "PatientID", "PatientBirthDate")


@pytest.mark.parametrize("name", ["CT_small.dcm", "waveform_ecg.dcm", "examples_ybr_color.dcm"])
def test_deidentify_changes_phi_and_stays_valid(name):
    original = dcmread(BytesIO(sample(name)))
    original.PatientBirthDate = original.get("PatientBirthDate") or "19610704"
    out = deidentify(encode(original))
    obj = read_dicom(out)  # still passes strict intake, pixels/waveform included
    anon = obj.dataset
    for keyword in PHI:
        assert str(anon.get(keyword)) != str(original.get(keyword)), keyword
    assert anon.SOPInstanceUID != original.SOPInstanceUID
    assert anon.file_meta.MediaStorageSOPInstanceUID == anon.SOPInstanceUID
    assert "DICOGNITO" in str(anon.DeidentificationMethod)
    if obj.kind == "image":
        assert np.array_equal(anon.pixel_array, original.pixel_array)


def test_deidentifier_is_consistent_within_a_consult():
    deid = Deidentifier()
    a = dcmread(BytesIO(deid(sample("CT_small.dcm"))))
    b = dcmread(BytesIO(deid(sample("CT_small.dcm"))))
    c = dcmread(BytesIO(deidentify(sample("CT_small.dcm"))))
    assert a.PatientID == b.PatientID and a.StudyInstanceUID == b.StudyInstanceUID
    assert a.PatientID != c.PatientID


def test_deidentify_garbage_is_refused():
    with pytest.raises(ClinicalError) as e:
        deidentify(b"garbage")
    assert code_of(e) == "dicom-not-part10"
