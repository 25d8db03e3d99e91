// Replay of a recorded consult or operation (docs/signaling.md, "Recordings").
//
//   replay.html?room=R                  the room's recordings (hosts, or the access grant)
//   replay.html?room=R&recording=ID     one recording: every track in step, placed as
//                                       the recorded layout said, the clinical panel as
//                                       it was at each moment, markers to jump to
//
// The token is the room's seat (seat.js: the token of the consult page, or #token=
// in the link). Media plays from short-lived signed links the manifest hands out,
// with Range requests, so seeking fetches only what it needs.

import { ApiError, getRecording, listRecordings, recordingClinical, recordingEcg, recordingLinks } from './api.js';
import { mountClinicalPanel } from './clinical-panel.js';
import { ReplayClock } from './replay-clock.js';
import { ReplayEcg } from './replay-ecg.js';
import { clinicalStateAt, duration, formatTime, layoutAt, markers, placeEntries, roomAt } from './replay-model.js';
import { ReplayStage } from './replay-stage.js';
import { ReplayTimeline } from './replay-timeline.js';
import { seatFromLocation } from './seat.js';
import { $, escapeHtml } from './util.js';

const params = new URLSearchParams(location.search);
const room = params.get('room') || '';
const recordingId = params.get('recording') || '';
const RENEW_AFTER_MS = 10_000; // at most one link renewal per track in this time
const CARDS = { dicom: '.clinical-images', lab: '.clinical-labs', 'ecg-announce': '.clinical-ecg' };

function fail(text) {
  const banner = $('#banner');
  banner.textContent = text;
  banner.hidden = false;
}

function explain(err) {
  if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
    return `${err.message}. Recordings open for the room's hosts, or with a link that grants access.`;
  }
  return err.message || String(err);
}

async function showList(token) {
  const { recordings = [] } = await listRecordings(room, token);
  const list = $('#recording-list');
  list.hidden = false;
  $('#recording-list-empty').hidden = recordings.length > 0;
  $('#recording-items').innerHTML = recordings.map((r) => {
    const started = r.started_at ? new Date(r.started_at).toLocaleString() : '';
    const length = r.started_at && r.stopped_at ? ` · ${formatTime((Date.parse(r.stopped_at) - Date.parse(r.started_at)) / 1000)}` : '';
    const by = r.by ? ` · started by ${escapeHtml(r.by.name || r.by.identity || '')}` : '';
    const href = `replay.html?room=${encodeURIComponent(room)}&recording=${encodeURIComponent(r.id)}`;
    return `<li><a class="recording-item" href="${href}" data-id="${escapeHtml(r.id)}">
      <strong>${escapeHtml(started || r.id)}</strong>
      <span>${escapeHtml(r.state || '')}${length}${by}</span></a></li>`;
  }).join('');
}

class ReplayApp {
  constructor(token) {
    this.token = token;
    this.videos = new Map(); // track id -> <video>
    this.media = new Map();  // track id -> <video>|<audio>
    this.renewedAt = new Map();
    this.shownSeq = -1;
    this.clinicalKey = '';
  }

  async start() {
    const reply = await getRecording(room, recordingId, this.token);
    const manifest = reply.recording || reply;
    this.manifest = manifest;
    const [links, clinical] = await Promise.all([
      manifest.tracks.every((t) => t.url) ? null : recordingLinks(room, recordingId, this.token),
      recordingClinical(room, recordingId, this.token),
    ]);
    this.entries = placeEntries(manifest, clinical.entries || []);
    const started = manifest.started_at ? new Date(manifest.started_at) : null;
    $('#replay-title').textContent = `${room} · recording${started ? ` of ${started.toLocaleString()}` : ''}`;
    document.title = `${room} · Replay · TeleMed`;
    const subtitle = $('#replay-subtitle');
    subtitle.hidden = false;
    subtitle.textContent = `${manifest.state || ''}${manifest.by ? ` · started by ${manifest.by.name || manifest.by.identity}` : ''}`;

    this.clock = new ReplayClock(duration(manifest));
    for (const track of manifest.tracks) {
      const el = document.createElement(track.kind === 'audio' ? 'audio' : 'video');
      el.dataset.trackId = track.id;
      if (track.kind === 'audio') {
        $('#audio-sink').append(el);
      } else {
        el.muted = true; // sound comes from the audio tracks
        el.playsInline = true;
        this.videos.set(track.id, el);
      }
      el.addEventListener('error', () => this.renew(track.id));
      el.src = track.url || links.tracks[track.id];
      this.media.set(track.id, el);
      this.clock.add(el, { start: track.start || 0, end: track.end ?? null, kind: track.kind });
    }
    this.stage = new ReplayStage($('#stage'), this.videos);
    // The room's clinical panel, fed the state of each moment as `clinical-state`.
    this.feed = new EventTarget();
    this.feed.freshToken = async () => this.token;
    this.panel = $('#clinical-panel');
    mountClinicalPanel(this.panel, { session: this.feed, room, canShare: false, replay: true });
    this.ecg = new ReplayEcg(this.feed, (seq) => recordingEcg(room, recordingId, seq, this.token));
    this.seeked = true;
    this.timeline = new ReplayTimeline($('#replay-controls'), this.clock, markers(manifest, this.entries));
    $('#replay-body').hidden = false;
    $('#replay-controls').hidden = false;
    this.clock.addEventListener('seek', () => { this.seeked = true; });
    this.clock.addEventListener('change', () => this.update());
    this.clock.seek(0);
    this.loop = this.loop.bind(this);
    requestAnimationFrame(this.loop);
  }

