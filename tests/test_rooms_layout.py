import pytest

from rooms import Layout


def test_defaults_and_round_trip():
    assert Layout().to_dict() == {"preset": "grid", "main_track": None, "pip_tracks": [], "version": 0}
    d = {"preset": "surgery", "main_track": "field", "pip_tracks": ["endo", "overview", "mic"], "version": 7}
    layout = Layout.from_dict(d)
    assert layout.pip_tracks == ("endo", "overview", "mic")
    assert layout.to_dict() == d


def test_optional_fields_default():
    assert Layout.from_dict({"preset": "speaker"}) == Layout(preset="speaker")


def test_constructor_accepts_a_list_and_validates():
    assert Layout("surgery", "a", ["b"]).pip_tracks == ("b",)
    with pytest.raises(ValueError, match="preset"):
        Layout("mosaic")


def test_layout_is_immutable():
    with pytest.raises(AttributeError):
        Layout().preset = "speaker"


@pytest.mark.parametrize(
    ("d", "message"),
    [
        (None, "object"),
        (["grid"], "object"),
        ({}, "preset is required"),
        ({"preset": "mosaic"}, "preset must be one of"),
        ({"preset": ["grid"]}, "preset must be one of"),
        ({"preset": None}, "preset must be one of"),
        ({"preset": "grid", "colour": "red"}, "unknown layout field"),
        ({"preset": "grid", 1: "x"}, "unknown layout field"),
        ({"preset": "grid", "main_track": 5}, "main_track must be a non-empty string"),
        ({"preset": "grid", "main_track": ""}, "main_track must be a non-empty string"),
        ({"preset": "grid", "main_track": "x" * 129}, "at most 128"),
        ({"preset": "grid", "main_track": "a\x00b"}, "control characters"),
        ({"preset": "surgery", "pip_tracks": "endo"}, "list"),
        ({"preset": "surgery", "pip_tracks": {"a": 1}}, "list"),
        ({"preset": "surgery", "pip_tracks": ["a", "b", "c", "d"]}, "at most 3"),
        ({"preset": "surgery", "pip_tracks": ["a", 2]}, "pip_tracks entry"),
        ({"preset": "surgery", "pip_tracks": ["a", None]}, "pip_tracks entry"),
        ({"preset": "surgery", "pip_tracks": ["y" * 129]}, "at most 128"),
        ({"preset": "surgery", "pip_tracks": ["a", "a"]}, "repeat"),
        ({"preset": "surgery", "main_track": "a", "pip_tracks": ["a"]}, "main_track must not"),
        ({"preset": "grid", "version": -1}, "version"),
        ({"preset": "grid", "version": "3"}, "version"),
        ({"preset": "grid", "version": 1.5}, "version"),
        ({"preset": "grid", "version": True}, "version"),
    ],
)
def test_bad_layouts(d, message):
    with pytest.raises(ValueError, match=message):
        Layout.from_dict(d)


def test_track_id_length_limit_is_inclusive():
    assert Layout.from_dict({"preset": "grid", "main_track": "x" * 128}).main_track == "x" * 128
