"""The real-world conformance corpus (../shared/conformance/clinical, see its SOURCES.md),
every file of it: accepted or refused with the right code, and what is read spot-checked
against the numbers in the source files. DICOM and HL7 follow the corpus' manifest.json;
FHIR (which the manifest leaves to the scope rules) follows EXPECTED_FHIR below."""

from __future__ import annotations

import asyncio
import copy
import json

import numpy as np
import pytest
import wfdb

from clinical.dicom_preview import render_png
from clinical.dicom_validate import read_dicom
from clinical.errors import ClinicalError
from clinical.hl7v2 import UnreadableResults, nack_for, parse_oru_r01
from clinical.labs import parse_fhir
from tests import conformance

# file -> (results shared, results refused alone) or the code the whole file is refused with.
# Scope: results coded in LOINC, numeric (UCUM) or shown as text; not cancelled or
# entered-in-error; "unknown" status and panels without a value of their own are refused.
EXPECTED_FHIR: dict[str, tuple[int, int] | str] = {
    "bundle-example.json": "lab-no-results",
    "bundle-references.json": "lab-value",
    "bundle-request-medsallergies.json": "lab-no-results",
    "bundle-request-simplesummary.json": "lab-no-results",
    "bundle-response-medsallergies.json": "lab-no-results",
    "bundle-response-simplesummary.json": "lab-no-results",
    "bundle-response.json": "lab-no-results",
    "bundle-search-warning.json": "lab-no-results",
    "bundle-transaction.json": "lab-no-results",
    "diagnosticreport-example-dxa.json": "fhir-reference",
    "diagnosticreport-example-f001-bloodexam.json": "fhir-reference",
    "diagnosticreport-example-f201-brainct.json": "lab-no-results",
    "diagnosticreport-example-f202-bloodculture.json": "fhir-reference",
    "diagnosticreport-example-ghp.json": (20, 31),
    "diagnosticreport-example-lipids.json": (4, 0),
    "diagnosticreport-example-lri.json": (16, 0),
    "diagnosticreport-example-papsmear.json": "lab-no-results",
    "diagnosticreport-example-pgx.json": "fhir-reference",
    "diagnosticreport-example-ultrasound.json": "lab-no-results",
    "diagnosticreport-example.json": (16, 1),
    "observation-example-10minute-apgar-score.json": (1, 0),
    "observation-example-1minute-apgar-score.json": (1, 0),
    "observation-example-20minute-apgar-score.json": "lab-loinc",
    "observation-example-2minute-apgar-score.json": "lab-loinc",
    "observation-example-5minute-apgar-score.json": (1, 0),
    "observation-example-TPMT-diplotype.json": "lab-loinc",
    "observation-example-TPMT-haplotype-one.json": "lab-status",
    "observation-example-TPMT-haplotype-two.json": "lab-status",
    "observation-example-abdo-tender.json": "lab-loinc",
    "observation-example-alcohol-type.json": "lab-loinc",
    "observation-example-bgpanel.json": "lab-value",
    "observation-example-bloodgroup.json": (1, 0),
    "observation-example-bloodpressure-cancel.json": "lab-status",
    "observation-example-bloodpressure-dar.json": (1, 0),
    "observation-example-bloodpressure.json": (1, 0),
    "observation-example-bmd.json": "lab-unit",
    "observation-example-bmi-using-related.json": (1, 0),
    "observation-example-bmi.json": (1, 0),
    "observation-example-body-height.json": (1, 0),
    "observation-example-body-length.json": (1, 0),
    "observation-example-body-temperature.json": (1, 0),
    "observation-example-clinical-gender.json": (1, 0),
    "observation-example-date-lastmp.json": (1, 0),
    "observation-example-diplotype1.json": "lab-loinc",
    "observation-example-eye-color.json": "lab-loinc",
    "observation-example-f001-glucose.json": (1, 0),
    "observation-example-f002-excess.json": (1, 0),
    "observation-example-f003-co2.json": (1, 0),
    "observation-example-f004-erythrocyte.json": (1, 0),
    "observation-example-f005-hemoglobin.json": (1, 0),
    "observation-example-f202-temperature.json": "lab-status",
    "observation-example-f203-bicarbonate.json": "lab-unit",
    "observation-example-f204-creatinine.json": "lab-loinc",
    "observation-example-f205-egfr.json": (1, 0),
    "observation-example-f206-staphylococcus.json": (1, 0),
    "observation-example-genetics-1.json": (1, 0),
    "observation-example-genetics-2.json": (1, 0),
    "observation-example-genetics-3.json": "lab-loinc",
    "observation-example-genetics-4.json": "lab-loinc",
    "observation-example-genetics-5.json": "lab-loinc",
    "observation-example-genetics-brcapat.json": "lab-value",
    "observation-example-glasgow-qa.json": (1, 0),
    "observation-example-glasgow.json": (1, 0),
    "observation-example-haplotype1.json": "lab-status",
    "observation-example-haplotype2.json": "lab-status",
    "observation-example-head-circumference.json": (1, 0),
    "observation-example-heart-rate.json": (1, 0),
    "observation-example-herd1.json": (1, 0),
    "observation-example-map-sitting.json": (1, 0),
    "observation-example-mbp.json": (1, 0),
    "observation-example-phenotype.json": (1, 0),
    "observation-example-respiratory-rate.json": (1, 0),
    "observation-example-rhstatus.json": (1, 0),
    "observation-example-sample-data.json": "lab-loinc",
    "observation-example-satO2.json": (1, 0),
    "observation-example-secondsmoke.json": (1, 0),
    "observation-example-spirometry.json": "lab-loinc",
    "observation-example-trachcare.json": "lab-loinc",
    "observation-example-unsat.json": "lab-status",
    "observation-example-vitals-panel.json": "lab-value",
    "observation-example-vomiting.json": (1, 0),
    "observation-example-vp-oyster.json": (1, 0),
    "observation-example.json": (1, 0),
}