  loop() {
    this.clock.tick();
    this.update();
    requestAnimationFrame(this.loop);
  }

  update() {
    const t = this.clock.time;
    this.stage.render(layoutAt(this.manifest, t), roomAt(this.manifest, t));
    this.timeline.update();
    const state = clinicalStateAt(this.entries, t);
    const key = `${state.seq}|${state.dicom.length}|${state.labs.length}|${state.ecg_streams.length}|${state.reports.length}`;
    const seeked = this.seeked;
    this.seeked = false;
    if (seeked && state.ecg_streams.length) {
      // Fresh strips: a strip's trace only moves forward.
      this.feed.dispatchEvent(new CustomEvent('data', { detail: { ...state, ecg_streams: [] } }));
      this.clinicalKey = '';
    }
    if (key !== this.clinicalKey) {
      this.clinicalKey = key;
      this.feed.dispatchEvent(new CustomEvent('data', { detail: state }));
      this.panel.dataset.seq = String(state.seq);
      // An image shared at this moment opens, as it did for those in the room.
      const latest = state.dicom[state.dicom.length - 1];
      if (latest && latest.seq > this.shownSeq) {
        this.panel.querySelector(`.dicom-item[data-sha256="${latest.sha256}"]`)?.click();
      }
      this.shownSeq = latest ? latest.seq : -1;
      // Bring what just happened into view: the panel holds more than fits.
      const newest = this.entries.filter((x) => x.at <= t + 0.05 && CARDS[x.kind]).pop();
      if (newest && newest.at >= 0) this.panel.querySelector(CARDS[newest.kind])?.scrollIntoView({ block: 'nearest' });
    }
    this.ecg.advance(state.ecg_streams, t, seeked);
  }

  // A signed link expired (or the file grew past what the element knew): fresh
  // links, and the element resumes where it was.
  async renew(trackId) {
    const last = this.renewedAt.get(trackId) || 0;
    if (Date.now() - last < RENEW_AFTER_MS) return;
    this.renewedAt.set(trackId, Date.now());
    try {
      const { tracks } = await recordingLinks(room, recordingId, this.token);
      const el = this.media.get(trackId);
      el.src = tracks[trackId];
      el.addEventListener('loadedmetadata', () => this.clock.seek(this.clock.time), { once: true });
    } catch (err) {
      fail(`This recording can no longer be played: ${explain(err)}`);
    }
  }

  // For tests and diagnostics: each track's element state.
  stats() {
    return [...this.media.entries()].map(([id, el]) => {
      const quality = el.getVideoPlaybackQuality ? el.getVideoPlaybackQuality() : null;
      return {
        trackId: id, kind: el.tagName.toLowerCase(), currentTime: el.currentTime, paused: el.paused, playbackRate: el.playbackRate,
        readyState: el.readyState, networkState: el.networkState, seeking: el.seeking,
        error: el.error ? `${el.error.code} ${el.error.message}` : null,
        framesDecoded: quality ? quality.totalVideoFrames : null,
        videoWidth: el.videoWidth || 0, placed: !!el.closest('#stage'), hidden: el.hidden,
      };
    });
  }
}

async function main() {
  if (!room) {
    fail('No room given: open a replay from the room page, or as replay.html?room=NAME.');
    return;
  }
  const seat = seatFromLocation(room);
  if (!seat || !seat.token) {
    fail('No sign-in for this room in this browser: join the room as a host first, or open a link that carries a token.');
    return;
  }
  try {
    if (!recordingId) {
      $('#replay-title').textContent = `${room} · recordings`;
      await showList(seat.token);
      return;
    }
    const back = $('#replay-back');
    back.href = `replay.html?room=${encodeURIComponent(room)}`;
    back.hidden = false;
    const app = new ReplayApp(seat.token);
    window.telemedReplay = app;
    await app.start();
  } catch (err) {
    fail(`The recording could not be opened: ${explain(err)}`);
  }
}

main();
