// The picture quality each video tile is getting, from getStats: the decoded resolution
// and the received bitrate (for our own camera: what we send), written on the tile. On
// a tablet in a moving ambulance this says at a glance whether the link still carries
// the picture, or why it looks soft.
//
// Contract: mountTileQuality(getPc, getTiles) samples once a second while the page
// lives; getPc() gives the session's RTCPeerConnection (or null), getTiles() the tile
// <figure> elements, each with a <video> whose srcObject holds the track it shows.

const INTERVAL_MS = 1000;

// {bytes, timestamp (ms), width, height} twice → "640×360 · 480 kbit/s".
export function describeQuality(previous, current) {
  if (!current || !current.width || !current.height) return '';
  const size = `${current.width}×${current.height}`;
  if (!previous || current.timestamp <= previous.timestamp || current.bytes < previous.bytes) return size;
  const kbps = Math.round(((current.bytes - previous.bytes) * 8) / (current.timestamp - previous.timestamp));
  return `${size} · ${kbps >= 1000 ? `${(kbps / 1000).toFixed(1)} Mbit/s` : `${kbps} kbit/s`}`;
}

// Video RTP stats by the id of the track they carry: received tracks by their
// trackIdentifier, sent ones through their media source; simulcast layers summed (the
// largest layer's size). One getStats call serves every tile.
export function videoSamples(report) {
  const samples = new Map();
  report.forEach((s) => {
    if ((s.type !== 'inbound-rtp' && s.type !== 'outbound-rtp') || s.kind !== 'video') return;
    const trackId = s.type === 'inbound-rtp' ? s.trackIdentifier : report.get(s.mediaSourceId)?.trackIdentifier;
    if (!trackId) return;
    const sample = samples.get(trackId) || { bytes: 0, timestamp: 0, width: 0, height: 0 };
    sample.bytes += (s.type === 'inbound-rtp' ? s.bytesReceived : s.bytesSent) || 0;
    sample.timestamp = Math.max(sample.timestamp, s.timestamp || 0);
    if ((s.frameWidth || 0) > sample.width) {
      sample.width = s.frameWidth;
      sample.height = s.frameHeight || 0;
    }
    samples.set(trackId, sample);
  });
  return samples;
}

class TileQuality {
  constructor(getPc, getTiles) {
    this.getPc = getPc;
    this.getTiles = getTiles;
    this.previous = new WeakMap(); // track -> last sample
    this.busy = false;
    setInterval(() => this.update(), INTERVAL_MS);
  }

  async update() {
    const pc = this.getPc();
    if (!pc || this.busy) return;
    this.busy = true;
    try {
      const samples = videoSamples(await pc.getStats());
      for (const el of this.getTiles()) this.label(el, samples);
    } catch {
      // the connection is being replaced (a resume); the next round reads the new one
    } finally {
      this.busy = false;
    }
  }

  label(el, samples) {
    const video = el.querySelector('video');
    const track = video && video.srcObject ? video.srcObject.getVideoTracks()[0] : null;
    const sample = track && !video.hidden ? samples.get(track.id) : null;
    const text = sample ? describeQuality(this.previous.get(track), sample) : '';
    if (sample) this.previous.set(track, sample);
    let label = el.querySelector(':scope > .quality');
    if (!label) {
      label = document.createElement('span');
      label.className = 'quality';
      label.title = 'Video quality: resolution and bitrate';
      el.append(label);
    }
    label.textContent = text;
    label.hidden = !text;
  }
}

export function mountTileQuality(getPc, getTiles) {
  return new TileQuality(getPc, getTiles);
}
