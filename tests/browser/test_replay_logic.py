"""The replay's clock and model, run in the browser itself: one master, followers
steered by rate or seek, gaps and buffering; the recording's state at a moment."""

from __future__ import annotations

import pytest

SETUP = """async () => {
  const { ReplayClock } = await import('/js/replay-clock.js');
  const model = await import('/js/replay-model.js');
  const fake = () => ({
    currentTime: 0, paused: true, readyState: 4, seeking: false, playbackRate: 1, duration: NaN, preload: '',
    play() { this.paused = false; return Promise.resolve(); }, pause() { this.paused = true; },
  });
  const out = {};
  const video = fake(), audio = fake();
  const clock = new ReplayClock(10);
  clock.add(video, { start: 0, end: 10, kind: 'video' });
  clock.add(audio, { start: 2, end: 8, kind: 'audio' });
  clock.seek(3);
  out.seeked = [video.currentTime, audio.currentTime];
  clock.play();
  out.startedPlaying = [!video.paused, !audio.paused, clock.time];
  clock.tick();
  out.master = clock.master && clock.master.kind;
  audio.currentTime = 1.5; video.currentTime = 3.4;   // video 0.1 s behind
  clock.tick();
  out.behind = [clock.time, video.playbackRate];
  video.currentTime = 3.48;                            // within 40 ms
  clock.tick();
  out.inStep = video.playbackRate;
  video.currentTime = 4.6;                             // 1.1 s ahead
  clock.tick();
  out.jumped = video.currentTime;
  clock.setSpeed(2);
  video.currentTime = 3.3;
  clock.tick();
  out.fastBehind = video.playbackRate;
  audio.currentTime = 6;                               // the audio track ends at 8
  clock.tick();
  out.audioEnded = [clock.time, audio.paused];
  video.currentTime = 8.2;
  clock.tick();
  out.videoLeads = [clock.master && clock.master.kind, clock.time];
  video.readyState = 2;                                // buffering: the clock waits
  clock.tick();
  out.buffering = clock.time;
  clock.pause();
  out.paused = [video.paused, audio.paused];

  const gap = new ReplayClock(10);
  const a = fake(), b = fake();
  gap.add(a, { start: 0, end: 2 }); gap.add(b, { start: 5, end: 7 });
  gap.seek(3);
  gap.play();
  gap.tick();
  await new Promise((resolve) => setTimeout(resolve, 50));
  gap.tick();
  out.gap = [gap.time > 3, a.paused, b.paused];

  const manifest = {
    started_at: '2026-01-01T10:00:00.000+00:00', stopped_at: '2026-01-01T10:00:10.000+00:00',
    session_log: { from_seq: 3, to_seq: 6 },
    tracks: [
      { id: 'v1', kind: 'video', peer_id: 'p1', identity: 'i1', name: 'Dr. One', source: 'camera', start: 0, end: 9 },
      { id: 's2', kind: 'video', peer_id: 'p2', identity: 'i2', name: 'Dr. Two', source: 'screen', start: 4, end: 6 },
    ],
    events: [
      { t: 0, type: 'participant', peer_id: 'p1', identity: 'i1', name: 'Dr. One', role: 'host' },
      { t: 0, type: 'participant', peer_id: 'v9', identity: 'i9', name: 'Trainee', role: 'viewer' },
      { t: 0, type: 'layout', layout: { preset: 'grid', main_track: null, pip_tracks: [] } },
      { t: 1, type: 'join', peer_id: 'p3', identity: 'i3', name: 'Dr. Three', role: 'participant' },
      { t: 2, type: 'mute', track_id: 'v1', muted: true },
      { t: 3, type: 'clinical', kind: 'lab', seq: 4 },
      { t: 4, type: 'layout', layout: { preset: 'presentation', main_track: 's2', pip_tracks: [] } },
      { t: 5, type: 'leave', peer_id: 'p3' },
      { t: 5, type: 'mute', track_id: 'v1', muted: false },
    ],
  };
  const result = (r) => ({ loinc: '2823-3', value: r.value, effective: r.effective, patient: 'P1' });
  const entries = model.placeEntries(manifest, [
    { seq: 2, t: 100, wall: '2026-01-01T09:59:00.000+00:00', kind: 'lab', sender: 'x', body: { results: [result({ value: 4.0, effective: '2026-01-01T08:00:00Z' })] } },
    { seq: 4, t: 203, wall: '2026-01-01T10:00:03.000+00:00', kind: 'lab', sender: 'x', body: { results: [result({ value: 6.4, effective: '2026-01-01T09:00:00Z' })] } },
    { seq: 5, t: 205, wall: '2026-01-01T10:00:05.000+00:00', kind: 'lab', sender: 'x', body: { results: [result({ value: 3.0, effective: '2026-01-01T07:00:00Z' })] } },
    { seq: 6, t: 206, wall: '2026-01-01T10:00:06.000+00:00', kind: 'ecg-announce', sender: 'd', body: { stream_id: 7, leads: ['I'], sample_rate: 500 } },
  ]);
  // p3 joins at 1 and leaves at 5; p2 is there while its screen is (4..6).
  const room = (t, m = manifest) => {
    const r = model.roomAt(m, t);
    return { people: [...r.participants.keys()].sort(), tracks: [...r.tracks.keys()].sort(), muted: [...r.tracks.values()].filter((x) => x.muted).map((x) => x.id) };
  };
  const labs = (t) => model.clinicalStateAt(entries, t).labs.map((r) => r.value);
  Object.assign(out, {
    duration: model.duration(manifest),
    at: entries.map((x) => x.at),
    room: [room(0.5), room(2.5), room(4.5), room(5.5)],
    layout: [model.layoutAt(manifest, 3.9).preset, model.layoutAt(manifest, 4).preset],
    labs: [labs(0), labs(2.9), labs(3), labs(6)],
    ecg: [model.clinicalStateAt(entries, 5.9).ecg_streams.length, model.clinicalStateAt(entries, 6).ecg_streams.length],
    markers: model.markers(manifest, entries).map((m) => [m.kind, m.t]),
    time: [model.formatTime(0), model.formatTime(75.4), model.formatTime(3725)],
  });
  // Carried on after a failover: the live track v1 again, from 9 s, as entry v1-s1.
  const carried = { ...manifest, tracks: [...manifest.tracks,
    { id: 'v1-s1', track_id: 'v1', segment: 1, kind: 'video', peer_id: 'p1', identity: 'i1', name: 'Dr. One', start: 9, end: 10 }],
    events: [...manifest.events, { t: 9, type: 'mute', track_id: 'v1', muted: true },
      { t: 9, type: 'layout', layout: { preset: 'speaker', main_track: 'v1', pip_tracks: [] } }] };
  out.carried = { muted: room(9.5, carried).muted, main: model.layoutAt(carried, 9.5).main_track };
  return out;
}"""


