"""Lab results: FHIR R4 Observation / DiagnosticReport / Bundle and HL7 v2 ORU^R01."""

import copy
import json

import pytest

from clinical.errors import ClinicalError
from clinical.hl7v2 import nack_for, parse_oru_r01
from clinical.lab_result import LabResult, ReferenceRange, check_interpretation, check_loinc, interpret
from clinical.labs import parse_fhir

UCUM = "http://unitsofmeasure.org"
V3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


def code_of(excinfo) -> str:
    return excinfo.value.code


def observation(**overrides) -> dict:
    obs = {
        "resourceType": "Observation",
        "id": "k",
        "status": "final",
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "2823-3", "display": "Potassium"}]
        },
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-05-01T10:00:00Z",
        "valueQuantity": {"value": 6.2, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"},
        "referenceRange": [
            {
                "low": {"value": 3.5, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"},
                "high": {"value": 5.1, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"},
            }
        ],
    }
    obs.update(overrides)
    return obs


def report(*observations, **overrides) -> dict:
    rep = {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "code": {
            "coding": [
                {
                    "system": "http://loinc.org",
                    "code": "24323-8",
                    "display": "Comprehensive metabolic panel",
                }
            ]
        },
        "subject": {"reference": "Patient/p2"},
        "effectiveDateTime": "2024-05-02",
        "contained": list(observations),
        "result": [{"reference": f"#{o['id']}"} for o in observations],
    }
    rep.update(overrides)
    return rep


def bare(obs: dict) -> dict:
    """A contained observation relying on its report for subject and time."""
    obs = copy.deepcopy(obs)
    del obs["subject"], obs["effectiveDateTime"]
    return obs


# --- shared rules -----------------------------------------------------------------------


@pytest.mark.parametrize("code", ["2345-7", "718-7", "2823-3", "2951-2", "10839-9", "33762-6"])
def test_real_loinc_codes_pass_the_check_digit(code):
    assert check_loinc(code) == code


@pytest.mark.parametrize("code", ["2345-6", "2345", "abc-1", "12345678-9", "", "2345-7 "])
def test_bad_loinc_codes(code):
    with pytest.raises(ClinicalError) as e:
        check_loinc(code)
    assert code_of(e) == "lab-loinc"


def test_interpretation_rules():
    normal = [ReferenceRange(low=3.5, high=5.1)]
    def flag(value, ranges, given=None, comparator=None):
        r = interpret(value, ranges, given, comparator)
        return r["interpretation"], r["abnormal"], r["interpretation_source"]
    assert flag(6.2, normal) == ("H", True, "computed")
    assert flag(3.0, normal) == ("L", True, "computed")
    assert flag(4.0, normal) == ("N", False, "computed")
    assert flag(4.0, []) == (None, None, None)
    assert flag(4.0, normal, "HH") == ("HH", True, "sender")  # the lab's flag wins
    assert flag(0.01, [ReferenceRange(high=0.04)], None, "<") == (None, None, None)
    # Typed ranges (severity bands) are shown, not flagged on; a "normal" one is.
    bands = [ReferenceRange(high=8, type="Severe"), ReferenceRange(low=9, high=12, type="Moderate")]
    assert flag(13, bands) == (None, None, None)
    assert flag(13, [*bands, ReferenceRange(low=1, high=5, type="normal")]) == ("H", True, "computed")
    assert flag(4, [ReferenceRange(low=1, high=5), ReferenceRange(low=2, high=6)]) == (None, None, None)
    with pytest.raises(ClinicalError):
        check_interpretation("XYZ")


# --- FHIR -------------------------------------------------------------------------------


def test_observation():
    [r] = parse_fhir(observation()).results
    assert isinstance(r, LabResult)
    assert (r.loinc, r.display, r.value, r.unit) == ("2823-3", "Potassium", 6.2, "mmol/L")
    assert (r.ref_low, r.ref_high, r.interpretation, r.abnormal) == (3.5, 5.1, "H", True)
    assert (r.status, r.patient, r.source) == ("final", "Patient/p1", "fhir")
    assert r.effective.startswith("2024-05-01T10:00:00")
    assert r.to_dict()["loinc"] == "2823-3"
    json.dumps(r.to_dict())


def test_observation_as_json_text_and_explicit_interpretation():
    obs = observation(interpretation=[{"coding": [{"system": V3, "code": "HH"}]}])
    [r] = parse_fhir(json.dumps(obs)).results
    assert (r.interpretation, r.abnormal) == ("HH", True)


def test_observation_without_range_or_flag():
    [r] = parse_fhir(observation(referenceRange=None)).results
    assert (r.interpretation, r.abnormal) == (None, None)


def test_comparator_value():
    obs = observation(
        valueQuantity={
            "value": 0.01,
            "comparator": "<",
            "unit": "ng/mL",
            "system": UCUM,
            "code": "ng/mL",
        },
        referenceRange=None,
    )
    [r] = parse_fhir(obs).results
    assert r.comparator == "<" and r.abnormal is None


def test_diagnostic_report_with_contained_observations():
    glucose = bare(
        observation(
            id="g",
            code={"coding": [{"system": "http://loinc.org", "code": "2345-7"}], "text": "Glucose"},
        )
    )
    glucose["valueQuantity"] = {"value": 5.0, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"}
    glucose["referenceRange"] = [{"low": {"value": 3.9}, "high": {"value": 5.5}}]
    results = parse_fhir(report(bare(observation()), glucose)).results
    assert [r.loinc for r in results] == ["2823-3", "2345-7"]
    assert all(r.patient == "Patient/p2" and r.effective == "2024-05-02" for r in results)
    assert results[1].display == "Glucose" and results[1].abnormal is False  # code.text


def test_bundle_with_entries_and_a_report():
    standalone = observation(id="a")
    in_bundle = observation(
        id="b",
        code={"coding": [{"system": "http://loinc.org", "code": "2951-2", "display": "Sodium"}]},
        valueQuantity={"value": 140, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"},
        referenceRange=None,
    )
    rep = report(bare(observation(id="c")))
    rep["result"].append({"reference": "urn:uuid:bbbb"})
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:aaaa", "resource": standalone},
            {"resource": {"resourceType": "Patient", "id": "p1"}},
            {"fullUrl": "urn:uuid:bbbb", "resource": in_bundle},
            {"resource": rep},
        ],
    }
    results = parse_fhir(bundle).results
    assert [r.loinc for r in results] == [
        "2823-3",
        "2951-2",
        "2823-3",
    ]  # no duplicate of the referenced entry
    assert results[2].patient == "Patient/p2"


@pytest.mark.parametrize(
    "payload,code",
    [
        ("{not json", "fhir-json"),
        ('{"value": NaN}', "fhir-json"),
        ("[1, 2]", "fhir-structure"),
        (42, "fhir-structure"),
        ({"resourceType": "Patient", "id": "x"}, "fhir-resource-type"),
        ({"status": "final"}, "fhir-resource-type"),
        (observation(code=None), "fhir-structure"),  # code is required
        (observation(status=None), "fhir-structure"),
        (observation(valueQuantity={"value": "high"}), "fhir-type"),
        (observation(extra_field=1), "fhir-structure"),
        (observation(subject="Patient/p1"), "fhir-type"),
    ],
)
def test_invalid_fhir_structure(payload, code):
    with pytest.raises(ClinicalError) as e:
        parse_fhir(payload)
    assert code_of(e) == code


@pytest.mark.parametrize(
    "overrides,code",
    [
        (
            {"code": {"coding": [{"system": "http://snomed.info/sct", "code": "88480006"}]}},
            "lab-loinc",
        ),
        ({"code": {"text": "Potassium"}}, "lab-loinc"),
        ({"code": {"coding": [{"system": "http://loinc.org", "code": "2823-4"}]}}, "lab-loinc"),
        ({"valueQuantity": {"value": 6.2, "unit": "mmol/L"}}, "lab-unit"),
        (
            {
                "valueQuantity": {
                    "value": 6.2,
                    "unit": "mmol/L",
                    "system": "http://example.org/units",
                    "code": "mmol/L",
                }
            },
            "lab-unit",
        ),
        (
            {"valueQuantity": {"value": 6.2, "unit": "millimoles per litre", "system": UCUM}},
            "lab-unit",
        ),
        ({"valueQuantity": {"value": 6.2, "system": UCUM, "code": "mmol per L"}}, "lab-unit"),
        ({"valueQuantity": {"unit": "mmol/L", "system": UCUM, "code": "mmol/L"}}, "lab-value"),
        ({"valueQuantity": None}, "lab-value"),
        ({"valueQuantity": None, "valueSampledData": {"origin": {"value": 0}, "period": 1, "dimensions": 1}}, "lab-value"),
        ({"status": "entered-in-error"}, "lab-status"),
        ({"status": "cancelled"}, "lab-status"),
        ({"status": "bogus"}, "lab-status"),
        ({"interpretation": [{"coding": [{"system": V3, "code": "XYZ"}]}]}, "lab-interpretation"),
        (
            {"referenceRange": [{"low": {"value": 3500, "system": UCUM, "code": "umol/L"}}]},
            "lab-range",
        ),
    ],
)
def test_refused_observations(overrides, code):
    with pytest.raises(ClinicalError) as e:
        parse_fhir(observation(**overrides))
    assert code_of(e) == code


def test_report_errors():
    with pytest.raises(ClinicalError) as e:
        parse_fhir(report(bare(observation()), result=[{"reference": "Observation/elsewhere"}]))
    assert code_of(e) == "fhir-reference"
    with pytest.raises(ClinicalError) as e:
        parse_fhir(report(result=[]))
    assert code_of(e) == "lab-no-results"
    with pytest.raises(ClinicalError) as e:
        parse_fhir(report(bare(observation()), status="entered-in-error"))
    assert code_of(e) == "lab-status"


def test_bundle_without_results():
    with pytest.raises(ClinicalError) as e:
        parse_fhir(
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": {"resourceType": "Patient"}}],
            }
        )
    assert code_of(e) == "lab-no-results"


def test_bundle_with_an_invalid_entry():
    """The unreadable result is refused alone, with its reason; the other is shared."""
    bad = observation(id="bad", code={"coding": [{"system": "http://loinc.org", "code": "1234"}]})
    labs = parse_fhir(
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": observation()}, {"resource": bad}],
        }
    )
    assert [r.loinc for r in labs.results] == ["2823-3"]
    assert [(x.where, x.code) for x in labs.refused] == [("Observation/bad", "lab-loinc")]