def fhir(name: str):
    return parse_fhir(conformance.read("fhir", name).decode())


def hl7_text(name: str) -> str:
    return conformance.read("hl7", name).decode("utf-8-sig")  # the sender strips the BOM


def by_loinc(results) -> dict:
    return {r.loinc: r for r in results}


# --- FHIR -------------------------------------------------------------------------------------


def test_every_fhir_file_has_an_expectation():
    assert sorted(EXPECTED_FHIR) == conformance.files("fhir", ".json")


@pytest.mark.parametrize("name", conformance.files("fhir", ".json"))
def test_fhir_file(name):
    expected = EXPECTED_FHIR[name]
    if isinstance(expected, str):
        with pytest.raises(ClinicalError) as e:
            fhir(name)
        assert e.value.code == expected
        return
    labs = fhir(name)
    assert (len(labs.results), len(labs.refused)) == expected
    for result in labs.results:
        json.dumps(result.to_dict())  # what goes into the notice
        assert result.value is not None or result.text or result.components


def test_glasgow_typed_ranges_are_shown_not_flagged():
    for name in ("observation-example-glasgow.json", "observation-example-glasgow-qa.json"):
        [r] = fhir(name).results
        assert (r.loinc, r.value, r.unit) == ("9269-2", 13.0, "{score}")
        assert (r.interpretation, r.abnormal, r.interpretation_source) == (None, None, None)
        assert [(g.type, g.low, g.high) for g in r.ranges] == [
            ("Severe TBI", None, 8.0), ("Moderate TBI", 9.0, 12.0), ("Mild TBI", 13.0, None)]
    [r] = fhir("observation-example-glasgow.json").results
    motor = by_loinc(r.components)["9268-4"]
    assert motor.value_type == "coded" and motor.text == "5 (Localizes painful stimuli)"
    assert {"system": "http://loinc.org", "code": "LA6566-9", "display": "Localizing pain"} in motor.codes


def test_blood_pressure_components_with_their_own_flags():
    [bp] = fhir("observation-example-bloodpressure.json").results
    assert bp.value_type == "none" and (bp.interpretation, bp.interpretation_source) == ("L", "sender")
    systolic, diastolic = by_loinc(bp.components)["8480-6"], by_loinc(bp.components)["8462-4"]
    assert (systolic.value, systolic.unit, systolic.interpretation, systolic.abnormal) == (107.0, "mm[Hg]", "N", False)
    assert (diastolic.value, diastolic.unit, diastolic.interpretation, diastolic.abnormal) == (60.0, "mm[Hg]", "L", True)
    [dar] = fhir("observation-example-bloodpressure-dar.json").results
    assert by_loinc(dar.components)["8462-4"].value_type == "absent"  # not measured, shown as such


