"""PNG previews of shared DICOM objects for the HTTP API, rendered off the event loop.

Scrolling a multi-frame study asks for many frames of one object in a row, so the
last few parsed datasets are kept: a frame costs one decode, not a re-parse of the file.
An object just shared is kept from intake on (``prime``): its viewers' first frame does
not wait for the whole file to be decrypted and parsed again (about a second for 60 MB).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from pydicom.dataset import Dataset

from clinical.dicom_preview import render_png
from clinical.dicom_validate import load_dataset
from clinical.object_store import ObjectStore


class Previews:
    def __init__(self, objects: ObjectStore, keep: int = 4, parallel: int = 2) -> None:
        self._objects = objects
        self._keep = keep
        self._datasets: OrderedDict[str, Dataset] = OrderedDict()
        # Rendering is CPU work; bound it so previews cannot starve the media plane.
        self._slots = asyncio.Semaphore(parallel)

    async def png(self, sha256: str, frame: int, window: tuple[float, float] | None) -> bytes:
        """ClinicalError for a frame or window the object does not have."""
        async with self._slots:
            ds = self._datasets.get(sha256)
            if ds is None:
                ds = await asyncio.to_thread(self._load, sha256)
            self.prime(sha256, ds)
            return await asyncio.to_thread(render_png, ds, frame, window)

    def prime(self, sha256: str, ds: Dataset) -> None:
        """Keep ``ds``, the parsed object stored under ``sha256``, as the most recent."""
        self._datasets[sha256] = ds
        self._datasets.move_to_end(sha256)
        while len(self._datasets) > self._keep:
            self._datasets.popitem(last=False)

    def _load(self, sha256: str) -> Dataset:
        return load_dataset(self._objects.get(sha256))
