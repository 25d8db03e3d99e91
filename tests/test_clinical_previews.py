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
