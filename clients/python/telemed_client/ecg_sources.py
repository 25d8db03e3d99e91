"""Where a device's ECG comes from: a synthetic heart, a DICOM 12-lead waveform file,
or a WFDB record. Each gives an ``EcgSignal``: int16 samples shaped (samples, leads)."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

import numpy as np

LEAD_SETS: dict[int, tuple[str, ...]] = {
    1: ("II",),
    3: ("I", "II", "III"),
    12: ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"),
}
_TO_MICROVOLTS = {"uV": 1.0, "µV": 1.0, "mV": 1000.0, "V": 1e6}


@dataclass(frozen=True)
class EcgSignal:
    leads: tuple[str, ...]
    sample_rate: int
    samples: np.ndarray  # int16, (samples, leads)
    uv_per_lsb: float = 1.0

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate

    def fitted(self) -> EcgSignal:
        """The first 1, 3 or 12 leads, as the server takes them: MIT-BIH's MLII of its
        two, PTB's 12 standard leads of its 15."""
        count = max(n for n in LEAD_SETS if n <= len(self.leads))
        return self if count == len(self.leads) else self.select(*self.leads[:count])

    def select(self, *names: str, seconds: float | None = None) -> EcgSignal:
        """The named leads (the server takes 1, 3 or 12), optionally only the first
        ``seconds``; samples are kept as they are."""
        columns = [self.leads.index(name) for name in names]
        end = None if seconds is None else round(seconds * self.sample_rate)
        return EcgSignal(tuple(names), self.sample_rate, self.samples[:end, columns], self.uv_per_lsb)


def synthetic(leads: int = 12, sample_rate: int = 500, seconds: float = 10.0,
              bpm: float = 75.0) -> EcgSignal:
    """A plausible sinus rhythm in microvolts, the same every time (for tests)."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    period = 60.0 / bpm
    phase = t % period  # seconds since the start of the current beat

    def wave(centre: float, width: float, height: float) -> np.ndarray:
        return height * np.exp(-(((phase - centre) / width) ** 2))

    # The heart as two patterns seen from different angles: an upright one (P, R, T)
    # and the late negative S. Each lead weighs them differently.
    upright = wave(0.10, 0.025, 120) + wave(0.30, 0.012, 1000) + wave(0.58, 0.05, 250)
    late = wave(0.33, 0.012, -300)
    breathing = 40 * np.sin(2 * math.pi * 0.2 * t)
    lead_i = 0.6 * upright + 0.5 * late + breathing
    lead_ii = 1.0 * upright + 0.7 * late + breathing
    limb = {
        "I": lead_i, "II": lead_ii, "III": lead_ii - lead_i,
        "aVR": -(lead_i + lead_ii) / 2, "aVL": lead_i - lead_ii / 2, "aVF": lead_ii - lead_i / 2,
    }
    chest = {f"V{k}": (0.2 * k) * upright + (2.2 - 0.35 * k) * late + breathing for k in range(1, 7)}
    names = LEAD_SETS[leads]
    columns = [limb.get(name, chest.get(name)) for name in names]
    return EcgSignal(names, sample_rate, np.rint(np.stack(columns, axis=1)).astype(np.int16))


def from_dicom_waveform(path: str | os.PathLike[str], group: int = 0) -> EcgSignal:
    """One multiplex group of a DICOM waveform file (group 0 is usually the rhythm strip).

    The stored samples are sent as they are, with their sensitivity as ``uv_per_lsb``,
    when all channels share one sensitivity and no baseline: the receiver then gets
    exactly what the cart recorded. Otherwise they are re-quantized in microvolts.
    """
    from pydicom import dcmread
    from pydicom.waveforms.numpy_handler import multiplex_array

    ds = dcmread(path)
    item = ds.WaveformSequence[group]
    channels = item.ChannelDefinitionSequence
    names = tuple(_lead_name(str(ch.ChannelSourceSequence[0].CodeMeaning)) for ch in channels)
    scale = np.array([_TO_MICROVOLTS[str(ch.ChannelSensitivityUnitsSequence[0].CodeValue)]
                      * float(ch.get("ChannelSensitivity", 1) or 1)
                      * float(ch.get("ChannelSensitivityCorrectionFactor", 1) or 1) for ch in channels])
    baseline = np.array([float(ch.get("ChannelBaseline", 0) or 0) for ch in channels])
    rate = _integral(float(item.SamplingFrequency))
    raw = multiplex_array(ds, group, as_raw=True)
    if _exact(raw, scale) and not baseline.any():
        return EcgSignal(names, rate, raw.astype(np.int16), float(scale[0]))
    return _quantized(names, rate, (raw + baseline) * scale)


def from_wfdb(record: str | os.PathLike[str]) -> EcgSignal:
    """A local WFDB record, path without extension (needs the ``wfdb`` package).

    The ADC samples less the ADC baseline are sent as they are, ``uv_per_lsb`` being one
    ADC step (5 uV for MIT-BIH's 200/mV, 0.5 uV for PTB's 2000/mV), when all channels
    share one gain and unit: exactly the record's numbers reach the receiver.
    """
    import wfdb

    rec = wfdb.rdrecord(os.fspath(record), physical=False)
    scale = np.array([_TO_MICROVOLTS[unit] / gain for unit, gain in zip(rec.units, rec.adc_gain, strict=True)])
    adc = rec.d_signal - np.array(rec.baseline)
    rate = _integral(float(rec.fs))
    if _exact(adc, scale):
        return EcgSignal(tuple(rec.sig_name), rate, adc.astype(np.int16), float(scale[0]))
    return _quantized(tuple(rec.sig_name), rate, adc * scale)


def _exact(samples: np.ndarray, scale: np.ndarray) -> bool:
    """Whether ``samples`` can go on the wire unchanged: one scale, int16 range."""
    return bool(samples.size and np.all(scale == scale[0]) and np.abs(samples).max() <= 32767)


def _quantized(leads: tuple[str, ...], rate: int, microvolts: np.ndarray) -> EcgSignal:
    # 1 uV per unit when it fits in int16 (+-32 mV, any real ECG); coarser otherwise.
    peak = float(np.max(np.abs(microvolts))) if microvolts.size else 0.0
    lsb = max(1.0, math.ceil(peak / 32767))
    return EcgSignal(leads, rate, np.rint(microvolts / lsb).astype(np.int16), lsb)


def _lead_name(meaning: str) -> str:
    # "Lead I (Einthoven)" -> "I"
    return re.sub(r"\s*\(.*\)$", "", meaning).removeprefix("Lead ").strip().replace(" ", "_")


def _integral(rate: float) -> int:
    if rate != int(rate):
        raise ValueError(f"sampling rate {rate} Hz is not a whole number")
    return int(rate)