def test_oversized_fhir_text():
    with pytest.raises(ClinicalError) as e:
        parse_fhir(" " * (1024 * 1024 + 1))
    assert code_of(e) == "fhir-too-large"


# --- HL7 v2 -------------------------------------------------------------------------------

MSH = "MSH|^~\\&|LIS|COUNTY|TELEMED|PROVINCIAL|20240501103000||ORU^R01^ORU_R01|CTRL0001|P|2.5.1"
PID = "PID|1||MRN12345^^^COUNTY^MR||DOE^JANE||19610704|F"
OBR = "OBR|1|ORD1|FIL1|24323-8^Metabolic panel^LN|||20240501093000"
OBX_K = "OBX|1|NM|2823-3^Potassium^LN||6.2|mmol/L^^UCUM|3.5-5.1|H|||F|||20240501094500+0800"
OBX_NA = "OBX|2|NM|2951-2^Sodium^LN||140|mmol/L|135-145|N|||F"


def hl7(*segments: str, sep: str = "\r") -> str:
    return sep.join(segments) + sep


def test_oru_r01():
    labs = parse_oru_r01(hl7(MSH, PID, OBR, OBX_K, OBX_NA, "NTE|1||hemolysed? no"))
    results, ack = labs.results, labs.ack
    k, na = results
    assert (k.loinc, k.display, k.value, k.unit, k.ref_low, k.ref_high) == (
        "2823-3",
        "Potassium",
        6.2,
        "mmol/L",
        3.5,
        5.1,
    )
    assert (k.interpretation, k.abnormal, k.status, k.patient, k.source) == (
        "H",
        True,
        "final",
        "MRN12345",
        "hl7v2",
    )
    assert k.effective == "2024-05-01T09:45:00+08:00"
    assert na.effective == "2024-05-01T09:30:00"  # falls back to OBR-7
    assert (na.interpretation, na.abnormal) == ("N", False)
    segments = ack.split("\r")
    assert segments[0].startswith("MSH|^~\\&|TELEMED|PROVINCIAL|LIS|COUNTY|")
    assert "|ACK^R01^ACK|" in segments[0] and segments[0].endswith("|P|2.5.1")
    assert segments[1] == "MSA|AA|CTRL0001"


