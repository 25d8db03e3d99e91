// A seat's live session: one WebSocket and one RTCPeerConnection, following the
// protocol in docs/signaling.md. The client always offers; each offer states the
// whole wanted picture as two maps keyed by mid (`publish`, `subscribe`).
// Offers are serialized: one in flight, at most one more queued behind it.
//
// Events (CustomEvent.detail):
//   status  {status, reason}   connecting | waiting | connected | reconnecting | failed | denied | kicked | left
//   host    message            a host control happened (knock, room-locked, participant-muted, ...)
//   state   {}                 participants, tracks or layout changed
//   media   {}                 which remote tracks are received changed
//   data    message            a message on the `control` data channel, and the
//                              `clinical-state` the server sends on the WebSocket
//   ecg     ArrayBuffer        one binary frame on the `ecg` data channel
//   notice  {level, text}      something the user should see

import { tokenExpired } from './seat.js';
import { Signaling, SignalingError } from './signaling.js';
import { sendOptions } from './simulcast.js';

const GATHER_WAIT_MS = 1500;
const DISCONNECTED_GRACE_MS = 2500;
const ONLINE_PROBE_MS = 1500;  // a live path answers a ping well within this
const CONNECT_TIMEOUT_MS = 15000;
const MAX_MOVES = 3;  // redirects to the server hosting the room, per join
const FATAL_CODES = new Set(['unauthorized', 'forbidden', 'not-found', 'room-locked', 'removed', 'denied']);
// Host controls (docs/signaling.md): what they change here, and the event pages follow.
const HOST_EVENTS = new Set(['knock', 'knock-withdrawn', 'room-locked', 'participant-removed', 'participant-muted', 'consult-ended']);

// A subscription reuses an inactive recvonly transceiver of its kind, so that a
// long consult where screens are shared and stopped many times keeps a bounded
// SDP (the server carries the m-line's sequence numbers over to the new track).
// `window.telemedConfig` may override these before the page loads (the browser
// tests use it to exercise both paths).
export const config = {
  reuseInactiveTransceivers: true,
  subscribeInFirstOffer: true,
  simulcast: true,
  videoCodec: null,  // 'h264' or 'vp8': what our video is sent as, if the browser has it
  ...(globalThis.telemedConfig || {}),
};

// Puts `name` first in the transceiver's codec list, so the server's answer picks it.
function preferCodec(transceiver, name) {
  const codecs = globalThis.RTCRtpReceiver?.getCapabilities?.(transceiver.receiver.track.kind)?.codecs;
  if (!codecs || !transceiver.setCodecPreferences) return;
  const wanted = codecs.filter((c) => c.mimeType.toLowerCase() === `video/${name.toLowerCase()}`);
  if (wanted.length) transceiver.setCodecPreferences([...wanted, ...codecs.filter((c) => !wanted.includes(c))]);
}

export class Session extends EventTarget {
  // `clinical`: also open the `bulk` and `ecg` channels (pages that show or share
  // clinical data; the others would only receive ECG frames they drop).
  constructor({ wsUrl, token, screen = null, wantTrack = () => true, clinical = false }) {
    super();
    this.wsUrl = wsUrl;
    this.token = token;
    this.screen = screen;
    this.wantTrack = wantTrack;
    this.clinical = clinical;
    this.me = null;
    this.resumeSecret = null;
    this.participants = new Map();
    this.tracks = new Map();
    this.layout = { preset: 'grid', main_track: null, pip_tracks: [], version: 0 };
    this.locked = false;
    this.waiting = new Map(); // peer id -> participant knocking (hosts only)
    this.recording = null; // {id, by, started_at} while the room is recorded
    this.local = new Map();   // source -> {source, label, track, transceiver, trackId, muted}
    this.recv = new Map();    // remote track id -> transceiver
    this.live = new Set();    // remote track ids the last answer accepted
    this.refused = new Set(); // remote track ids the server rejected; not asked for again
    this.sendTransceivers = new WeakSet();
    this.status = 'idle';
    this.closed = false;
    this.generation = 0;
    this.sig = null;
    this.pc = null;
    this.control = null;
    this.bulk = null;
    this.ecg = null;
    this.negotiating = null;
    this.negotiateAgain = false;
    this.recovering = false;
    this.lastError = null;
  }

