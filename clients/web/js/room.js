// The consult room, the screens of a multi-screen seat, and the trainee viewer.
//
//   room.html?room=R             one window: the whole layout, with controls
//   room.html?room=R&screen=1    seat screen 1: remote people, audio, controls
//   room.html?room=R&screen=2    seat screen 2: main content (screen share, surgical field, pinned track)
//   room.html?room=R&screen=3    seat screen 3: clinical data panel
//   viewer.html?room=R           trainee: receive only, never asks for camera or microphone
//
// The single window and the trainee view show clinical data in a side panel.
//
// All screens of a seat use the seat's one token (see seat.js); audio plays on
// the single window or on screen 1 only.

import { wsUrl } from './api.js';
import { ChatPanel } from './chat.js';
import { mountClinicalPanel } from './clinical-panel.js';
import { hasFiles } from './dicom-upload.js';
import { hideWaiting, kickedMessage, mountHostControls, showWaiting } from './host-controls.js';
import { icon } from './icons.js';
import { PRESETS, arrange, buildTiles, gridColumns, isPerson, mainContent } from './layout.js';
import { mountLiveIndicator } from './live-indicator.js';
import { MicLevel } from './mic-level.js';
import { mountRecordingIndicator } from './recording-indicator.js';
import { saveSeat, seatFromLocation, tokenClaims, tokenExpired } from './seat.js';
import { Session } from './session.js';
import { watchTileSizes } from './simulcast.js';
import { SpeakerDetector } from './speaker.js';
import { mountTileQuality } from './tile-quality.js';
import { TileView } from './tiles.js';
import { $, escapeHtml, toast } from './util.js';

const SCREEN_NAMES = { 1: 'People', 2: 'Main content', 3: 'Clinical data' };

const params = new URLSearchParams(location.search);
const room = params.get('room') || '';
// viewer.html is served from room.html: the path alone says which page this is.
const pageMode = location.pathname.endsWith('/viewer.html') ? 'viewer' : 'room';
const seat = room ? seatFromLocation(room) : null;

class RoomApp {
  constructor() {
    const screen = parseInt(params.get('screen') || '', 10);
    this.screen = [1, 2, 3].includes(screen) && pageMode === 'room' ? screen : null;
    this.viewer = pageMode === 'viewer';
    this.canPublish = !this.viewer && (this.screen === null || this.screen === 1) && seat.grants?.publish !== false;
    this.playsAudio = this.screen === null || this.screen === 1;
    this.seatChannel = 'BroadcastChannel' in window ? new BroadcastChannel(`telemed-seat-${room}`) : null;
    this.showsClinical = this.screen === null || this.screen === 3;
    this.session = new Session({
      wsUrl: wsUrl(), token: seat.token, screen: this.screen,
      wantTrack: (track) => this.wantTrack(track), clinical: this.showsClinical,
    });
    this.tiles = new TileView({ onPin: (trackId, pinned) => this.pin(trackId, pinned) });
    watchTileSizes($('#stage'), (trackId, w, h) => this.session.sendTileSize(trackId, w, h));
    this.detector = new SpeakerDetector();
    this.active = null;
    this.audioEls = new Map();
    this.camera = null;
    this.mic = null;
    this.micMeter = null;  // the microphone's level where the stats lack it (MicLevel)
    this.screenTrack = null;
    this.soundOn = true;
    this.renderQueued = false;
    this.wasReconnecting = false;
  }

  get isHost() {
    const me = this.session.me;
    const grants = (me && me.grants) || seat.grants || tokenClaims(seat.token).grants || {};
    return !!grants.admin;
  }

  // ---------- start ----------

