"""Layout presets become rectangles on the program canvas."""

from rooms import Layout
from streaming.scene import Scene, Source, plan

CAMS = [Source("a", "Field"), Source("b", "Endoscope"), Source("c", "Room"), Source("d", "Slides", screen=True)]


def test_surgery_main_full_frame_and_pips():
    scene = plan(Layout("surgery", main_track="b", pip_tracks=("c",)), CAMS, ["m"], 1280, 720)
    assert scene.tiles[0].track == "b" and (scene.tiles[0].w, scene.tiles[0].h) == (1280, 720)
    assert [t.track for t in scene.tiles[1:]] == ["c"]
    unpinned = plan(Layout("surgery"), CAMS, [], 1280, 720)
    assert [t.track for t in unpinned.tiles] == ["a", "b", "c", "d"]
    assert all(t.x + t.w <= 1280 and t.y + t.h <= 720 and t.x % 2 == 0 for t in unpinned.tiles)


def test_grid_speaker_presentation_and_empty():
    grid = plan(Layout("grid"), CAMS[:3], [], 640, 360)
    assert len(grid.tiles) == 3 and all(t.w == 320 and t.h == 180 for t in grid.tiles)
    speaker = plan(Layout("speaker", main_track="c"), CAMS, [], 640, 360)
    assert speaker.tiles[0].track == "c" and speaker.tiles[0].h == 270
    presentation = plan(Layout("presentation"), CAMS, [], 640, 360)
    assert presentation.tiles[0].track == "d" and presentation.tiles[0].w == 480
    assert plan(Layout("surgery"), [], [], 640, 360).tiles == ()
    assert Scene.from_dict(speaker.to_dict()) == speaker