  // ---------- lifecycle ----------

  async start() {
    // Back online after being offline may be a new network, on which the old socket
    // hangs on for a while: resume now (docs/resume.md). But "online" also fires when
    // any interface comes up (a VPN, a container's bridge), so only if our path is hurt.
    this._onOnline = () => this._checkPath();
    window.addEventListener('online', this._onOnline);
    this._setStatus('connecting');
    this.recovering = true;
    let retry = false;
    try {
      await this._connect(null);
      this._setStatus('connected');
    } catch (err) {
      this.lastError = err;
      if (FATAL_CODES.has(err.code) || this.closed) {
        this._fail(err);
        throw err;
      }
      retry = true;
    } finally {
      this.recovering = false;
    }
    if (retry) this._recover('signaling');
  }

  leave() {
    if (this.closed) return;
    this.closed = true;
    window.removeEventListener('online', this._onOnline);
    try { this.sig && this.sig.send({ type: 'leave' }); } catch { /* already gone */ }
    this._teardown();
    this._releaseDevices();
    this._setStatus('left');
  }

  // Refused for good (denied, removed, locked out, bad token): nothing is sent any
  // more, so the camera and microphone are released at once.
  _fail(err) {
    this.closed = true;
    window.removeEventListener('online', this._onOnline);
    this._teardown();
    this._releaseDevices();
    this._setStatus(err.code === 'denied' ? 'denied' : 'failed', err.message);
  }

  _releaseDevices() {
    for (const entry of this.local.values()) entry.track && entry.track.stop();
  }

  // Another server hosts the room (docs/multinode.md): join there with the same token.
  // Only this once: a later reconnect starts at the entry address again, which sends us
  // to whichever server hosts the room by then.
  async _follow(moved, sig, resume) {
    this.moves = (this.moves || 0) + 1;
    if (this.moves > MAX_MOVES) throw new SignalingError('moved', 'The servers kept sending us elsewhere.');
    this.generation++;  // the old socket's close is not a lost connection
    sig.close();
    this.movedTo = moved.url.replace(/^http/, 'ws') + '/ws';
    return this._connect(resume);
  }

  async _connect(resume) {
    const gen = ++this.generation;
    const sig = new Signaling(this.movedTo || this.wsUrl);
    this.movedTo = null;
    this.sig = sig;
    await sig.open();
    sig.addEventListener('message', (e) => gen === this.generation && this._onMessage(e.detail));
    sig.addEventListener('close', () => gen === this.generation && this._recover('signaling'));
    const join = { type: 'join', token: this.token };
    if (this.screen) join.screen = this.screen;
    if (resume) {
      join.resume = resume.peerId;
      join.resume_secret = resume.secret;
    }
    let joined = await sig.request(join, 'joined');
    if (joined.type === 'moved') return this._follow(joined, sig, resume);
    if (joined.type === 'waiting') {
      this._setStatus('waiting');
      joined = await admission(sig);
    }
    if (gen !== this.generation) throw new SignalingError('superseded', 'superseded');
    this.moves = 0;
    this._applyJoined(joined);
    this._keepTokenFresh(joined.token_expires_at, gen);
    this._createPeerConnection(joined.ice_servers || [], gen);
    for (const entry of this.local.values()) this._attachLocal(entry);
    // With subscribeInFirstOffer off, the first offer carries only what we publish
    // and the data channel; subscriptions follow in a second offer.
    this.holdSubscriptions = !config.subscribeInFirstOffer;
    try {
      await this.negotiate();
    } finally {
      this.holdSubscriptions = false;
    }
    if (this._wantedTrackIds().size) await this.negotiate();
    if (!(await this._waitConnected(CONNECT_TIMEOUT_MS))) {
      throw new SignalingError('ice-timeout', 'The media connection could not be established.');
    }
    for (const entry of this.local.values()) if (entry.muted) this._sendMute(entry);
  }