  async start() {
    document.title = `${room} · ${this.viewer ? 'Trainee view' : 'Consult'} · TeleMed`;
    $('#room-name').textContent = room;
    if (this.screen) {
      const label = $('#screen-label');
      label.hidden = false;
      label.textContent = `Screen ${this.screen} · ${SCREEN_NAMES[this.screen]}`;
    } else if (this.viewer) {
      const label = $('#screen-label');
      label.hidden = false;
      label.className = 'chip chip-live';
      label.textContent = 'Live · Trainee view (receive only)';
    }
    this.buildControls();
    if (!this.viewer && (this.screen === null || this.screen === 1)) this.hostControls = mountHostControls({ session: this.session, room, onToggle: () => this.queueRender() });
    mountRecordingIndicator($('.topbar-right'), this.session, room);
    mountLiveIndicator($('.topbar-right'), this.session, room);
    this.chat = new ChatPanel({
      panel: $('#chat-panel'), log: $('#chat-log'), form: $('#chat-form'), input: $('#chat-input'),
      send: $('#chat-send'), session: this.session, onUnread: (n) => this.setBadge('ctl-chat', 'Chat', n, 'unread'),
    });
    this.chat.setReady(false);
    $('#chat-close').addEventListener('click', () => this.toggleChat(false));

    if (this.showsClinical) this.mountClinical();

    const s = this.session;
    s.addEventListener('state', () => this.queueRender());
    s.addEventListener('media', () => { this.queueRender(); this.syncAudio(); });
    s.addEventListener('status', (e) => this.onStatus(e.detail));
    s.addEventListener('token', (e) => { seat.token = e.detail; saveSeat(room, seat); });
    s.addEventListener('notice', (e) => toast(e.detail.text));
    s.addEventListener('participant', (e) => {
      const { joined, participant } = e.detail;
      if (isPerson(participant) && participant.identity !== s.me?.identity) {
        toast(`${participant.name || 'Someone'} ${joined ? 'joined' : 'left'}`);
      }
    });
    if (this.seatChannel) {
      this.seatChannel.onmessage = (e) => {
        if (e.data && e.data.type === 'leave' && this.screen && this.screen > 1) this.leave(false);
      };
    }
    window.addEventListener('resize', () => this.queueRender());
    window.addEventListener('pagehide', () => this.session.leave());

    this.showEmpty('Connecting to the consult…', '');
    if (this.canPublish) await this.acquireMedia();
    try {
      await this.session.start();
    } catch {
      return; // the status handler shows what went wrong
    }
    this.statsTimer = setInterval(() => this.pollLevels(), 400);
    mountTileQuality(() => this.session.pc, () => this.tiles.els.values());
  }