def test_egfr_components_and_comparator():
    [r] = fhir("observation-example-f205-egfr.json").results
    black, other = by_loinc(r.components)["48643-1"], by_loinc(r.components)["48642-3"]
    assert (black.comparator, black.value, black.unit, black.abnormal) == (">", 60.0, "mL/min/{1.73_m2}", None)
    assert (other.value, other.ref_low, other.interpretation, other.interpretation_source) == (60.0, 60.0, "N", "computed")


def test_non_numeric_results_are_text_with_codes():
    [herd] = fhir("observation-example-herd1.json").results
    assert (herd.value, herd.unit, herd.interpretation, herd.abnormal) == (0.2, "%", "NEG", False)
    [group] = fhir("observation-example-bloodgroup.json").results
    assert (group.value_type, group.text, group.value) == ("coded", "A", None)
    assert group.codes == [{"system": "http://snomed.info/sct", "code": "112144000",
                            "display": "Blood group A (finding)"}]
    [staph] = fhir("observation-example-f206-staphylococcus.json").results
    assert staph.text == "Staphylococcus aureus" and (staph.interpretation, staph.abnormal) == ("POS", True)
    [lmp] = fhir("observation-example-date-lastmp.json").results
    assert (lmp.value_type, lmp.text) == ("datetime", "2016-12-30")


def test_numeric_values_and_sender_flags():
    [glucose] = fhir("observation-example-f001-glucose.json").results
    assert (glucose.loinc, glucose.value, glucose.unit) == ("15074-8", 6.3, "mmol/L")
    assert (glucose.ref_low, glucose.ref_high, glucose.interpretation, glucose.interpretation_source) == (
        3.1, 6.2, "H", "sender")
    assert glucose.effective.startswith("2013-04-02T09:30:10")


def test_computed_flags_are_marked_computed():
    results = by_loinc(fhir("diagnosticreport-example-lipids.json").results)
    cholesterol, hdl = results["35200-5"], results["2085-9"]
    assert (cholesterol.value, cholesterol.ref_high, cholesterol.interpretation) == (6.3, 4.5, "H")
    assert (hdl.value, hdl.ref_low, hdl.interpretation) == (1.3, 1.5, "L")
    assert {r.interpretation_source for r in results.values()} == {"computed"}
    assert all(r.patient == "Patient/pat2" for r in results.values())


def test_cbc_report_refuses_only_the_result_without_ucum():
    labs = fhir("diagnosticreport-example.json")
    assert len(labs.results) == 16
    [refused] = labs.refused
    assert (refused.where, refused.code) == ("Observation/r3", "lab-unit")
    hb = by_loinc(labs.results)["718-7"]
    assert (hb.value, hb.unit, hb.ref_low, hb.ref_high) == (176.0, "g/L", 135.0, 180.0)


def test_invalid_ucum_in_an_official_example_is_refused():
    with pytest.raises(ClinicalError) as e:
        fhir("observation-example-bmd.json")  # "g/cm-2": g per cm^-2, a typo for g/cm2
    assert e.value.code == "lab-unit"


def _glucose() -> dict:
    return json.loads(conformance.read("fhir", "observation-example-f001-glucose.json"))


@pytest.mark.parametrize("edit,path", [
    (lambda o: o.update(effectivePeriod={"start": 20130402}), "Observation.effectivePeriod.start"),
    (lambda o: o["valueQuantity"].update(value="6.3"), "Observation.valueQuantity.value"),
    (lambda o: o["referenceRange"][0]["low"].update(value="3.1"), "Observation.referenceRange[0].low.value"),
    (lambda o: o.update(status=1), "Observation.status"),
    (lambda o: o.update(code=[]), "Observation.code"),
])
def test_fhir_types_are_checked_strictly_naming_the_path(edit, path):
    obs = copy.deepcopy(_glucose())
    obs.pop("effectiveDateTime", None)
    edit(obs)
    with pytest.raises(ClinicalError) as e:
        parse_fhir(json.dumps(obs))
    assert e.value.code == "fhir-type" and e.value.message.startswith(path + " must be")


# --- HL7 v2 -----------------------------------------------------------------------------------


def test_every_hl7_file_is_in_the_manifest():
    assert sorted(conformance.manifest()["hl7"]) == conformance.files("hl7", ".hl7")