  _teardown() {
    this.generation++;
    clearTimeout(this.disconnectTimer);
    clearTimeout(this.tokenTimer);
    if (this.sig) this.sig.close();
    if (this.pc) {
      this.pc.onconnectionstatechange = null;
      this.pc.onicecandidate = null;
      this.pc.close();
    }
    this.sig = null;
    this.pc = null;
    this.control = null;
    this.bulk = null;
    this.ecg = null;
    this.recv.clear();
    this.live.clear();
    this.negotiating = null;
    this.negotiateAgain = false;
    this.dispatchEvent(new CustomEvent('media'));
  }

  // ---------- recovery ----------

  // Resume (docs/resume.md): a new socket and peer connection take our seat over with
  // the resume secret: the same peer id, our tracks under their ids (the offer names
  // them), the same subscriptions; the others only see us "reconnecting" meanwhile.
  // The server (aiortc) cannot restart ICE, so a new peer connection it is, at once.
  // A seat gone past the grace period comes back as a fresh join.
  async _recover(reason) {
    if (this.recovering || this.closed || this.status === 'kicked') return;
    this.recovering = true;
    this._setStatus('reconnecting', reason);
    try {
      let delay = 250;
      while (!this.closed) {
        // Only this session was given the secret; without it the server refuses the resume.
        const resume = this.me && this.resumeSecret
          ? { peerId: this.me.peer_id, secret: this.resumeSecret } : null;
        this._teardown();
        this.moves = 0;  // each attempt may be moved anew (the host may have died meanwhile)
        try {
          await this._connect(resume);
          this._setStatus('connected');
          return;
        } catch (err) {
          this.lastError = err;
          console.info(`telemed: rejoin failed (${err.code || err.name}): ${err.message}`);
          if (FATAL_CODES.has(err.code)) {
            this._fail(err);
            return;
          }
        }
        await untilRetry(delay);
        // Not longer: a host that died is replaced within seconds (docs/multinode.md).
        delay = Math.min(delay * 2, 1000);
      }
    } finally {
      this.recovering = false;
    }
  }

  async _checkPath() {
    const { sig, pc } = this;
    if (this.status !== 'connected' || !sig) return;
    const fine = (await sig.answers(ONLINE_PROBE_MS)) && pc.connectionState === 'connected';
    if (!fine && sig === this.sig && this.status === 'connected') this._recover('network');
  }