  async acquireMedia() {
    const sd = (params.get('quality') || seat.quality) === 'sd';
    const video = {
      width: { ideal: sd ? 640 : 1280 }, height: { ideal: sd ? 360 : 720 }, frameRate: { max: sd ? 15 : 30 },
      ...(seat.camera ? { deviceId: { ideal: seat.camera } } : {}),
    };
    const audio = { echoCancellation: true, noiseSuppression: true, ...(seat.microphone ? { deviceId: { ideal: seat.microphone } } : {}) };
    let stream = null;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video, audio });
    } catch {
      try {
        stream = await navigator.mediaDevices.getUserMedia({ audio });
        toast('No camera available: joining with audio only.');
      } catch {
        toast('Camera and microphone are unavailable: joining without them.');
      }
    }
    if (!stream) return;
    const name = this.displayName();
    this.mic = stream.getAudioTracks()[0] || null;
    this.camera = stream.getVideoTracks()[0] || null;
    if (this.mic) this.session.local.set('microphone', localEntry('microphone', this.mic, `${name} microphone`));
    if (this.camera) {
      this.camera.contentHint = 'motion';
      this.session.local.set('camera', localEntry('camera', this.camera, `${name} camera`));
    }
    this.updateControls();
  }

  displayName() {
    return (this.session.me && this.session.me.name) || seat.name || 'You';
  }

  // ---------- what to receive ----------

  wantTrack(track) {
    if (this.screen === 3) return false;
    if (this.screen === 2) {
      if (track.kind !== 'video') return false;
      return this.screenTwoTrackIds().has(track.id);
    }
    if (this.screen === 1) {
      const owner = this.session.participants.get(track.peer_id);
      if (owner && owner.identity === this.session.me?.identity) return false;
      return track.kind === 'audio' || track.source === 'camera';
    }
    return true;
  }

  currentTiles() {
    const s = this.session;
    const self = this.canPublish && s.me ? {
      name: this.displayName(), cameraTrackId: s.ownTrackId('camera'), micTrackId: s.ownTrackId('microphone'),
      videoMuted: !!s.local.get('camera')?.muted || !this.camera, audioMuted: !!s.local.get('microphone')?.muted || !this.mic,
      hasVideo: !!this.camera, screenTrack: this.screenTrack, screenTrackId: s.ownTrackId('screen'),
    } : null;
    return buildTiles({ me: s.me, participants: s.participants, tracks: s.tracks, self });
  }

  screenTwoTrackIds() {
    const tiles = this.currentTiles();
    const ids = new Set();
    const main = mainContent(this.session.layout, tiles);
    if (main && main.trackId) ids.add(main.trackId);
    if (this.session.layout.preset === 'surgery') {
      for (const t of arrange(this.session.layout, tiles, null).pips) if (t.trackId) ids.add(t.trackId);
    }
    return ids;
  }

  // ---------- rendering ----------

  queueRender() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      this.render();
    });
  }

  render() {
    const s = this.session;
    const layout = s.layout;
    this.renderHeader();
    this.updateControls();
    this.chat.setReady(s.dataReady);
    if (this.screen === 3 || !s.me) return;
    let tiles = this.currentTiles();
    let view;
    if (this.screen === 1) {
      const people = tiles.filter((t) => t.kind === 'person' && !t.self);
      view = { preset: 'grid', main: null, pips: [], strip: [], grid: people, selfTile: tiles.find((t) => t.key === 'self') };
    } else if (this.screen === 2) {
      const main = mainContent(layout, tiles);
      const pips = layout.preset === 'surgery' && main ? arrange(layout, tiles, null).pips.filter((t) => t !== main) : [];
      view = { preset: 'main', main, pips, strip: [], grid: [] };
    } else {
      view = arrange(layout, tiles, this.active);
    }
    const stage = $('#stage');
    stage.dataset.layout = view.preset;
    const mainEl = $('#stage-main');
    const stripEl = $('#stage-strip');
    const used = new Set();
    const canPin = this.isHost && !this.viewer;
    const place = (tile) => {
      used.add(tile.key);
      return this.tiles.render(tile, this.trackFor(tile), {
        speaking: this.active && tile.peerId === this.active && tile.kind === 'person',
        canPin, pinned: !!tile.trackId && tile.trackId === layout.main_track,
      });
    };
    const mainChildren = [];
    if (view.preset === 'grid') {
      for (const t of view.grid) mainChildren.push(place(t));
      const box = mainEl.getBoundingClientRect();
      const { cols, tileW } = gridColumns(view.grid.length, box.width || 800, box.height || 500);
      mainEl.style.setProperty('--cols', cols);
      mainEl.style.setProperty('--tile-w', `${tileW}px`);
    } else {
      mainEl.style.removeProperty('--cols');
      mainEl.style.removeProperty('--tile-w');
      if (view.main) mainChildren.push(place(view.main));
      if (view.pips.length) {
        let pips = mainEl.querySelector(':scope > .pips');
        if (!pips) { pips = document.createElement('div'); pips.className = 'pips'; }
        pips.replaceChildren(...view.pips.map(place));
        mainChildren.push(pips);
      }
    }
    if (view.selfTile) {
      const el = place(view.selfTile);
      el.classList.add('self-pip');
      mainChildren.push(el);
    }
    syncChildren(mainEl, mainChildren);
    syncChildren(stripEl, view.strip.map(place));
    this.tiles.prune(used);

    const visible = used.size - (view.selfTile ? 1 : 0);
    if (visible > 0) {
      this.hideEmpty();
    } else if (this.screen === 2) {
      this.showEmpty('No shared content right now', 'A shared screen, a surgical camera or a video the host pins appears here.');
    } else if (s.status === 'connected') {
      this.showEmpty(this.viewer ? 'Waiting for the consult to start' : 'Waiting for others to join',
        this.viewer ? 'Video appears here as soon as someone presents.' : `Share the room name “${room}” and its password with the team.`);
    }
    for (const el of mainEl.querySelectorAll('video')) if (el.srcObject && el.paused) el.play().catch(() => {});
  }

  trackFor(tile) {
    if (tile.key === 'self') return this.camera;
    if (tile.key === 'self:screen') return this.screenTrack;
    return tile.trackId ? this.session.remoteTrack(tile.trackId) : null;
  }

  renderHeader() {
    const s = this.session;
    const people = [...s.participants.values()].filter((p) => isPerson(p) && p.identity !== s.me?.identity).length
      + (s.me && !this.viewer ? 1 : 0);
    const watching = [...s.participants.values()].filter((p) => p.role === 'viewer').length + (this.viewer ? 1 : 0);
    $('#people-count').innerHTML = `${icon('users')} ${people} in consult${watching ? ` · ${watching} watching` : ''}`;
    const chip = $('#layout-chip');
    const preset = PRESETS.find((p) => p.id === s.layout.preset);
    chip.hidden = this.isHost && !this.viewer && this.screen !== 2 && this.screen !== 3 ? true : !preset;
    if (preset) chip.textContent = `Layout: ${preset.label}${s.layout.main_track ? ' · pinned' : ''}`;
  }

  showEmpty(title, text) {
    const el = $('#stage-empty');
    el.innerHTML = `<strong>${escapeHtml(title)}</strong>${text ? `<span>${escapeHtml(text)}</span>` : ''}`;
    el.hidden = false;
  }

  hideEmpty() {
    $('#stage-empty').hidden = true;
  }

  // ---------- audio ----------

  syncAudio() {
    if (!this.playsAudio) return;
    const sink = $('#audio-sink');
    const wanted = new Map();
    for (const [trackId] of this.session.recv) {
      const info = this.session.tracks.get(trackId);
      const track = this.session.remoteTrack(trackId);
      if (info && info.kind === 'audio' && track) wanted.set(trackId, track);
    }
    for (const [id, el] of this.audioEls) {
      if (!wanted.has(id)) { el.srcObject = null; el.remove(); this.audioEls.delete(id); }
    }
    for (const [id, track] of wanted) {
      let el = this.audioEls.get(id);
      if (!el) {
        el = document.createElement('audio');
        el.autoplay = true;
        el.dataset.trackId = id;
        sink.append(el);
        this.audioEls.set(id, el);
      }
      if (!el.srcObject || el.srcObject.getAudioTracks()[0] !== track) el.srcObject = new MediaStream([track]);
      el.muted = !this.soundOn;
      el.play().catch(() => this.offerSoundButton());
    }
  }

  // Browsers may refuse to start sound without a click on this page.
  offerSoundButton() {
    if ($('#sound-unlock')) return;
    const btn = document.createElement('button');
    btn.id = 'sound-unlock';
    btn.className = 'btn btn-primary sound-btn';
    btn.innerHTML = `${icon('sound')} Turn on sound`;
    btn.addEventListener('click', () => {
      btn.remove();
      for (const el of this.audioEls.values()) el.play().catch(() => {});
    });
    $('#stage').append(btn);
  }

  // ---------- active speaker ----------

  async pollLevels() {
    const s = this.session;
    if (!s.pc || !s.me) return;
    let stats;
    try { stats = await s.receiveStats(); } catch { return; }
    const levels = new Map();
    for (const [trackId, st] of stats) {
      const info = s.tracks.get(trackId);
      if (info && st.kind === 'audio' && !info.muted) levels.set(info.peer_id, Math.max(levels.get(info.peer_id) || 0, st.audioLevel));
    }
    const micEntry = s.local.get('microphone');
    if (micEntry && !micEntry.muted) levels.set(s.me.peer_id, stats.localAudioLevel ?? this.micLevel(micEntry.track));
    const { active } = this.detector.update(levels);
    if (active !== this.active) {
      this.active = active;
      this.queueRender();
    }
  }

  micLevel(track) {
    if (this.micMeter?.track !== track) {
      this.micMeter?.close();
      this.micMeter = new MicLevel(track);
    }
    return this.micMeter.level;
  }

  // ---------- layout ----------

  setPreset(preset) {
    const l = this.session.layout;
    this.session.setLayout({ preset, main_track: l.main_track || null, pip_tracks: l.pip_tracks || [] })
      .catch((err) => toast(`Layout not changed: ${err.message}`));
  }

  pin(trackId, pinned) {
    const l = this.session.layout;
    const preset = l.preset === 'grid' ? 'speaker' : l.preset;
    const layout = pinned
      ? { preset, main_track: null, pip_tracks: l.pip_tracks || [] }
      : { preset, main_track: trackId, pip_tracks: (l.pip_tracks || []).filter((id) => id !== trackId) };
    this.session.setLayout(layout).catch((err) => toast(`Could not pin: ${err.message}`));
  }

  // ---------- controls ----------

  buildControls() {
    const bar = $('#controls');
    const btn = (id, iconName, text, extra = '') =>
      `<button class="ctl" id="${id}" type="button" ${extra}>${icon(iconName)}<span>${text}</span></button>`;
    const left = [];
    const mid = [];
    const right = [];
    if (this.canPublish) {
      left.push(btn('ctl-mic', 'mic', 'Mute', 'aria-pressed="false"'));
      left.push(btn('ctl-cam', 'camera', 'Stop video', 'aria-pressed="false"'));
      left.push(btn('ctl-switch', 'switch', 'Switch camera'));
      mid.push(btn('ctl-share', 'screen', 'Share screen', 'aria-pressed="false"'));
    }
    if (this.viewer) left.push(btn('ctl-sound', 'sound', 'Sound on', 'aria-pressed="true"'));
    if (this.screen !== 2 && this.screen !== 3) mid.push(btn('ctl-chat', 'chat', 'Chat', 'aria-pressed="false"'));
    if (this.screen === null) mid.push(btn('ctl-clinical', 'heart', 'Clinical', 'aria-pressed="false" aria-controls="clinical-panel"'));
    if (this.isHost && !this.viewer && this.screen !== 2 && this.screen !== 3) {
      $('#layout-slot').innerHTML = `<div class="layout-picker" role="radiogroup" aria-label="Layout for everyone" id="layout-picker">${
        PRESETS.map((p) => `<button type="button" role="radio" data-preset="${p.id}" aria-checked="false" title="${p.label} layout for everyone">${icon(p.id)}<span>${p.label}</span></button>`).join('')}</div>`;
    }
    if (!this.viewer && (this.screen === null || this.screen === 1)) {
      mid.push(btn('ctl-screens', 'screens', 'Screens', 'popovertarget="screens-menu" aria-haspopup="true"'));
      mid.push(`<div id="screens-menu" class="menu" popover>
        <p class="menu-title">Extend this seat to more monitors</p>
        <button type="button" class="btn" id="ctl-screen2">${icon('screen')} Open screen 2 · main content</button>
        <button type="button" class="btn" id="ctl-screen3">${icon('heart')} Open screen 3 · clinical data</button>
        <p class="hint">Drag each new window to its monitor. This window keeps the people and the sound.</p></div>`);
    }
    right.push(`<button class="ctl leave" id="ctl-leave" type="button">${icon('leave')}<span>${this.screen > 1 ? 'Close screen' : 'Leave'}</span></button>`);
    bar.innerHTML = `<div class="controls-group">${left.join('')}</div><div class="controls-group">${mid.join('')}</div><div class="controls-group">${right.join('')}</div>`;

    const on = (id, fn) => { const el = $(`#${id}`); if (el) el.addEventListener('click', fn); };
    on('ctl-mic', () => this.toggleMute('microphone'));
    on('ctl-cam', () => this.toggleMute('camera'));
    on('ctl-switch', () => this.switchCamera());
    on('ctl-share', () => (this.screenTrack ? this.stopShare() : this.startShare()));
    on('ctl-chat', () => this.toggleChat());
    on('ctl-clinical', () => this.toggleClinical());
    on('ctl-sound', () => this.toggleSound());
    on('ctl-screen2', () => { $('#screens-menu').hidePopover(); this.openScreen(2); });
    on('ctl-screen3', () => { $('#screens-menu').hidePopover(); this.openScreen(3); });
    on('ctl-leave', () => this.leave(true));
    const picker = $('#layout-picker');
    if (picker) picker.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-preset]');
      if (b) this.setPreset(b.dataset.preset);
    });
    this.countCameras();
  }

  updateControls() {
    const s = this.session;
    const mic = $('#ctl-mic');
    if (mic) {
      const muted = !!s.local.get('microphone')?.muted;
      mic.disabled = !this.mic;
      mic.classList.toggle('off', muted || !this.mic);
      mic.setAttribute('aria-pressed', String(muted));
      mic.innerHTML = `${icon(muted || !this.mic ? 'mic-off' : 'mic')}<span>${!this.mic ? 'No mic' : muted ? 'Unmute' : 'Mute'}</span>`;
    }
    const cam = $('#ctl-cam');
    if (cam) {
      const muted = !!s.local.get('camera')?.muted;
      cam.disabled = !this.camera;
      cam.classList.toggle('off', muted || !this.camera);
      cam.setAttribute('aria-pressed', String(muted));
      cam.innerHTML = `${icon(muted || !this.camera ? 'camera-off' : 'camera')}<span>${!this.camera ? 'No camera' : muted ? 'Start video' : 'Stop video'}</span>`;
    }
    const sw = $('#ctl-switch');
    if (sw) {
      sw.disabled = !this.camera || (this.cameraCount || 0) < 2;
      sw.title = sw.disabled ? 'Only one camera is available' : 'Use the next camera';
    }
    const share = $('#ctl-share');
    if (share) {
      share.setAttribute('aria-pressed', String(!!this.screenTrack));
      share.querySelector('span').textContent = this.screenTrack ? 'Stop sharing' : 'Share screen';
    }
    const picker = $('#layout-picker');
    if (picker) {
      for (const b of picker.querySelectorAll('button')) b.setAttribute('aria-checked', String(b.dataset.preset === s.layout.preset));
    }
  }

  toggleMute(source) {
    const entry = this.session.local.get(source);
    if (!entry) return;
    this.session.setMuted(source, !entry.muted);
    this.queueRender();
  }

  async countCameras() {
    if (!this.canPublish) return;
    try {
      const devices = await navigator.mediaDevices.enumerateDevices();
      this.cameraCount = devices.filter((d) => d.kind === 'videoinput').length;
    } catch {
      this.cameraCount = 0;
    }
    this.updateControls();
  }

  async switchCamera() {
    if (!this.camera) return;
    const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'videoinput');
    if (devices.length < 2) return;
    const current = this.camera.getSettings().deviceId;
    const next = devices[(devices.findIndex((d) => d.deviceId === current) + 1) % devices.length];
    try {
      const sd = (params.get('quality') || seat.quality) === 'sd';
      const stream = await navigator.mediaDevices.getUserMedia({ video: {
        deviceId: { exact: next.deviceId }, width: { ideal: sd ? 640 : 1280 }, height: { ideal: sd ? 360 : 720 },
      } });
      const track = stream.getVideoTracks()[0];
      const old = this.camera;
      this.camera = track;
      await this.session.replaceTrack('camera', track);
      old.stop();
      toast(`Camera: ${next.label || 'next camera'}`);
      this.queueRender();
    } catch (err) {
      toast(`Could not switch camera: ${err.message}`);
    }
  }

  async startShare() {
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { max: 15 } }, audio: false });
    } catch {
      return; // the user cancelled the picker
    }
    const track = stream.getVideoTracks()[0];
    track.contentHint = 'detail';
    track.addEventListener('ended', () => this.stopShare());
    this.screenTrack = track;
    this.queueRender();
    try {
      await this.session.publish('screen', track, `${this.displayName()} · screen`);
    } catch (err) {
      this.screenTrack = null;
      track.stop();
      toast(`Screen sharing failed: ${err.message}`);
    }
    this.queueRender();
  }

  async stopShare() {
    const track = this.screenTrack;
    if (!track) return;
    this.screenTrack = null;
    track.stop();
    this.queueRender();
    try { await this.session.unpublish('screen'); } catch (err) { toast(`Could not stop sharing cleanly: ${err.message}`); }
  }

  toggleChat(force) {
    this.chat.toggle(force);
    const b = $('#ctl-chat');
    if (b) b.setAttribute('aria-pressed', String(this.chat.open));
    this.queueRender();
  }

  setBadge(id, label, n, what) {
    const b = $(`#${id}`);
    if (!b) return;
    let badge = b.querySelector('.count');
    if (!n) {
      if (badge) badge.remove();
      b.removeAttribute('aria-label');
      return;
    }
    if (!badge) { badge = document.createElement('span'); badge.className = 'count'; b.append(badge); }
    badge.textContent = String(n);
    b.setAttribute('aria-label', `${label}, ${n} ${what}`);
  }

  // ---------- clinical data ----------

  // Screen 3 shows it full size; the single window and the trainee view in a side
  // panel. Files dropped anywhere on the page are shared.
  mountClinical() {
    const panel = $('#clinical-panel');
    const side = this.screen === null;
    // Shared items go on the record: the server wants the publish and data grants.
    const grants = seat.grants || tokenClaims(seat.token).grants || {};
    const canShare = !this.viewer && !!(grants.publish && grants.data);
    this.clinicalNews = 0;
    // A report is a doctor's signed opinion: hosts and participants (the server checks too).
    const role = seat.role || tokenClaims(seat.token).role;
    this.clinical = mountClinicalPanel(panel, {
      session: this.session, room, canShare, canReport: canShare && ['host', 'participant'].includes(role),
      onNews: (text) => {
        if (!panel.hidden) return;
        toast(text);
        this.setBadge('ctl-clinical', 'Clinical', ++this.clinicalNews, 'new');
      },
      onClose: side ? () => this.toggleClinical(false) : null,
    });
    if (side) {
      panel.classList.add('clinical-side');
    } else {
      $('#stage').hidden = true;
      panel.hidden = false;
    }
    if (!canShare) return;
    document.addEventListener('dragover', (e) => { if (hasFiles(e)) e.preventDefault(); });
    document.addEventListener('drop', (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      if (side) this.toggleClinical(true);
      this.clinical.share([...e.dataTransfer.files]);
    });
  }

  toggleClinical(force) {
    const panel = $('#clinical-panel');
    panel.hidden = force === undefined ? !panel.hidden : !force;
    const b = $('#ctl-clinical');
    if (b) b.setAttribute('aria-pressed', String(!panel.hidden));
    if (!panel.hidden) {
      this.clinicalNews = 0;
      this.setBadge('ctl-clinical', 'Clinical', 0);
    }
    this.queueRender();
  }

  toggleSound() {
    this.soundOn = !this.soundOn;
    for (const el of this.audioEls.values()) el.muted = !this.soundOn;
    const b = $('#ctl-sound');
    b.setAttribute('aria-pressed', String(this.soundOn));
    b.innerHTML = `${icon(this.soundOn ? 'sound' : 'sound-off')}<span>${this.soundOn ? 'Sound on' : 'Sound off'}</span>`;
  }

  openScreen(n) {
    const url = `room.html?room=${encodeURIComponent(room)}&screen=${n}`;
    window.open(url, `telemed-${room}-screen-${n}`, 'popup,width=1280,height=800');
    if (this.screen === null) {
      // This window becomes screen 1 (people and sound); content moves to screen 2.
      this.screen = 1;
      history.replaceState(null, '', `room.html?room=${encodeURIComponent(room)}&screen=1`);
      const label = $('#screen-label');
      label.hidden = false;
      label.textContent = `Screen 1 · ${SCREEN_NAMES[1]}`;
      this.session.refreshSubscriptions();
      this.queueRender();
    }
  }

  // ---------- status ----------

  onStatus({ status, reason }) {
    const net = $('#net-status');
    net.dataset.state = status;
    net.textContent = { connecting: 'Connecting', waiting: 'Waiting', connected: 'Connected', reconnecting: 'Reconnecting', failed: 'Disconnected', denied: 'Disconnected', kicked: 'Disconnected', left: 'Left' }[status] || status;
    const banner = $('#banner');
    if (status !== 'waiting') hideWaiting();
    if (status === 'waiting') {
      showWaiting(room, seat.name);
    } else if (status === 'denied') {
      this.ended('You were not let in', reason);
    } else if (status === 'reconnecting') {
      this.wasReconnecting = true;
      banner.className = 'banner';
      banner.innerHTML = '<span class="spinner" aria-hidden="true"></span><span>Reconnecting… The connection was interrupted. Restoring audio and video.</span>';
      banner.hidden = false;
    } else if (status === 'connected') {
      banner.hidden = true;
      if (this.wasReconnecting) toast('Reconnected');
      this.wasReconnecting = false;
    } else if (status === 'failed') {
      const expired = /expired/i.test(reason || '');
      banner.className = 'banner banner-error';
      banner.innerHTML = `<span>${escapeHtml(expired ? 'Your session has expired.' : `Could not connect: ${reason || 'the server refused the connection'}.`)}</span>
        <a class="btn" href="index.html?room=${encodeURIComponent(room)}&reason=expired">Back to the lobby</a>`;
      banner.hidden = false;
      this.showEmpty('Not connected', 'Join again from the lobby.');
    } else if (status === 'kicked') {
      const [title, text] = kickedMessage(reason) || ['You were disconnected', reason === 'resumed elsewhere'
        ? 'This seat was opened in another window, which now carries the call.'
        : `Reason: ${reason}.`];
      this.ended(title, text);
    }
    this.queueRender();
  }

  leave(userAction) {
    if (userAction && this.seatChannel && (this.screen === null || this.screen === 1)) {
      this.seatChannel.postMessage({ type: 'leave' });
    }
    clearInterval(this.statsTimer);
    this.session.leave();
    if (this.screenTrack) this.screenTrack.stop();
    for (const el of this.audioEls.values()) el.srcObject = null;
    if (this.screen > 1) {
      window.close();
    }
    this.ended('You have left the consult', 'Thank you. You can rejoin while the consult is running.');
  }

  ended(title, text) {
    clearInterval(this.statsTimer);
    $('#banner').hidden = true;
    $('#room-body').hidden = true;
    $('#controls').hidden = true;
    let box = $('#ended');
    if (!box) {
      box = document.createElement('section');
      box.id = 'ended';
      box.className = 'ended';
      document.body.append(box);
    }
    box.innerHTML = `<div class="card"><h2>${escapeHtml(title)}</h2><p>${escapeHtml(text)}</p>
      <div class="form-actions centered">
        <a class="btn btn-primary" href="${location.pathname.split('/').pop()}?room=${encodeURIComponent(room)}${this.screen ? `&screen=${this.screen}` : ''}">Rejoin</a>
        <a class="btn" href="index.html?room=${encodeURIComponent(room)}">Back to the lobby</a></div></div>`;
  }

  // ---------- diagnostics (also used by the browser tests) ----------

  async videoStats() {
    const stats = await this.session.receiveStats();
    return [...document.querySelectorAll('#stage .tile')].map((el) => {
      const video = el.querySelector('video');
      const st = stats.get(el.dataset.trackId) || {};
      return {
        key: el.dataset.key, trackId: el.dataset.trackId, kind: el.dataset.kind, source: el.dataset.source,
        self: el.classList.contains('self'), name: el.querySelector('.label').textContent,
        videoWidth: video.videoWidth, playing: !!video.srcObject && !video.paused && !video.hidden,
        framesDecoded: st.framesDecoded || 0,
        region: el.closest('.pips') ? 'pip' : el.closest('#stage-strip') ? 'strip' : el.classList.contains('self-pip') ? 'self' : 'main',
      };
    });
  }
}

function localEntry(source, track, label) {
  return { source, track, label, transceiver: null, trackId: null, muted: false, rejected: null };
}

// Put `children` into `parent` in order, moving only what is out of place so
// playing videos are not re-inserted needlessly.
function syncChildren(parent, children) {
  children.forEach((child, i) => {
    if (parent.children[i] !== child) parent.insertBefore(child, parent.children[i] || null);
  });
  while (parent.children.length > children.length) parent.lastElementChild.remove();
}

// ---------- bootstrap ----------

function redirectToLobby(reason) {
  const role = pageMode === 'viewer' ? '&role=viewer' : '';
  location.replace(`index.html?room=${encodeURIComponent(room)}&reason=${reason}${role}`);
}

if (!room || !seat) {
  redirectToLobby('signin');
} else if (tokenExpired(seat.token)) {
  redirectToLobby('expired');
} else if (pageMode === 'room' && seat.role === 'viewer') {
  location.replace(`viewer.html?room=${encodeURIComponent(room)}`);
} else {
  const app = new RoomApp();
  window.telemed = app; // for diagnostics and the browser tests
  app.start();
}