@pytest.mark.parametrize("name", conformance.files("hl7", ".hl7"))
def test_hl7_file(name):
    expected = conformance.manifest()["hl7"][name]
    text = hl7_text(name)
    if expected["expect"] == "refuse":
        with pytest.raises(ClinicalError) as e:
            parse_oru_r01(text)
        assert e.value.code in expected["codes"]
        nack = nack_for(text, e.value)
        assert nack.split("\r")[1].startswith(f"MSA|{expected.get('ack', 'AE')}|")
        errs = [s for s in nack.split("\r") if s.startswith("ERR|")]
        assert errs and all(err.split("|")[4] == "E" for err in errs)
        if isinstance(e.value, UnreadableResults):  # no OBX readable: the AE names each one
            obx = [line for line in text.replace("\n", "\r").split("\r") if line.startswith("OBX|")]
            assert [err.split("|")[2] for err in errs] == [f"OBX^{i}" for i in range(1, len(obx) + 1)]
        return
    labs = parse_oru_r01(text)
    assert labs.results
    msa = labs.ack.split("\r")[1]
    assert msa.startswith("MSA|AA|")
    # One ERR segment (a warning) per OBX left out, naming it.
    errs = [s for s in labs.ack.split("\r") if s.startswith("ERR|")]
    assert len(errs) == len(labs.refused)
    for err, refused in zip(errs, labs.refused, strict=True):
        assert err.split("|")[2] == "OBX^" + refused.where.split()[-1] and err.split("|")[4] == "W"


def test_lri_cbc_ranges_written_lo_to_hi():
    labs = parse_oru_r01(hl7_text("LRI_2.0-NG_CBC_Typ_Message.hl7"))
    assert len(labs.results) == 19 and {r.code for r in labs.refused} == {"hl7-value-type"}  # CWE, TX
    results = by_loinc(labs.results)
    rbc, wbc = results["26453-1"], results["26464-8"]
    assert (rbc.value, rbc.unit, rbc.ref_low, rbc.ref_high, rbc.interpretation) == (4.41, "10*6/uL", 4.3, 6.2, "N")
    assert (wbc.value, wbc.ref_low, wbc.ref_high, wbc.interpretation, wbc.abnormal) == (
        105600.0, 4300.0, 10800.0, "HH", True)


def test_pending_results_do_not_block_the_final_ones():
    labs = parse_oru_r01(hl7_text("LAB-ORU-1.hl7"))
    results = {(r.loinc, r.status) for r in labs.results}
    assert ("11156-7", "registered") in results and ("20509-6", "registered") in results  # pending
    assert ("20570-8", "preliminary") in results
    pending = next(r for r in labs.results if r.loinc == "11156-7")
    assert (pending.value, pending.text) == (None, "pending")
    # tera.l-1 and giga.l-1 are not UCUM: those two OBX are left out and named in the ACK.
    assert [(r.where, r.code) for r in labs.refused] == [("OBX 2", "hl7-unit"), ("OBX 5", "hl7-unit")]
    assert "tera.l-1" in labs.ack


def test_free_text_ranges_and_corrected_status():
    [lead] = parse_oru_r01(hl7_text("ORU_R01_2.5.1_SampleTestCase3.hl7")).results
    assert (lead.value, lead.unit, lead.status, lead.ref_high, lead.interpretation) == (25.0, "ug/dl", "corrected", 10.0, "H")
    [lead] = parse_oru_r01(hl7_text("ORU_R01_2.5.1_SampleTestCase1.hl7")).results
    assert lead.ref_high is None and lead.ranges[0].text.startswith("<9 mcg/dL:")  # text, not flagged on
    assert (lead.value, lead.interpretation, lead.interpretation_source) == (50.0, "H", "sender")
    [hcv] = parse_oru_r01(hl7_text("ORU_R01_2.5.1_SampleTestCase5.hl7")).results
    assert (hcv.value, hcv.unit) == (850000.0, "[iU]/mL")  # bare iU read as the UCUM atom


def test_numeric_next_to_text_results():
    labs = parse_oru_r01(hl7_text("realm-hepatitis-c-virus.hl7"))
    [age] = labs.results
    assert (age.loinc, age.value, age.unit) == ("35659-2", 29.0, "a")
    assert {r.code for r in labs.refused} == {"hl7-value", "hl7-value-type"}  # SN shifted out of OBX-5; TX


def test_two_obr_groups():
    labs = parse_oru_r01(hl7_text("LAB-ORU-2.hl7"))
    results = by_loinc(labs.results)
    assert results["23761-0"].value == 72.0 and results["20570-8"].value == 39.7
    assert len(labs.results) + len(labs.refused) == 10


