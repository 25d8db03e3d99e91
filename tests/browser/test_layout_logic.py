"""The pure layout and speaker logic of the web client, run in the browser itself."""

from __future__ import annotations

import pytest

SETUP = """async () => {
  const layout = await import('/js/layout.js');
  const speaker = await import('/js/speaker.js');
  const participants = new Map([
    ['p1', {peer_id: 'p1', identity: 'i1', name: 'Dr. One', role: 'host', screen: 1}],
    ['p2', {peer_id: 'p2', identity: 'i2', name: 'Dr. Two', role: 'participant', screen: 1}],
    ['p2b', {peer_id: 'p2b', identity: 'i2', name: 'Dr. Two', role: 'participant', screen: 2}],
    ['v1', {peer_id: 'v1', identity: 'i9', name: 'Trainee', role: 'viewer', screen: 1}],
    ['or', {peer_id: 'or', identity: 'i3', name: 'OR 4', role: 'device', screen: 1}],
  ]);
  const tracks = new Map([
    ['c1', {id: 'c1', peer_id: 'p1', kind: 'video', source: 'camera'}],
    ['a1', {id: 'a1', peer_id: 'p1', kind: 'audio', source: 'microphone', muted: true}],
    ['c2', {id: 'c2', peer_id: 'p2', kind: 'video', source: 'camera'}],
    ['s2', {id: 's2', peer_id: 'p2', kind: 'video', source: 'screen', label: ''}],
    ['f3', {id: 'f3', peer_id: 'or', kind: 'video', source: 'field', label: 'Operating field'}],
    ['e3', {id: 'e3', peer_id: 'or', kind: 'video', source: 'endoscope', label: 'Endoscope'}],
  ]);
  const me = {peer_id: 'me', identity: 'i0', role: 'participant'};
  const self = {name: 'Me', cameraTrackId: 'cm', micTrackId: 'am', videoMuted: false, audioMuted: false, hasVideo: true};
  const tiles = layout.buildTiles({me, participants, tracks, self});
  const keys = (list) => list.map((t) => t.key);
  const arrange = (l) => {
    const a = layout.arrange({pip_tracks: [], main_track: null, ...l}, tiles, 'p2');
    return {main: a.main && a.main.key, pips: keys(a.pips), strip: keys(a.strip), grid: keys(a.grid)};
  };
  const d = new speaker.SpeakerDetector();
  const s0 = d.update(new Map([['p1', 0.3], ['p2', 0.0]]), 0).active;
  const s1 = d.update(new Map([['p1', 0.0], ['p2', 0.5]]), 100).active;
  d.update(new Map([['p1', 0.0], ['p2', 0.5]]), 600);
  const s2 = d.update(new Map([['p1', 0.0], ['p2', 0.5]]), 1200).active;
  return {
    tiles: keys(tiles),
    p1Muted: tiles.find((t) => t.key === 'c1').audioMuted,
    grid: arrange({preset: 'grid'}),
    speaker: arrange({preset: 'speaker'}),
    pinned: arrange({preset: 'speaker', main_track: 'c1'}),
    presentation: arrange({preset: 'presentation'}),
    surgery: arrange({preset: 'surgery'}),
    surgeryPips: arrange({preset: 'surgery', main_track: 'e3', pip_tracks: ['f3', 'c1']}),
    columns: [layout.gridColumns(1, 1000, 560).cols, layout.gridColumns(4, 1000, 560).cols, layout.gridColumns(3, 560, 1000).cols],
    speakers: [s0, s1, s2],
  };
}"""


@pytest.fixture
async def result(server, people):
    page = await (await people("logic")).page(f"{server.url}/?role=viewer")
    return await page.evaluate(SETUP)


async def test_tiles_are_people_and_content(result):
    # Self first; the trainee and the seat's second screen are not people tiles.
    assert result["tiles"] == ["self", "c1", "c2", "s2", "f3", "e3"]
    assert result["p1Muted"] is True


async def test_presets(result):
    assert result["grid"]["grid"] == ["self", "c1", "c2", "s2", "f3", "e3"]
    assert result["speaker"]["main"] == "c2"            # the active speaker
    assert result["pinned"]["main"] == "c1"             # the host's pin wins
    assert result["presentation"]["main"] == "s2"       # the shared screen
    assert "c2" in result["presentation"]["strip"]
    assert result["surgery"]["main"] == "f3"            # a surgical source, not a screen
    assert len(result["surgery"]["pips"]) <= 3
    assert result["surgeryPips"] == {"main": "e3", "pips": ["f3", "c1"], "strip": ["self", "c2", "s2"], "grid": []}


async def test_grid_columns_and_speaker_hold(result):
    assert result["columns"] == [1, 2, 1]
    # p2 must stay loudest for a moment before the highlight moves.
    assert result["speakers"] == ["p1", "p1", "p2"]
