"""The preview cache: an object just shared is rendered from the dataset intake parsed,
without decrypting and parsing the stored file again; others are loaded once."""

from __future__ import annotations

import shutil

import pytest

from clinical.dicom_validate import read_dicom
from clinical.errors import ClinicalError
from clinical.object_store import ObjectStore
from conference.dicom_previews import Previews
from tests import conformance
from vault import KeyRing

RING = KeyRing(bytes(range(32)))


async def test_a_primed_object_renders_without_reading_the_store(tmp_path):
    data = conformance.read("dicom", "HasFragmentSequence.dcm")  # 96 frames, JPEG Baseline
    store = ObjectStore(tmp_path / "objects", RING)
    key = store.put(data)
    previews = Previews(store)
    previews.prime(key, read_dicom(data).dataset)
    shutil.rmtree(tmp_path / "objects")  # nothing left to read: only the primed dataset
    for frame in (0, 95):
        assert (await previews.png(key, frame, None)).startswith(b"\x89PNG")


async def test_unprimed_objects_are_loaded_and_the_oldest_dropped(tmp_path):
    store = ObjectStore(tmp_path / "objects", RING)
    keys = [store.put(conformance.read("dicom", name)) for name in ("CT1_UNC.dcm", "vlut_04.dcm")]
    previews = Previews(store, keep=1)
    for key in keys:
        assert (await previews.png(key, 0, None)).startswith(b"\x89PNG")
    shutil.rmtree(tmp_path / "objects")
    assert (await previews.png(keys[1], 0, None)).startswith(b"\x89PNG")  # kept
    with pytest.raises(ClinicalError):
        await previews.png(keys[0], 0, None)  # dropped, and its file is gone


def test_enhanced_frames_take_their_window_from_the_functional_groups():
    """Shared functional groups set the window of every frame; a per-frame group
    overrides it for its own frame."""
    from io import BytesIO

    import cv2
    import numpy as np
    from pydicom import dcmread
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from clinical.dicom_preview import frame_view, render_png

    ds = dcmread(BytesIO(conformance.read("dicom", "emri_small.dcm")))

    def voi(center: float, width: float) -> Dataset:
        item, group = Dataset(), Dataset()
        item.WindowCenter, item.WindowWidth = center, width
        group.FrameVOILUTSequence = Sequence([item])
        return group

    ds.SharedFunctionalGroupsSequence = Sequence([voi(100, 50)])
    ds.PerFrameFunctionalGroupsSequence = Sequence([Dataset() for _ in range(ds.NumberOfFrames)])
    ds.PerFrameFunctionalGroupsSequence[1] = voi(5000, 10000)
    assert (frame_view(ds, 0).WindowCenter, frame_view(ds, 1).WindowCenter) == (100, 5000)
    narrow = cv2.imdecode(np.frombuffer(render_png(ds, 1), np.uint8), cv2.IMREAD_UNCHANGED)
    del ds.PerFrameFunctionalGroupsSequence[1].FrameVOILUTSequence
    shared = cv2.imdecode(np.frombuffer(render_png(ds, 1), np.uint8), cv2.IMREAD_UNCHANGED)
    assert narrow.shape == shared.shape and not np.array_equal(narrow, shared)