@pytest.mark.parametrize("sep", ["\n", "\r\n"])
def test_segment_separators(sep):
    assert len(parse_oru_r01(hl7(MSH, PID, OBR, OBX_K, sep=sep)).results) == 1


def test_custom_delimiters_and_escapes():
    msh = MSH.replace("^~\\&", "$*!%", 1).replace("^", "$").replace("|", "#")
    obx = "OBX#1#NM#2345-7$Glucose !S! fasting$LN##5.0#mmol/L#3.9-5.5####F"
    msg = hl7(
        msh, PID.replace("|", "#").replace("^", "$"), OBR.replace("|", "#").replace("^", "$"), obx
    )
    labs = parse_oru_r01(msg)
    [r], ack = labs.results, labs.ack
    assert r.display == "Glucose $ fasting" and r.value == 5.0 and r.abnormal is False
    assert ack.startswith("MSH#$*!%#")


def test_alternate_coding_triplet_and_one_sided_range():
    obx = "OBX|1|NM|TROP^Troponin I^L^10839-9^Troponin I^LN||0.02|ng/mL|<0.04||||F"
    [r] = parse_oru_r01(hl7(MSH, PID, OBR, obx)).results
    assert (r.loinc, r.ref_low, r.ref_high, r.interpretation) == ("10839-9", None, 0.04, "N")


