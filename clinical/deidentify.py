"""De-identification of DICOM objects with dicognito, keeping them valid Part 10 files.

dicognito replaces names, IDs, dates (shifted consistently), addresses and UIDs with
plausible pseudonyms. It cannot scrub text burned into the pixels, which is why
intake refuses ``BurnedInAnnotation == "YES"`` by default.
"""

from __future__ import annotations

from io import BytesIO

from dicognito.anonymizer import Anonymizer

from clinical.dicom_validate import load_dataset, quiet_warnings
from clinical.errors import library_errors


class Deidentifier:
    """Keep one per consult: objects of the same patient or study get the same pseudonyms.

    ``seed`` makes the mapping reproducible; leave it ``None`` (random) unless the
    seed is kept as secret as the identities themselves.
    """

    def __init__(self, seed: str | None = None) -> None:
        self._anonymizer = Anonymizer(seed=seed)

    def __call__(self, data: bytes) -> bytes:
        ds = load_dataset(data)
        with library_errors("dicom-deidentify", "de-identification failed"), quiet_warnings():
            self._anonymizer.anonymize(ds)
            out = BytesIO()
            ds.save_as(out, enforce_file_format=True)
        return out.getvalue()


def deidentify(data: bytes, seed: str | None = None) -> bytes:
    """De-identify one object with a fresh pseudonym mapping."""
    return Deidentifier(seed)(data)
