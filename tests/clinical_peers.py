"""Helpers for the clinical-session tests: peers with clinical channels, and the data
they share (pydicom's bundled files and synthesized results; nothing downloaded)."""

from __future__ import annotations

import asyncio
from io import BytesIO

import numpy as np
from pydicom import dcmread
from pydicom.data import get_testdata_file

from telemed_client import Client
from telemed_client.clinical import CHANNELS, Clinical

PASSWORD = "pw-123456"


async def join(server, room: str, name: str, role: str = "participant") -> Clinical:
    token = await server.token(room, PASSWORD, role=role, name=name)
    return await Clinical.open(await Client.join(server.url, token, channels=CHANNELS))


async def close(*peers: Clinical) -> None:
    await asyncio.gather(*(p.client.close() for p in peers), return_exceptions=True)


def bundled(name: str) -> bytes:
    with open(get_testdata_file(name), "rb") as f:
        return f.read()


def multiframe_ct(frames: int = 16, size: int = 512) -> bytes:
    """pydicom's CT_small (patient name and all) grown to ``frames`` 512x512 frames:
    8 MiB of pixels with the defaults. Each frame is a disc of a different radius."""
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    y, x = np.mgrid[0:size, 0:size] - size // 2
    noise = np.random.default_rng(4).integers(0, 50, size=(size, size))
    stack = np.stack([(x**2 + y**2 < (40 + 12 * k) ** 2) * 1000 + noise for k in range(frames)])
    ds.set_pixel_data(stack.astype(np.int16), "MONOCHROME2", 16)
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def potassium(value: float = 6.2, patient: str = "Patient/p1") -> dict:
    """A FHIR R4 Observation: serum potassium, LOINC 2823-3, flagged high by its range."""
    mmol = {"unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}
    return {
        "resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3", "display": "Potassium"}]},
        "subject": {"reference": patient},
        "effectiveDateTime": "2024-05-01T10:00:00Z",
        "valueQuantity": {"value": value, **mmol},
        "referenceRange": [{"low": {"value": 3.5, **mmol}, "high": {"value": 5.1, **mmol}}],
    }


def oru_r01(with_obr: bool = True, control_id: str = "MSG0001") -> str:
    """An HL7 v2.5 ORU^R01 with one numeric LOINC result (haemoglobin)."""
    segments = [
        f"MSH|^~\\&|LAB|COUNTY|TELEMED|CONSULT|20240501101500||ORU^R01|{control_id}|P|2.5",
        "PID|1||MRN123^^^COUNTY^MR||DOE^JANE",
        "OBR|1|ORD1|FIL1|58410-2^CBC panel^LN|||20240501100000",
        "OBX|1|NM|718-7^Hemoglobin^LN||9.1|g/dL^^UCUM|12.0-16.0|L|||F",
    ]
    if not with_obr:
        del segments[2]
    return "\r".join(segments) + "\r"