# --- DICOM ------------------------------------------------------------------------------------


def test_every_dicom_file_is_in_the_manifest():
    assert sorted(conformance.manifest()["dicom"]) == conformance.files("dicom", ".dcm")


@pytest.mark.parametrize("name", conformance.files("dicom", ".dcm"))
def test_dicom_file(name):
    expected = conformance.manifest()["dicom"][name]
    data = conformance.read("dicom", name)
    if expected["expect"] == "refuse":
        with pytest.raises(ClinicalError) as e:
            read_dicom(data)
        assert e.value.code in expected["codes"]
        return
    obj = read_dicom(data)
    ds = obj.dataset
    assert obj.kind == expected.get("kind", "image")
    assert obj.sop_instance_uid == ds.SOPInstanceUID
    if obj.kind == "waveform":
        return
    assert (obj.rows, obj.columns) == (ds.Rows, ds.Columns)
    assert obj.frames == int(ds.get("NumberOfFrames", 1) or 1)
    for frame in sorted({0, obj.frames - 1}):  # every frame renders; first and last tried
        png = render_png(obj, frame)
        assert png.startswith(b"\x89PNG")


@pytest.mark.parametrize("name,syntax,frames,pixel", [
    ("JPGLosslessP14SV1_1s_1f_8b.dcm", "1.2.840.10008.1.2.4.70", 1, None),
    ("IM-0001-0001-0001.dcm", "1.2.840.10008.1.2.4.70", 1, None),
    ("CT1_J2KR.dcm", "1.2.840.10008.1.2.4.90", 1, "CT1_UNC.dcm"),  # lossless: the same pixels
    ("OBXXXX1A_rle_2frame.dcm", "1.2.840.10008.1.2.5", 2, None),
    ("emri_small.dcm", "1.2.840.10008.1.2.1", 10, None),
])
def test_compressed_and_enhanced_objects_decode(name, syntax, frames, pixel):
    from pydicom.pixels import pixel_array

    obj = read_dicom(conformance.read("dicom", name))
    assert (obj.transfer_syntax_uid, obj.frames) == (syntax, frames)
    if pixel is not None:
        reference = read_dicom(conformance.read("dicom", pixel))
        assert np.array_equal(pixel_array(obj.dataset), pixel_array(reference.dataset))


# --- ECG --------------------------------------------------------------------------------------


@pytest.mark.parametrize("record,leads,rate,uv,first", [
    ("100", ("MLII", "V5"), 360, 5.0, [995 - 1024, 1011 - 1024]),
    ("s0010_re", 15, 1000, 0.5, None),
])
def test_wfdb_records_read_exactly(record, leads, rate, uv, first):
    from telemed_client.ecg_sources import from_wfdb

    signal = from_wfdb(conformance.corpus() / "ecg" / record)
    source = wfdb.rdrecord(str(conformance.corpus() / "ecg" / record), physical=False)
    assert signal.sample_rate == rate and signal.uv_per_lsb == uv
    assert signal.leads == leads if isinstance(leads, tuple) else len(signal.leads) == leads
    assert np.array_equal(signal.samples, source.d_signal - np.array(source.baseline))
    if first is not None:
        assert signal.samples[0].tolist() == first
    # the physical values are exactly recovered from what goes on the wire
    physical = wfdb.rdrecord(str(conformance.corpus() / "ecg" / record)).p_signal * 1000
    assert np.allclose(signal.samples * signal.uv_per_lsb, physical, atol=1e-6)


def test_dicom_twelve_lead_waveform_reads_exactly():
    from pydicom import dcmread
    from pydicom.waveforms.numpy_handler import multiplex_array
    from telemed_client.ecg_sources import from_dicom_waveform

    path = conformance.corpus() / "dicom" / "anonymous_ecg.dcm"
    signal = from_dicom_waveform(path)
    assert signal.leads[:3] == ("I", "II", "III") and len(signal.leads) == 12
    assert (signal.sample_rate, signal.uv_per_lsb, len(signal.samples)) == (1000, 1.25, 10000)
    assert np.array_equal(signal.samples, multiplex_array(dcmread(path), 0, as_raw=True))