@pytest.fixture
async def result(server, people):
    page = await (await people("logic")).page(f"{server.url}/replay.html")
    return await page.evaluate(SETUP)


async def test_one_clock_steers_every_track(result):
    assert result["seeked"] == [3, 1]                    # each track at its own offset
    assert result["startedPlaying"] == [True, True, 3]   # none ready yet: the clock holds
    assert result["master"] == "audio"                   # audio leads where it has sound
    assert result["behind"] == [3.5, pytest.approx(1.1)]  # a small lag: caught up by rate
    assert result["inStep"] == 1
    assert result["jumped"] == pytest.approx(3.5)        # a large one: a seek
    assert result["fastBehind"] == pytest.approx(2 * 1.1)  # nudged around the chosen speed
    assert result["audioEnded"] == [8, True]             # its file ends: it stops, video goes on
    assert result["videoLeads"] == ["video", 8.2]
    assert result["buffering"] == 8.2
    assert result["paused"] == [True, True]


async def test_a_gap_runs_on_wall_time(result):
    assert result["gap"] == [True, True, True]


async def test_the_recording_at_a_moment(result):
    assert result["duration"] == 10
    # Before the recording (seq < from_seq), from the manifest, by the log's clock.
    assert result["at"] == [-1, 3, pytest.approx(5), pytest.approx(6)]
    assert result["room"] == [
        {"people": ["p1", "v9"], "tracks": ["v1"], "muted": []},
        {"people": ["p1", "p3", "v9"], "tracks": ["v1"], "muted": ["v1"]},
        {"people": ["p1", "p2", "p3", "v9"], "tracks": ["s2", "v1"], "muted": ["v1"]},
        {"people": ["p1", "p2", "v9"], "tracks": ["s2", "v1"], "muted": []},
    ]
    assert result["layout"] == ["grid", "presentation"]
    # The latest result per patient and code; an older one arriving later does not hide it.
    assert result["labs"] == [[4.0], [4.0], [6.4], [6.4]]
    assert result["ecg"] == [0, 1]
    assert result["markers"] == [["lab", 3], ["layout", 4], ["lab", pytest.approx(5)], ["ecg", pytest.approx(6)]]
    assert result["time"] == ["0:00", "1:15", "1:02:05"]
    # A later segment's entry stands for its live track: its mute and the layout follow.
    assert result["carried"] == {"muted": ["v1-s1"], "main": "v1-s1"}