@pytest.mark.parametrize(
    "segments,code",
    [
        ((MSH, PID, OBX_K), "hl7-structure"),  # no OBR
        ((MSH, PID, OBX_K, OBR), "hl7-structure"),  # OBX before OBR
        ((MSH, OBR, OBX_K), "hl7-structure"),  # OBR before PID
        ((MSH, PID, OBR), "hl7-structure"),  # no OBX
        ((MSH, OBR.replace("OBR", "obr"), OBX_K), "hl7-structure"),
        ((MSH, PID, OBR, OBX_K, MSH), "hl7-structure"),  # batch
        ((MSH.replace("ORU^R01^ORU_R01", "ADT^A01"), PID, OBR, OBX_K), "hl7-message-type"),
        ((MSH.replace("ORU^R01^ORU_R01", "ORU^R30"), PID, OBR, OBX_K), "hl7-message-type"),
        ((MSH.replace("|2.5.1", "|3.0"), PID, OBR, OBX_K), "hl7-version"),
        ((MSH.replace("|CTRL0001|", "||"), PID, OBR, OBX_K), "hl7-msh"),
        ((PID, MSH, OBR, OBX_K), "hl7-msh"),
        ((MSH.replace("^~\\&", "^^\\&"), PID, OBR, OBX_K), "hl7-msh"),
        ((MSH, PID.replace("MRN12345^^^COUNTY^MR", ""), OBR, OBX_K), "hl7-structure"),
    ],
)
def test_invalid_structure(segments, code):
    with pytest.raises(ClinicalError) as e:
        parse_oru_r01(hl7(*segments))
    assert code_of(e) == code


