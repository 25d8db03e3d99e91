"""Clinical data: DICOM, ECG and lab messages, their validation, and the session log.

Transport-independent: nothing here imports aiortc, aiohttp or another package of ours.
"""

from clinical.errors import ClinicalError

__all__ = ["ClinicalError"]