async def test_corpus_ecg_streamed_through_the_device_client_arrives_exactly(server):
    """MIT-BIH 100 (MLII), PTB s0010_re (the 12 standard leads) and the Mortara 12-lead
    DICOM waveform, a second of each at their own rates: the subscriber gets the
    source's own sample numbers, with the scale that makes them microvolts."""
    from telemed_client.ecg_sources import from_dicom_waveform, from_wfdb

    from clinical.ecg import unpack_frame
    from tests.clinical_peers import PASSWORD, close, join

    ecg = conformance.corpus() / "ecg"
    mit = from_wfdb(ecg / "100").select("MLII", seconds=1)
    ptb = from_wfdb(ecg / "s0010_re").fitted()
    assert ptb.leads[-1] == "v6" and from_wfdb(ecg / "100").fitted().leads == ("MLII",)
    ptb = ptb.select(*ptb.leads, seconds=1)
    cart = from_dicom_waveform(conformance.corpus() / "dicom" / "anonymous_ecg.dcm")
    cart = cart.select(*cart.leads, seconds=1)
    await server.create_room("corpus-ecg", PASSWORD)
    device = await join(server, "corpus-ecg", "Ambulance", role="device")
    doctor = await join(server, "corpus-ecg", "Dr A")
    try:
        signals = dict(enumerate((mit, ptb, cart), start=1))
        sent = {}
        for sid, signal in signals.items():
            sent[sid] = await device.stream_ecg(signal, stream_id=sid)
            announce = await doctor.wait_for(lambda m, sid=sid: m["type"] == "ecg-announce" and m["stream_id"] == sid)
            assert announce["uv_per_lsb"] == signal.uv_per_lsb and announce["sample_rate"] == signal.sample_rate
        # The ecg channel is unordered: gather every stream's frames, then order them by seq.
        frames = {sid: [] for sid in signals}
        while sum(map(len, frames.values())) < sum(sent.values()):
            _, data = await asyncio.wait_for(doctor.ecg_frames.get(), 10)
            frame = unpack_frame(data)
            frames[frame.stream_id].append(frame)
        for sid, signal in signals.items():
            got = sorted(frames[sid], key=lambda f: f.seq)
            assert len(got) == sent[sid]
            assert np.array_equal(np.concatenate([f.samples for f in got]), signal.samples)
        source = wfdb.rdrecord(str(ecg / "100"), physical=False, sampto=360, channels=[0])
        assert np.array_equal(mit.samples[:, 0], source.d_signal[:, 0] - 1024)
    finally:
        await close(device, doctor)


# --- through a live room ----------------------------------------------------------------------


def test_deidentification_keeps_corpus_objects_valid_and_linked():
    """One consult's pseudonyms: CT1_UNC and its JPEG 2000 copy stay one patient and
    study, and the copy still points at the (renamed) original."""
    from clinical.deidentify import Deidentifier

    deidentifier = Deidentifier()
    for name, expected in conformance.manifest()["dicom"].items():
        if expected["expect"] != "refuse":
            read_dicom(deidentifier(conformance.read("dicom", name)))
    original = read_dicom(deidentifier(conformance.read("dicom", "CT1_UNC.dcm"))).dataset
    copy_ = read_dicom(deidentifier(conformance.read("dicom", "CT1_J2KR.dcm"))).dataset
    source = read_dicom(conformance.read("dicom", "CT1_UNC.dcm")).dataset
    assert str(original.PatientName) == str(copy_.PatientName) != str(source.PatientName)
    assert original.StudyInstanceUID == copy_.StudyInstanceUID != source.StudyInstanceUID
    assert copy_.SourceImageSequence[0].ReferencedSOPInstanceUID == original.SOPInstanceUID