@pytest.mark.parametrize(
    "obx,code",
    [
        ("OBX|1|ST|2823-3^Potassium^LN||high|||||F", "hl7-value-type"),
        ("OBX|1|NM|2823-3^Potassium^LN||6,2|mmol/L|||||F", "hl7-value"),
        ("OBX|1|NM|2823-3^Potassium^LN||6.2~6.3|mmol/L|||||F", "hl7-value"),
        ("OBX|1|NM|2823-3^Potassium^LN|||mmol/L|||||F", "hl7-value"),
        ("OBX|1|NM|K^Potassium^L||6.2|mmol/L|||||F", "hl7-loinc"),
        ("OBX|1|NM|2823-4^Potassium^LN||6.2|mmol/L|||||F", "hl7-loinc"),
        ("OBX|1|NM|2823-3^Potassium^LN||6.2||||||F", "hl7-unit"),
        ("OBX|1|NM|2823-3^Potassium^LN||6.2|mmol/L^^ISO+|||||F", "hl7-unit"),
        ("OBX|1|NM|2823-3^Potassium^LN||6.2|mmol per L|||||F", "hl7-unit"),
        ("OBX|1|NM|2823-3^Potassium^LN||6.2|mmol/L|^^10.0|||F", "hl7-range"),
        ("OBX|1|NM|2823-3^Potassium^LN||6.2|mmol/L|5.1-3.5|||F", "hl7-range"),
        ("OBX|1|NM|2823-3^Potassium^LN||6.2|mmol/L||XYZ|||F", "hl7-interpretation"),
        ("OBX|1|NM|2823-3^Potassium^LN||6.2|mmol/L|||||X", "hl7-status"),
        ("OBX|1|NM|2823-3^Potassium^LN||6.2|mmol/L|||||", "hl7-status"),
        ("OBX|1|NM|2823-3^Potassium^LN||6.2|mmol/L|||||F|||20241345", "hl7-timestamp"),
        ("OBX|1|NM|2823-3^Potassium^LN||6.2|mmol/L|||||F|||yesterday", "hl7-timestamp"),
    ],
)
def test_invalid_observations(obx, code):
    with pytest.raises(ClinicalError) as e:
        parse_oru_r01(hl7(MSH, PID, OBR, obx))
    assert code_of(e) == code


def test_timestamp_precision_is_kept():
    for ts, iso in (
        ("2024", "2024"),
        ("202405", "2024-05"),
        ("202405011030", "2024-05-01T10:30"),
        ("20240501103015.25-0500", "2024-05-01T10:30:15.25-05:00"),
    ):
        obx = f"OBX|1|NM|2823-3^Potassium^LN||4.0|mmol/L|||||F|||{ts}"
        [r] = parse_oru_r01(hl7(MSH, PID, OBR, obx)).results
        assert r.effective == iso


def test_nack_for_content_and_message_errors():
    bad_obx = hl7(MSH, PID, OBR, "OBX|1|NM|2823-3^Potassium^LN||6,2|mmol/L|||||F")
    with pytest.raises(ClinicalError) as e:
        parse_oru_r01(bad_obx)
    nack = nack_for(bad_obx, e.value)
    _, msa, err = nack.rstrip("\r").split("\r")
    assert msa.startswith("MSA|AE|CTRL0001|") and "6,2" in msa
    assert err.startswith("ERR||OBX^1|102^Data type error^HL70357|E|")  # names the OBX

    wrong_type = hl7(MSH.replace("ORU^R01^ORU_R01", "ADT^A01"), PID)
    with pytest.raises(ClinicalError) as e:
        parse_oru_r01(wrong_type)
    nack = nack_for(wrong_type, e.value)
    assert "|ACK^A01^ACK|" in nack
    msa = nack.split("\r")[1]
    assert msa.startswith("MSA|AR|CTRL0001|") and "ADT\\S\\A01" in msa  # delimiters escaped


def test_no_nack_without_a_control_id():
    for message in ("garbage", "", MSH.replace("|CTRL0001|", "||"), 42):
        assert nack_for(message, ClinicalError("hl7-msh", "x")) is None


def test_full_escape_handling():
    obx = ("OBX|1|NM|2345-7^Glucose \\H\\fasting\\N\\ \\X41\\\\X42\\ \\F\\ line\\.br\\two^LN||5.0|mmol/L|"
           "3.9-5.5||||F")
    [r] = parse_oru_r01(hl7(MSH, PID, OBR, obx)).results
    assert r.display == "Glucose fasting AB | line\ntwo"


