"""A throwaway real Orthanc PACS (Debian's, with its DICOMweb plugin) holding one study,
and a server configured to pull from it: ``orthanc`` and ``pacs_server`` fixtures."""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
import pytest_asyncio
from pydicom import dcmread

from tests.clinical_peers import bundled
from tests.processes import serving
from tests.server import free_port, start_server

ORTHANC = Path("/usr/sbin/Orthanc")  # Debian orthanc
PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")  # Debian orthanc-dicomweb
PACS_USER, PACS_PASSWORD = "telemed", "pacs-secret-pw"
STUDY_UID = "1.2.826.0.1.3680043.8.498.4242"
# CT and MR (one slice each), a two-frame RLE secondary capture, and an RT Dose that the
# allow-list refuses: one patient, one study, four series.
FILES = ("CT_small.dcm", "MR_small.dcm", "SC_rgb_rle_2frame.dcm", "rtdose.dcm")


class Orthanc:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.dicomweb = f"{self.url}/dicom-web"
        self.files: dict[str, bytes] = {}  # SOP Instance UID -> the file Orthanc stores
        self.series: dict[str, tuple[str, str]] = {}  # file name -> (series UID, instance UID)

    def request(self, path: str, data: bytes | None = None) -> bytes:
        auth = base64.b64encode(f"{PACS_USER}:{PACS_PASSWORD}".encode()).decode()
        request = urllib.request.Request(self.url + path, data=data, headers={"Authorization": f"Basic {auth}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.read()

    def answers(self) -> bool:
        try:
            self.request("/system")
            return True
        except OSError:
            return False

    def store(self, name: str) -> None:
        ds = dcmread(BytesIO(bundled(name)))
        ds.StudyInstanceUID, ds.PatientID, ds.PatientName = STUDY_UID, "PACS-0001", "Doe^Jane"
        out = BytesIO()
        ds.save_as(out, enforce_file_format=True)
        instance = json.loads(self.request("/instances", out.getvalue()))["ID"]
        self.files[ds.SOPInstanceUID] = self.request(f"/instances/{instance}/file")
        self.series[name] = (ds.SeriesInstanceUID, ds.SOPInstanceUID)


# One per test run: tests only read from it, and starting it takes a while.
@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    if not ORTHANC.exists() or not PLUGIN.exists():
        pytest.fail("Orthanc with its DICOMweb plugin is not installed: run scripts/bootstrap.sh")
    workdir = tmp_path_factory.mktemp("orthanc")
    port = free_port()
    (workdir / "orthanc.json").write_text(json.dumps({
        "Name": "telemed-test", "HttpPort": port, "StorageDirectory": str(workdir / "db"),
        "IndexDirectory": str(workdir / "db"), "DicomServerEnabled": False, "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True, "RegisteredUsers": {PACS_USER: PACS_PASSWORD}, "SaveJobs": False,
        "HttpThreadsCount": 4, "Plugins": [str(PLUGIN)], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }))
    pacs = Orthanc(port)
    with serving("Orthanc", [str(ORTHANC), "--no-jobs", str(workdir / "orthanc.json")],
                 workdir / "orthanc.log", pacs.answers, cwd=workdir):
        for name in FILES:
            pacs.store(name)
        yield pacs


@pytest_asyncio.fixture
async def pacs_server(tmp_path, orthanc):
    running, runner = await start_server(str(tmp_path / "data"), pacs_url=orthanc.dicomweb,
                                         pacs_username=PACS_USER, pacs_password=PACS_PASSWORD)
    yield running
    await runner.cleanup()