  _waitConnected(ms) {
    const pc = this.pc;
    if (!pc) return Promise.resolve(false);
    if (pc.connectionState === 'connected') return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => { pc.removeEventListener('connectionstatechange', check); resolve(false); }, ms);
      const check = () => {
        if (pc.connectionState === 'connected' || pc.connectionState === 'failed' || pc.connectionState === 'closed') {
          clearTimeout(timer);
          pc.removeEventListener('connectionstatechange', check);
          resolve(pc.connectionState === 'connected');
        }
      };
      pc.addEventListener('connectionstatechange', check);
    });
  }

  // ---------- peer connection ----------

  _createPeerConnection(iceServers, gen) {
    const pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle' });
    this.pc = pc;
    this.offerSent = false;
    this.sdpCandidates = new Set();
    pc.onicecandidate = (e) => {
      if (gen !== this.generation || !this.offerSent || !this.sig || !this.sig.isOpen) return;
      const c = e.candidate;
      if (c && this.sdpCandidates.has(c.candidate)) return;
      if (!c && this.sdpComplete) return;
      try {
        this.sig.send({ type: 'candidate', candidate: c ? c.candidate : '', sdpMid: c ? c.sdpMid : null, sdpMLineIndex: c ? c.sdpMLineIndex : null });
      } catch { /* the socket is going; recovery handles it */ }
    };
    pc.onconnectionstatechange = () => {
      if (gen !== this.generation) return;
      const state = pc.connectionState;
      if (state === 'connected') {
        clearTimeout(this.disconnectTimer);
        this.disconnectTimer = null;
      } else if (state === 'disconnected') {
        clearTimeout(this.disconnectTimer);
        this.disconnectTimer = setTimeout(() => {
          if (gen === this.generation && pc.connectionState !== 'connected') this._recover('ice');
        }, DISCONNECTED_GRACE_MS);
      } else if (state === 'failed') {
        this._recover('ice');
      }
    };
    // The control channel is opened before the first offer, as the protocol asks.
    const control = pc.createDataChannel('control', { ordered: true });
    control.onmessage = (e) => {
      let message;
      try { message = JSON.parse(e.data); } catch { return; }
      this.dispatchEvent(new CustomEvent('data', { detail: message }));
    };
    control.onopen = () => this.dispatchEvent(new CustomEvent('state'));
    this.control = control;
    if (this.clinical) this._createClinicalChannels(pc);
  }

  // docs/signaling.md "Clinical data": `bulk` carries our DICOM chunks; `ecg` is
  // unordered so that one lost packet delays only its own frame.
  _createClinicalChannels(pc) {
    this.bulk = pc.createDataChannel('bulk', { ordered: true });
    this.bulk.binaryType = 'arraybuffer';
    const ecg = pc.createDataChannel('ecg', { ordered: false });
    ecg.binaryType = 'arraybuffer';
    ecg.onmessage = (e) => {
      if (e.data instanceof ArrayBuffer) this.dispatchEvent(new CustomEvent('ecg', { detail: e.data }));
    };
    this.ecg = ecg;
  }

  // ---------- negotiation ----------

  // Serialized: while an offer is in flight, further calls mark "again" and share
  // the running promise; the loop runs once more with the newest wanted picture.
  negotiate() {
    this.negotiateAgain = true;
    if (!this.negotiating) {
      const gen = this.generation;
      this.negotiating = (async () => {
        try {
          while (this.negotiateAgain && gen === this.generation) {
            this.negotiateAgain = false;
            await this._negotiateOnce(gen);
          }
        } finally {
          if (gen === this.generation) this.negotiating = null;
        }
      })();
    }
    return this.negotiating;
  }

  async _negotiateOnce(gen) {
    const pc = this.pc;
    const sig = this.sig;
    if (!pc || !sig) return;
    this._syncSubscriptions(pc);
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    if (!this.offerSent) await waitForGathering(pc, GATHER_WAIT_MS);
    if (gen !== this.generation) return;
    const sdp = pc.localDescription.sdp;
    if (!this.offerSent) {
      for (const line of sdp.split(/\r?\n/)) if (line.startsWith('a=candidate:')) this.sdpCandidates.add(line.slice(2));
      this.sdpComplete = pc.iceGatheringState === 'complete';
      this.offerSent = true;
    }
    const publish = {};
    for (const entry of this.local.values()) {
      if (!entry.transceiver || !entry.transceiver.mid) continue;
      publish[entry.transceiver.mid] = { source: entry.source, label: entry.label || '' };
      // After a resume: go on as the track we published before (same id for everyone).
      if (entry.trackId) publish[entry.transceiver.mid].track_id = entry.trackId;
    }
    const subscribe = {};
    for (const [trackId, t] of this.recv) if (t.mid) subscribe[t.mid] = trackId;
    let answer;
    try {
      answer = await sig.request({ type: 'offer', sdp, publish, subscribe }, 'answer', 20000);
    } catch (err) {
      if (gen === this.generation && pc.signalingState === 'have-local-offer') {
        await pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
      }
      throw err;
    }
    if (gen !== this.generation) return;
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    const published = answer.published || {};
    const rejected = answer.rejected || {};
    for (const entry of this.local.values()) {
      const mid = entry.transceiver && entry.transceiver.mid;
      if (mid && published[mid]) entry.trackId = published[mid];
      if (mid && rejected[mid]) entry.rejected = rejected[mid];
    }
    this.live.clear();
    for (const [trackId, t] of [...this.recv]) {
      if (rejected[t.mid]) {
        this.refused.add(trackId);
        this.recv.delete(trackId);
        t.direction = 'inactive';
        this.negotiateAgain = true; // tell the server that mid is now inactive
      } else {
        this.live.add(trackId);
      }
    }
    this.dispatchEvent(new CustomEvent('media'));
    this.dispatchEvent(new CustomEvent('state'));
  }

  _wantedTrackIds() {
    const wanted = new Set();
    if (!this.me || this.holdSubscriptions) return wanted;
    for (const track of this.tracks.values()) {
      if (track.peer_id === this.me.peer_id || this.refused.has(track.id)) continue;
      if (this.wantTrack(track, this)) wanted.add(track.id);
    }
    return wanted;
  }

  // Point recvonly transceivers at the tracks we want; reuse transceivers the last
  // answer made inactive before adding new m-lines.
  _syncSubscriptions(pc) {
    const wanted = this._wantedTrackIds();
    for (const [trackId, t] of [...this.recv]) {
      if (!wanted.has(trackId)) {
        t.direction = 'inactive';
        this.recv.delete(trackId);
      }
    }
    const taken = new Set(this.recv.values());
    for (const trackId of wanted) {
      if (this.recv.has(trackId)) continue;
      const kind = this.tracks.get(trackId).kind;
      let t = config.reuseInactiveTransceivers && pc.getTransceivers().find((x) => x.receiver.track.kind === kind
        && x.direction === 'inactive' && x.currentDirection === 'inactive' && !taken.has(x) && !this.sendTransceivers.has(x));
      if (t) t.direction = 'recvonly';
      else t = pc.addTransceiver(kind, { direction: 'recvonly' });
      taken.add(t);
      this.recv.set(trackId, t);
    }
  }

  // Renegotiate only if the wanted subscriptions differ from what we have.
  refreshSubscriptions() {
    if (!this.pc) return;
    const wanted = this._wantedTrackIds();
    const same = wanted.size === this.recv.size && [...wanted].every((id) => this.recv.has(id));
    if (!same) this.negotiate().catch((err) => this._notice('error', `Could not update the received media: ${err.message}`));
  }

  // ---------- local media ----------

  async publish(source, track, label = '') {
    const entry = { source, track, label, transceiver: null, trackId: null, muted: false, rejected: null };
    this.local.set(source, entry);
    this._attachLocal(entry);
    try {
      await this.negotiate();
      if (entry.rejected) throw new SignalingError('rejected', entry.rejected);
    } catch (err) {
      if (this.local.get(source) === entry) {
        this.local.delete(source);
        this._detachLocal(entry);
      }
      throw err;
    }
    return entry;
  }

  async unpublish(source) {
    const entry = this.local.get(source);
    if (!entry) return;
    this.local.delete(source);
    this._detachLocal(entry);
    if (this.pc) await this.negotiate();
  }

  async replaceTrack(source, track) {
    const entry = this.local.get(source);
    if (!entry) return;
    entry.track = track;
    track.enabled = !entry.muted;
    if (entry.transceiver) await entry.transceiver.sender.replaceTrack(track);
  }

  setMuted(source, muted) {
    const entry = this.local.get(source);
    if (!entry) return;
    entry.muted = muted;
    entry.track.enabled = !muted;
    this._sendMute(entry);
    this.dispatchEvent(new CustomEvent('state'));
  }

  _sendMute(entry) {
    if (!entry.trackId || !this.sig || !this.sig.isOpen) return;
    try { this.sig.send({ type: 'mute', track_id: entry.trackId, muted: entry.muted }); } catch { /* recovery resends */ }
  }

  // Keeps entry.trackId: a resumed seat publishes the same track again under it.
  _attachLocal(entry) {
    const pc = this.pc;
    entry.rejected = null;
    if (!pc) { entry.transceiver = null; return; }
    const kind = entry.track.kind;
    const inUse = new Set([...this.local.values()].map((e) => e.transceiver));
    let t = pc.getTransceivers().find((x) => this.sendTransceivers.has(x) && !inUse.has(x)
      && x.receiver.track.kind === kind && x.direction === 'inactive' && x.currentDirection === 'inactive');
    if (t) {
      t.sender.replaceTrack(entry.track);
      t.direction = 'sendonly';
    } else {
      t = pc.addTransceiver(entry.track, sendOptions(entry.source, entry.track, config.simulcast));
      if (config.videoCodec && kind === 'video') preferCodec(t, config.videoCodec);
      this.sendTransceivers.add(t);
    }
    entry.transceiver = t;
  }

  _detachLocal(entry) {
    const t = entry.transceiver;
    entry.transceiver = null;
    if (!t || !this.pc || this.pc.signalingState === 'closed') return;
    t.sender.replaceTrack(null).catch(() => {});
    t.direction = 'inactive';
  }

  // The size a remote track is shown at (simulcast layer choice); only for tracks the
  // last answer accepted, which the server is sending us.
  sendTileSize(trackId, width, height) {
    if (!this.sig || !this.live.has(trackId)) return;
    try { this.sig.send({ type: 'tile-size', track_id: trackId, width, height }); } catch { /* resent */ }
  }

  ownTrackId(source) {
    const entry = this.local.get(source);
    return entry ? entry.trackId : null;
  }

  // ---------- remote media ----------

  remoteTrack(trackId) {
    const t = this.recv.get(trackId);
    return t && this.live.has(trackId) ? t.receiver.track : null;
  }

  // Per received track: what getStats says. Used for speaker detection and by the
  // browser tests, which check that frames are really being decoded.
  async receiveStats() {
    const out = new Map();
    if (!this.pc) return out;
    const byMid = new Map();
    for (const [trackId, t] of this.recv) if (t.mid) byMid.set(t.mid, trackId);
    const report = await this.pc.getStats();
    let localLevel = 0;
    let unmeasured = false;  // Firefox reports the microphone's source without its level
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && byMid.has(s.mid)) {
        out.set(byMid.get(s.mid), {
          kind: s.kind, framesDecoded: s.framesDecoded || 0, frameWidth: s.frameWidth || 0,
          bytesReceived: s.bytesReceived || 0, audioLevel: s.audioLevel || 0,
          packetsLost: s.packetsLost || 0, jitter: s.jitter || 0,
        });
      } else if (s.type === 'media-source' && s.kind === 'audio') {
        if (typeof s.audioLevel === 'number') localLevel = Math.max(localLevel, s.audioLevel);
        else unmeasured = true;
      }
    });
    out.localAudioLevel = unmeasured ? null : localLevel;
    return out;
  }

  // ---------- data channel ----------

  sendData(message) {
    if (!this.control || this.control.readyState !== 'open') {
      throw new Error('Chat is not connected yet.');
    }
    this.control.send(JSON.stringify(message));
  }

  get dataReady() {
    return !!this.control && this.control.readyState === 'open';
  }

  // ---------- signaling messages ----------

  // The room token, renewed over the live session when it is about to expire (the
  // join token lives minutes; a consult lasts longer). REST calls such as renewing
  // image links use it, and so does a rejoin.
  async freshToken() {
    if (tokenExpired(this.token, 60) && this.sig && this.sig.isOpen) await this._refreshToken();
    return this.token;
  }

  // Renew at half of the remaining lifetime while connected, so that a rejoin after
  // the join token's few minutes still works. A failed renewal retries the same way
  // until the token has expired.
  _keepTokenFresh(expiresAt, gen) {
    clearTimeout(this.tokenTimer);
    const remaining = expiresAt * 1000 - Date.now();
    if (!(remaining > 0)) return;
    this.tokenTimer = setTimeout(async () => {
      if (gen !== this.generation || !this.sig || !this.sig.isOpen) return;
      try {
        this._keepTokenFresh((await this._refreshToken()).expires_at, gen);
      } catch (err) {
        console.info(`telemed: token renewal failed (${err.code || err.name})`);
        if (gen === this.generation) this._keepTokenFresh(expiresAt, gen);
      }
    }, Math.max(5000, remaining / 2));
  }

  // 'token' lets the page store the new token for the seat's other screens.
  async _refreshToken() {
    const reply = await this.sig.request({ type: 'refresh-token' }, 'token');
    this.token = reply.token;
    this.dispatchEvent(new CustomEvent('token', { detail: reply.token }));
    return reply;
  }

  // A host control (docs/signaling.md "Host controls"); resolves with the server's `ok`.
  hostAction(message) {
    if (!this.sig || !this.sig.isOpen) return Promise.reject(new SignalingError('closed', 'Not connected to the server.'));
    return this.sig.request(message, 'ok', 10000);
  }

  setLayout(layout) {
    return this.sig.request({ type: 'set-layout', layout }, 'layout', 10000).catch((err) => {
      // set-layout has no direct reply: the `layout` broadcast is it. A timeout is fine.
      if (err.code !== 'timeout') throw err;
    });
  }

  _applyJoined(joined) {
    this.resumeSecret = joined.resume_secret || null;
    this.me = {
      peer_id: joined.peer_id, identity: joined.identity, name: joined.name, role: joined.role,
      grants: joined.grants || {}, room: joined.room, screen: this.screen,
    };
    this.participants.clear();
    for (const p of joined.participants || []) this.participants.set(p.peer_id, p);
    this.tracks.clear();
    for (const t of joined.tracks || []) this.tracks.set(t.id, t);
    if (joined.layout) this.layout = joined.layout;
    this.locked = !!joined.locked;
    this.waiting = new Map((joined.waiting || []).map((p) => [p.peer_id, p]));
    this.liveState = joined.live || { state: 'stopped', viewers: 0 };
    this._setRecording(joined.recording || null, null);
    this.refused.clear();
    this.dispatchEvent(new CustomEvent('state'));
  }

  _onMessage(m) {
    switch (m.type) {
      case 'participant-joined':
        this.participants.set(m.participant.peer_id, m.participant);
        this.dispatchEvent(new CustomEvent('participant', { detail: { joined: true, participant: m.participant } }));
        break;
      case 'participant-reconnecting': {
        // Their connection dropped; they keep their seat and tracks while they resume.
        const p = this.participants.get(m.peer_id);
        if (p) this.participants.set(m.peer_id, { ...p, reconnecting: true });
        break;
      }
      case 'participant-reconnected':
        this.participants.set(m.participant.peer_id, m.participant);
        break;
      case 'participant-left': {
        const p = this.participants.get(m.peer_id);
        this.participants.delete(m.peer_id);
        for (const [id, t] of this.tracks) if (t.peer_id === m.peer_id) this.tracks.delete(id);
        if (p) this.dispatchEvent(new CustomEvent('participant', { detail: { joined: false, participant: p } }));
        this.refreshSubscriptions();
        break;
      }
      case 'track-published':
        this.tracks.set(m.track.id, m.track);
        this.refused.delete(m.track.id);
        this.refreshSubscriptions();
        break;
      case 'track-unpublished':
        this.tracks.delete(m.track_id);
        this.refreshSubscriptions();
        break;
      case 'track-updated':
        this.tracks.set(m.track.id, { ...this.tracks.get(m.track.id), ...m.track });
        break;
      case 'layout':
        this.layout = m.layout;
        this.refreshSubscriptions();
        break;
      case 'kicked':
        this.closed = true;
        this._teardown();
        this._releaseDevices();
        this._setStatus('kicked', m.reason || 'removed from the room');
        return;
      case 'knock':
        this.waiting.set(m.participant.peer_id, m.participant);
        break;
      case 'knock-withdrawn':
        this.waiting.delete(m.peer_id);
        break;
      case 'room-locked':
        this.locked = !!m.locked;
        break;
      case 'participant-muted':
        if (this.me && m.peer_id === this.me.peer_id) this._mutedByHost();
        break;
      case 'error':
        this._notice('error', m.error || 'The server reported an error.');
        return;
      case 'live':
        this.liveState = { state: m.state, viewers: m.viewers };
        this.dispatchEvent(new CustomEvent('live', { detail: this.liveState }));
        return;
      case 'recording':
        this._setRecording(m.state === 'started' ? { id: m.id, by: m.by, started_at: m.started_at } : null, m);
        return;
      case 'clinical-state':
        // Also sent on `control` when it opens; listeners treat both alike.
        this.dispatchEvent(new CustomEvent('data', { detail: m }));
        return;
      default:
        if (!HOST_EVENTS.has(m.type)) return;
    }
    if (HOST_EVENTS.has(m.type)) this.dispatchEvent(new CustomEvent('host', { detail: m }));
    this.dispatchEvent(new CustomEvent('state'));
  }

  // The server already stopped forwarding our microphone; silence it here too, so
  // that our own controls show it muted. Only we can unmute (setMuted).
  _mutedByHost() {
    const entry = this.local.get('microphone');
    if (!entry) return;
    entry.muted = true;
    entry.track.enabled = false;
  }

  // Consent: `recording` is {id, by, started_at} while the room is recorded, else null.
  // `notice` is the server's `recording` message that changed it (null: from `joined`).
  _setRecording(recording, notice) {
    const changed = (this.recording?.id ?? null) !== (recording?.id ?? null);
    this.recording = recording;
    if (changed || (notice && notice.state === 'failed')) {
      this.dispatchEvent(new CustomEvent('recording', { detail: { recording, notice } }));
    }
  }

  _notice(level, text) {
    this.dispatchEvent(new CustomEvent('notice', { detail: { level, text } }));
  }

  _setStatus(status, reason = '') {
    if (this.status === status) return;
    console.info(`telemed: ${status}${reason ? ` (${reason})` : ''}`);
    this.status = status;
    this.dispatchEvent(new CustomEvent('status', { detail: { status, reason } }));
  }
}

// In the waiting room: the `joined` a host's admission brings, or the refusal.
function admission(sig) {
  return new Promise((resolve, reject) => {
    const onMessage = (e) => {
      const m = e.detail;
      if (m.type === 'joined') { done(); resolve(m); }
      if (m.type === 'denied') { done(); reject(new SignalingError('denied', m.reason || 'The host did not let you in.')); }
    };
    const onClose = () => { done(); reject(new SignalingError('closed', 'The connection to the server closed.')); };
    const done = () => { sig.removeEventListener('message', onMessage); sig.removeEventListener('close', onClose); };
    sig.addEventListener('message', onMessage);
    sig.addEventListener('close', onClose);
  });
}

// Wait before the next rejoin attempt, but go at once when the network returns.
function untilRetry(ms) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      window.removeEventListener('online', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    window.addEventListener('online', done);
  });
}

function waitForGathering(pc, ms) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    }
    function check() { if (pc.iceGatheringState === 'complete') done(); }
    pc.addEventListener('icegatheringstatechange', check);
  });
}