@pytest.mark.parametrize("value,expected", [
    (">^11.0", (11.0, ">")),
    ("<=^0.5", (0.5, "<=")),
    ("^182", (182.0, None)),
    ("=^7", (7.0, None)),
])
def test_structured_numeric_values(value, expected):
    obx = f"OBX|1|SN|2345-7^Glucose^LN||{value}|mg/dL|70-105||||F"
    [r] = parse_oru_r01(hl7(MSH, PID, OBR, obx)).results
    assert (r.value, r.comparator) == expected
    # a bound is not placed in the range
    value = expected[0]
    assert r.interpretation == (None if expected[1] else "H" if value > 105 else "L" if value < 70 else "N")


@pytest.mark.parametrize("value", ["^1^:^2", "^1^-^5", "<>^3", "^abc"])
def test_structured_numeric_that_is_not_one_value(value):
    with pytest.raises(ClinicalError) as e:
        parse_oru_r01(hl7(MSH, PID, OBR, f"OBX|1|SN|2345-7^Glucose^LN||{value}|mg/dL|||||F"))
    assert e.value.code == "hl7-value"


@pytest.mark.parametrize("text,low,high,kept", [
    ("4.3 to 6.2", 4.3, 6.2, None),
    ("4.3 - 6.2 mmol/L", 4.3, 6.2, None),
    ("<10 MMOL/L", None, 10.0, None),
    (">=2", 2.0, None, None),
    ("<10 ug/dl", None, None, "<10 ug/dl"),  # another unit: shown, not compared
    ("normal", None, None, "normal"),
    ("see note", None, None, "see note"),
])
def test_free_text_reference_ranges(text, low, high, kept):
    obx = f"OBX|1|NM|2823-3^Potassium^LN||5.0|mmol/L|{text}||||F"
    [r] = parse_oru_r01(hl7(MSH, PID, OBR, obx)).results
    [rng] = r.ranges
    assert (r.ref_low, r.ref_high, rng.text) == (low, high, kept)
    assert r.interpretation == (None if kept else "N")


def test_status_is_kept_and_pending_results_are_shown():
    labs = parse_oru_r01(hl7(
        MSH, PID, OBR,
        "OBX|1|NM|2823-3^Potassium^LN||4.0|mmol/L|||||P",
        "OBX|2|NM|2951-2^Sodium^LN|||mmol/L|||||I",
        "OBX|3|NM|718-7^Hemoglobin^LN||9.0|g/dL|||||C",
    ))
    assert [(r.status, r.value, r.text) for r in labs.results] == [
        ("preliminary", 4.0, None), ("registered", None, "pending"), ("corrected", 9.0, None)]
    assert labs.ack.split("\r")[1] == "MSA|AA|CTRL0001" and "ERR|" not in labs.ack


def test_one_odd_obx_is_named_in_the_ack_and_the_rest_taken():
    labs = parse_oru_r01(hl7(MSH, PID, OBR, OBX_K, "OBX|2|NM|2951-2^Sodium^LN||high|mmol/L|||||F", OBX_NA))
    assert [r.loinc for r in labs.results] == ["2823-3", "2951-2"]
    assert [(x.where, x.code) for x in labs.refused] == [("OBX 2", "hl7-value")]
    msh, msa, err = labs.ack.rstrip("\r").split("\r")
    assert msa == "MSA|AA|CTRL0001"
    assert err.startswith("ERR||OBX^2|102^Data type error^HL70357|W||||OBX 2: OBX-5 'high' is not a number")


@pytest.mark.parametrize("unit,code", [
    ("tera.l-1", "lab-unit"), ("g/l-1", "lab-unit"), ("mg / dL", "lab-unit"), ("", "lab-unit"),
    ("10*3/uL", None), ("mL/min/{1.73_m2}", None), ("mm[Hg]", None), ("g.l-1", None),
])
def test_ucum_is_parsed(unit, code):
    from clinical.ucum import check_ucum

    if code is None:
        assert check_ucum(unit) == unit
    else:
        with pytest.raises(ClinicalError) as e:
            check_ucum(unit)
        assert e.value.code == code
