// The trainee page: the room's composited program over LL-HLS (hls.js, served by this
// server; Safari plays it natively), a latency readout, and the read-only clinical
// panel, fed by a receive-only session (data channels, no media).
//
//   watch.html?room=R#token=T     (a viewer's token; the page gets a signed HLS link)

import { mountClinicalPanel } from './clinical-panel.js';
import { delayedSession } from './delayed-session.js';
import { saveSeat, seatFromLocation, tokenClaims, tokenExpired } from './seat.js';
import { Session } from './session.js';
import { $ } from './util.js';
import { VodList } from './vod-list.js';
import { wsUrl } from './api.js';
import Hls from '../vendor/node_modules/hls.js/dist/hls.min.mjs';

const room = new URLSearchParams(location.search).get('room') || '';
const seat = room ? seatFromLocation(room) : null;

class WatchApp {
  constructor() {
    this.video = $('#program');
    this.hls = null;
    this.live = { state: 'stopped', viewers: 0 };
    this.session = new Session({ wsUrl: wsUrl(), token: seat.token, wantTrack: () => false, clinical: true });
    this.vod = new VodList($('#vod'), {
      room, token: () => seat.token, canEdit: !!(tokenClaims(seat.token).grants || {}).admin,
      onPlay: (url) => this.load(url, false), seek: (t) => { this.video.currentTime = t; },
      now: () => this.video.currentTime,
    });
  }

  async start() {
    document.title = `${room} · Live teaching · TeleMed`;
    $('#room-name').textContent = room;
    // The panel follows the picture: events reach it as late as the video is behind.
    this.clinicalSession = delayedSession(this.session, () => this.behind() ?? 0);
    mountClinicalPanel($('#clinical-panel'), { session: this.clinicalSession, room, canShare: false });
    const s = this.session;
    s.addEventListener('token', (e) => { seat.token = e.detail; saveSeat(room, seat); });
    s.addEventListener('live', (e) => this.onLive(e.detail));
    s.addEventListener('status', (e) => {
      if (e.detail.status === 'failed' || e.detail.status === 'kicked') this.note(e.detail.reason || 'Disconnected');
    });
    setInterval(() => this.showLatency(), 500);
    await s.start();
    this.onLive(s.liveState || this.live);
  }

  onLive(live) {
    const started = live.state === 'started' && this.live.state !== 'started';
    this.live = live;
    const chip = $('#live-state');
    chip.dataset.state = live.state;
    chip.textContent = live.state === 'started' ? 'Live' : 'Not live';
    $('#viewers').textContent = live.state === 'started' ? `${live.viewers} watching` : '';
    $('#viewers').hidden = live.state !== 'started';
    if (started || (live.state === 'started' && !this.hls && !this.native)) this.play();
    if (live.state !== 'started') {
      this.note('The room is not live. The stream starts when the host goes live.');
      this.vod.refresh();
    }
  }

  async play() {
    const response = await fetch(`/api/rooms/${encodeURIComponent(room)}/live/link`, {
      method: 'POST', headers: { Authorization: `Bearer ${seat.token}` },
    });
    if (!response.ok) {
      this.note((await response.json().catch(() => ({}))).error || 'Cannot open the stream.');
      return;
    }
    const { master_url: url } = await response.json();
    this.load(url, true); // the multivariant playlist: hls.js picks the rendition (ABR)
  }

  // A live playlist (at the live edge, retried on failure) or a kept one (VOD, seekable).
  load(url, live) {
    this.note('');
    this.playingLive = live;
    if (this.hls) this.hls.destroy();
    this.hls = null;
    if (Hls.isSupported()) {
      // Live: aims at 1 segment (1 s, our part hold-back) behind the edge, speeds up a
      // little when behind, and jumps ahead when more than 4 behind (a slow start).
      // No worker: the CSP allows no blob: scripts, and fMP4 needs no transmuxing.
      // No metadata cues: the page shows the clinical marks itself, and hls.js's cue track
      // (a data: URL) is outside the CSP's media sources.
      const base = { enableWorker: false, enableDateRangeMetadataCues: false, enableID3MetadataCues: false,
        enableEmsgMetadataCues: false };
      this.hls = new Hls(live ? {
        ...base, lowLatencyMode: true, backBufferLength: 30, maxLiveSyncPlaybackRate: 1.5,
        liveSyncDurationCount: 1, liveMaxLatencyDurationCount: 4,
      } : base);
      this.hls.on(Hls.Events.ERROR, (_, data) => {
        if (!data.fatal) return;
        this.note(`Playback error: ${data.details}; retrying…`);
        this.hls.destroy();
        this.hls = null;
        if (live) setTimeout(() => { if (this.live.state === 'started' && !this.hls) this.play(); }, 2000);
      });
      this.hls.loadSource(url);
      this.hls.attachMedia(this.video);
    } else if (this.video.canPlayType('application/vnd.apple.mpegurl')) {
      this.native = true; // Safari: LL-HLS natively
      this.video.src = url;
    } else {
      this.note('This browser cannot play HLS.');
      return;
    }
    this.video.play().catch(() => this.note('Press play to start.'));
  }

  // Seconds the picture is behind the operating room, by the program clock
  // (EXT-X-PROGRAM-DATE-TIME); null when not playing live.
  behind() {
    const date = this.hls ? this.hls.playingDate : this.video.getStartDate?.();
    if (!this.playingLive || !date || Number.isNaN(date.getTime()) || this.video.paused) return null;
    return (Date.now() - date.getTime()) / 1000;
  }

  // The readout: behind the room (program clock), and behind the playlist's live edge as
  // hls.js measures it.
  showLatency() {
    const el = $('#latency');
    const behind = this.behind();
    if (behind === null) {
      el.textContent = 'Latency –';
      return;
    }
    el.textContent = `Latency ${behind.toFixed(1)} s`;
    el.dataset.seconds = behind.toFixed(2);
    if (this.hls && Number.isFinite(this.hls.latency)) el.title = `${this.hls.latency.toFixed(1)} s behind the live edge`;
  }

  note(text) {
    $('#note').textContent = text;
  }
}

if (!room || !seat || tokenExpired(seat.token)) {
  location.replace(`index.html?room=${encodeURIComponent(room)}&reason=signin&role=viewer`);
} else {
  const app = new WatchApp();
  window.telemed = app; // for diagnostics and the browser tests
  app.start();
}
