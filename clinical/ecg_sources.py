"""ECG sample sources for devices and tests: a synthetic generator, DICOM waveforms, WFDB records.

Everything comes out as int16 arrays of shape (samples, leads), sample-major like the
wire frames in ``clinical.ecg``, with the amplitude of one unit in microvolts.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
from pydicom.dataset import Dataset

from clinical.ecg import LEAD_COUNTS, STANDARD_LEADS, EcgAnnounce, iter_frames
from clinical.errors import ClinicalError, library_errors

_MICROVOLTS = {"uV": 1.0, "µV": 1.0, "mV": 1000.0, "V": 1e6}


@dataclass(frozen=True)
class EcgRecording:
    leads: tuple[str, ...]
    sample_rate: int
    samples: np.ndarray = field(repr=False)  # int16, (samples, leads)
    uv_per_lsb: float = 1.0

    def pick(self, *names: str) -> EcgRecording:
        """The same recording restricted to ``names``, e.g. one lead of a 2-lead Holter."""
        missing = [n for n in names if n not in self.leads]
        if missing:
            raise ClinicalError("ecg-source", f"no lead(s) {missing} in {list(self.leads)}")
        columns = [self.leads.index(n) for n in names]
        return replace(self, leads=tuple(names), samples=self.samples[:, columns])

    def announce(self, stream_id: int) -> EcgAnnounce:
        return EcgAnnounce(stream_id, self.leads, self.sample_rate, self.uv_per_lsb)

    def frames(self, stream_id: int, samples_per_frame: int) -> Iterator[bytes]:
        return iter_frames(stream_id, self.sample_rate, self.samples, samples_per_frame)


# Wave amplitudes (uV) for P, Q, R, S, T. Limb leads III, aVR, aVL and aVF are derived
# from I and II (Einthoven and Goldberger), so the synthetic 12-lead is self-consistent.
_WAVES: dict[str, tuple[float, float, float, float, float]] = {
    "I": (80, -50, 700, -100, 200),
    "II": (150, -80, 1100, -200, 300),
    "V1": (60, 0, 250, -900, 100),
    "V2": (70, 0, 500, -1200, 350),
    "V3": (70, 0, 900, -800, 400),
    "V4": (80, -50, 1400, -500, 400),
    "V5": (80, -80, 1300, -250, 300),
    "V6": (80, -80, 1000, -100, 250),
}
# Centre (s from the R peak, at 60 bpm) and width (s) of each wave.
_TIMING = ((-0.16, 0.025), (-0.03, 0.008), (0.0, 0.01), (0.03, 0.01), (0.28, 0.05))


def synthetic_ecg(
    leads: int, sample_rate: int, seconds: float, heart_rate: float = 72.0
) -> np.ndarray:
    """Deterministic PQRST-like waveform, int16 in microvolts (1 uV per unit).

    Lead order follows ``STANDARD_LEADS`` (1 lead: II; 3: I, II, III; 12: the standard set).
    """
    if leads not in LEAD_COUNTS:
        raise ClinicalError("ecg-source", f"leads must be one of {sorted(LEAD_COUNTS)}")
    if sample_rate < 1 or not 0 < seconds <= 3600 or not 30 <= heart_rate <= 200:
        raise ClinicalError(
            "ecg-source", "need sample_rate >= 1, 0 < seconds <= 3600, 30 <= heart_rate <= 200"
        )
    rr = 60.0 / heart_rate
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    # Time from the nearest R peak; the first R peak sits late enough to show its P wave.
    rel = (t - 0.3 + rr / 2) % rr - rr / 2
    # P-R and Q-T intervals shorten with rate (Bazett's square root law).
    stretch = math.sqrt(rr)

    def lead(name: str) -> np.ndarray:
        out = np.zeros_like(t)
        for amp, (centre, width) in zip(_WAVES[name], _TIMING, strict=True):
            scale = stretch if centre else 1.0  # QRS width barely changes with rate
            for shift in (-rr, 0.0, rr):  # neighbouring beats' tails
                out += amp * np.exp(-0.5 * ((rel + shift - centre * scale) / (width * scale)) ** 2)
        return out

    wander = 30.0 * np.sin(2 * np.pi * 0.25 * t)  # breathing
    i, ii = lead("I") + wander, lead("II") + 0.5 * wander
    derived = {
        "I": i,
        "II": ii,
        "III": ii - i,
        "aVR": -(i + ii) / 2,
        "aVL": i - ii / 2,
        "aVF": ii - i / 2,
    }
    columns = [derived[n] if n in derived else lead(n) + wander for n in STANDARD_LEADS[leads]]
    return np.rint(np.stack(columns, axis=1)).astype(np.int16)


def ecg_from_dicom_waveform(dataset: Dataset, group: int = 0) -> EcgRecording:
    """One multiplex group (default the first, usually the rhythm strip) of a DICOM waveform."""
    with library_errors("ecg-source", "unreadable DICOM waveform"):
        groups = dataset.get("WaveformSequence") or []
        if not 0 <= group < len(groups):
            raise ClinicalError("ecg-source", f"waveform group {group} not in 0..{len(groups) - 1}")
        item = groups[group]
        channels = item.ChannelDefinitionSequence
        names = tuple(_dicom_lead_name(ch) for ch in channels)
        factors = [
            _MICROVOLTS.get(str(ch.ChannelSensitivityUnitsSequence[0].CodeValue)) for ch in channels
        ]
        if None in factors:
            raise ClinicalError("ecg-source", "channel sensitivity units must be uV, mV or V")
        resolution = min(
            abs(
                float(ch.get("ChannelSensitivity", 1.0))
                * float(ch.get("ChannelSensitivityCorrectionFactor", 1.0))
            )
            * f
            for ch, f in zip(channels, factors, strict=True)
        )
        microvolts = dataset.waveform_array(group) * np.asarray(factors)
        rate = _integral_rate(float(item.SamplingFrequency))
    return EcgRecording(names, rate, _quantize(microvolts, resolution), resolution)


def ecg_from_wfdb(record_path: str | os.PathLike[str]) -> EcgRecording:
    """A local WFDB record (``.hea`` + signal files), path given without extension."""
    import wfdb  # heavy import, only the device client and tests need it

    with library_errors("ecg-source", "unreadable WFDB record"):
        record = wfdb.rdrecord(os.fspath(record_path))
        factors = [_MICROVOLTS.get(unit) for unit in record.units]
        if None in factors:
            raise ClinicalError("ecg-source", f"units {record.units} are not uV, mV or V")
        physical = record.p_signal
        if np.isnan(physical).any():
            raise ClinicalError("ecg-source", "record has missing samples")
        resolution = min(f / float(g) for f, g in zip(factors, record.adc_gain, strict=True))
        rate = _integral_rate(float(record.fs))
    return EcgRecording(
        tuple(record.sig_name),
        rate,
        _quantize(physical * np.asarray(factors), resolution),
        resolution,
    )


def _dicom_lead_name(channel: Dataset) -> str:
    # "Lead I (Einthoven)" -> "I", "Lead aVR" -> "aVR"
    meaning = str(channel.ChannelSourceSequence[0].CodeMeaning)
    name = re.sub(r"\s*\(.*\)$", "", meaning).removeprefix("Lead ").strip()
    return name.replace(" ", "_")


def _integral_rate(fs: float) -> int:
    if fs <= 0 or fs != int(fs):
        raise ClinicalError("ecg-source", f"sampling frequency {fs} Hz is not a positive integer")
    return int(fs)


def _quantize(microvolts: np.ndarray, uv_per_lsb: float) -> np.ndarray:
    if uv_per_lsb <= 0:
        raise ClinicalError("ecg-source", "channel resolution must be positive")
    units = np.rint(microvolts / uv_per_lsb)
    if units.size and (units.min() < -32768 or units.max() > 32767):
        raise ClinicalError("ecg-source", "signal exceeds int16 at its native resolution")
    return units.astype(np.int16)