async def test_corpus_objects_and_labs_in_a_live_room(server):
    """CT1_J2KR into a de-identifying room under a patient's file name; the SV1 CT into
    a plain one, previewed; the LAB-ORU-1 ACK naming the two OBX left out; the CBC
    report with its one unreadable result listed; a wrongly typed FHIR date refused."""
    from telemed_client.client import ClientError

    from tests.clinical_peers import PASSWORD, close, join

    await server.create_room("corpus-deid", PASSWORD, require_deidentification=True)
    await server.create_room("corpus", PASSWORD)
    uploader, viewer = await join(server, "corpus-deid", "Dr A"), await join(server, "corpus-deid", "Dr B")
    lab, doctor = await join(server, "corpus", "Lab", role="device"), await join(server, "corpus", "Dr C")
    try:
        await uploader.send_dicom(conformance.read("dicom", "CT1_J2KR.dcm"), "Yamada^Tarou H31EXAMPLE.dcm")
        notice = await viewer.wait_for(lambda m: m["type"] == "dicom")
        assert "Yamada" not in json.dumps(notice)
        assert notice["name"].startswith("CT_") and notice["name"].endswith("_1.dcm")
        assert notice["object"]["transfer_syntax_uid"] == "1.2.840.10008.1.2.4.90"

        await lab.send_dicom(conformance.read("dicom", "IM-0001-0001-0001.dcm"), "ct.dcm")
        notice = await doctor.wait_for(lambda m: m["type"] == "dicom")
        assert notice["name"] == "ct.dcm"  # a plain room keeps the sender's name
        png = await doctor.fetch(notice["preview_url"])
        assert png.startswith(b"\x89PNG")

        start = len(doctor.messages)
        ack = await lab.send_hl7(hl7_text("LAB-ORU-1.hl7"))
        segments = ack.rstrip("\r").split("\r")
        assert segments[1] == "MSA|AA|182"
        assert [s.split("|")[2] for s in segments[2:]] == ["OBX^2", "OBX^5"]
        shared = await doctor.wait_for(lambda m: m["type"] == "lab" and m["source"] == "hl7v2", start=start)
        assert len(shared["results"]) == 8 and [r["where"] for r in shared["refused"]] == ["OBX 2", "OBX 5"]

        cbc = json.loads(conformance.read("fhir", "diagnosticreport-example.json"))
        receipt = await lab.send_fhir(cbc)
        assert len(receipt["results"]) == 16
        assert receipt["refused"] == [{"where": "Observation/r3", "code": "lab-unit",
                                       "error": receipt["refused"][0]["error"]}]

        glucose = _glucose()
        glucose.pop("effectiveDateTime", None)
        glucose["effectivePeriod"] = {"start": 20130402}
        with pytest.raises(ClientError) as e:
            await lab.send_fhir(glucose)
        assert e.value.code == "fhir-type" and "Observation.effectivePeriod.start" in e.value.message
    finally:
        await close(uploader, viewer, lab, doctor)


def test_a_report_citing_corpus_labs_exports_their_readings():
    """The consult report (clinical/consult_report.py) cites lab notices as this branch
    reads them: a coded result's text and a bound's comparator reach its summary and
    its FHIR export."""
    from fhir.resources.R4B.diagnosticreport import DiagnosticReport

    from clinical.consult_report import ReportSigner, draft, seal
    from clinical.report_fhir import diagnostic_report

    group = fhir("observation-example-bloodgroup.json").results
    egfr = fhir("observation-example-f205-egfr.json").results
    hcv = parse_oru_r01(hl7_text("ORU_R01_2.5.1_SampleTestCase5.hl7")).results
    entries = {seq: {"seq": seq, "kind": "lab", "body": {"results": [r.to_dict() for r in results]}}
               for seq, results in ((1, group), (2, egfr), (3, hcv))}
    content = draft({"template": "stroke", "findings": "f", "conclusion": "c",
                     "references": [{"seq": 1}, {"seq": 3}]}, entries)
    assert [r["summary"] for r in content["references"]] == ["ABO group [Type] in Blood A", "Hepatitis C Virus RNA 850000.0 [iU]/mL"]
    report = seal(content, {"identity": "u-1", "name": "Dr. A", "role": "host"}, ReportSigner(b"k" * 32))
    resource = diagnostic_report(report, "room", 9, entries)
    DiagnosticReport.model_validate(resource)
    assert [o.get("valueString") for o in resource["contained"]] == ["A", None]
    assert resource["contained"][1]["valueQuantity"]["value"] == 850000.0


@pytest.mark.parametrize("name", ["GH364.dcm", "JLSL_08_07_0_1F.dcm"])
def test_jpeg_ls_pixels_decode(name):
    """Both corpus JPEG-LS files are refused for other reasons (burned-in annotation, no
    Study UID); their pixels still decode, so the refusal is never a missing codec."""
    from pydicom.pixels import pixel_array

    from clinical.dicom_validate import load_dataset

    ds = load_dataset(conformance.read("dicom", name))
    assert ds.file_meta.TransferSyntaxUID in ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81")
    frame = pixel_array(ds, index=0)
    assert frame.shape[:2] == (ds.Rows, ds.Columns) and frame.any()
    if name == "GH364.dcm":
        assert read_dicom(conformance.read("dicom", name), allow_burned_in=True).frames >= 1
