"""The lab panel of the web client, fed real corpus results as the server reads them:
components, coded values with their codes, typed ranges, computed flags marked, and
the results a message carried that the server could not read."""

from __future__ import annotations

import pytest

from clinical.hl7v2 import parse_oru_r01
from clinical.labs import parse_fhir
from tests import conformance
from tests.clinical_peers import potassium

RENDER = """async (notices) => {
  const { LabPanel } = await import('/js/lab-panel.js');
  const container = document.createElement('div');
  document.body.append(container);
  const session = new EventTarget();
  const news = [];
  new LabPanel(container, session, { onNews: (text) => news.push(text) });
  for (const m of notices) session.dispatchEvent(new CustomEvent('data', { detail: m }));
  const rows = {};
  for (const tr of container.querySelectorAll('tbody tr')) {
    rows[tr.dataset.loinc] = {
      text: tr.innerText.replace(/\\s+/g, ' ').trim(),
      abnormal: tr.classList.contains('abnormal'),
      flag: tr.querySelector('.lab-flag').innerText.replace(/\\s+/g, ' ').trim(),
    };
  }
  const refused = [...container.querySelectorAll('[data-role="refused"] li')].map((li) => li.innerText);
  return { rows, refused, news };
}"""


def notice(seq: int, labs, source: str) -> dict:
    return {"type": "lab", "seq": seq, "source": source, "sender_name": "Lab",
            "results": [r.to_dict() for r in labs.results],
            "refused": [r.to_dict() for r in labs.refused]}


def fhir(name: str):
    return parse_fhir(conformance.read("fhir", name).decode())


@pytest.fixture
async def shown(server, people):
    page = await (await people("labs")).page(f"{server.url}/?role=viewer")
    notices = [
        notice(1, parse_fhir(potassium(6.2)), "fhir"),
        notice(2, fhir("observation-example-bloodpressure.json"), "fhir"),
        notice(3, fhir("observation-example-glasgow.json"), "fhir"),
        notice(4, fhir("observation-example-bloodgroup.json"), "fhir"),
        notice(5, parse_oru_r01(conformance.read("hl7", "LAB-ORU-1.hl7").decode("utf-8-sig")), "hl7v2"),
    ]
    return await page.evaluate(RENDER, notices)


async def test_computed_flag_is_marked(shown):
    k = shown["rows"]["2823-3"]
    assert k["abnormal"] and "6.2 mmol/L" in k["text"] and "3.5–5.1" in k["text"]
    assert k["flag"] == "High computed"


async def test_blood_pressure_shows_both_components_with_their_flags(shown):
    bp = shown["rows"]["85354-9"]
    assert "Systolic blood pressure 107 mm[Hg]" in bp["text"] and "Normal" in bp["text"]
    assert "Diastolic blood pressure 60 mm[Hg]" in bp["text"] and "Low" in bp["text"]
    assert bp["flag"] == "Low" and bp["abnormal"]  # the sender's flag, not marked computed


async def test_typed_ranges_listed_not_flagged(shown):
    gcs = shown["rows"]["9269-2"]
    assert gcs["flag"] == "—" and not gcs["abnormal"]
    assert "Severe TBI: ≤ 8; Moderate TBI: 9–12; Mild TBI: ≥ 13" in gcs["text"]


async def test_coded_value_with_its_codes(shown):
    group = shown["rows"]["883-9"]
    assert "A SNOMED 112144000" in group["text"]


async def test_pending_and_refused_results(shown):
    assert "pending" in shown["rows"]["11156-7"]["text"]
    assert len(shown["refused"]) == 2 and "OBX 2" in shown["refused"][0] and "tera.l-1" in shown["refused"][0]
    assert shown["news"][-1].endswith("; 2 not shown")
