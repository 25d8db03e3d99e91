// Video tiles: one <figure> per tile key, kept across renders so a <video> keeps
// playing while the layout moves it between regions.

import { icon } from './icons.js';
import { SOURCE_LABELS } from './layout.js';
import { escapeHtml, initials } from './util.js';

export class TileView {
  constructor({ onPin }) {
    this.onPin = onPin;
    this.els = new Map();
  }

  get(key) {
    return this.els.get(key) || null;
  }

  // tile: from layout.buildTiles; track: the MediaStreamTrack to show or null.
  // opts: {speaking, canPin, pinned}
  render(tile, track, opts) {
    let el = this.els.get(tile.key);
    if (!el) {
      el = document.createElement('figure');
      el.className = 'tile';
      el.innerHTML = `
        <video autoplay playsinline muted></video>
        <div class="avatar"><span></span></div>
        <figcaption><span class="muted-badge" hidden>${icon('mic-off', 'Microphone muted')}</span><span class="label"></span><span class="source-badge" hidden></span><span class="reconnecting-badge" hidden>Reconnecting…</span></figcaption>
        <button class="pin-btn" type="button" hidden>${icon('pin')}<span>Pin</span></button>`;
      el.querySelector('.pin-btn').addEventListener('click', () => this.onPin(el.dataset.trackId, el.querySelector('.pin-btn').getAttribute('aria-pressed') === 'true'));
      this.els.set(tile.key, el);
    }
    el.dataset.key = tile.key;
    el.dataset.kind = tile.kind;
    el.dataset.source = tile.source;
    el.dataset.peer = tile.peerId;
    el.dataset.trackId = tile.trackId || '';
    el.classList.toggle('self', tile.self);
    el.classList.toggle('speaking', !!opts.speaking);
    // Their connection dropped and they are resuming (docs/resume.md): not gone.
    el.classList.toggle('reconnecting', !!tile.reconnecting);
    el.querySelector('.reconnecting-badge').hidden = !tile.reconnecting;

    const video = el.querySelector('video');
    if (video.srcObject ? video.srcObject.getVideoTracks()[0] !== track : track) {
      video.srcObject = track ? new MediaStream([track]) : null;
    }
    if (track && video.paused) video.play().catch(() => {});
    video.classList.toggle('mirror', tile.self && tile.kind === 'person');
    const showVideo = !!track && !tile.videoMuted;
    video.hidden = !showVideo;
    el.querySelector('.avatar').hidden = showVideo;
    el.querySelector('.avatar span').textContent = initials(tile.name);

    const role = tile.role === 'host' ? ' <span class="role">· Host</span>' : tile.role === 'device' ? ' <span class="role">· Device</span>' : '';
    const name = tile.self && tile.kind === 'person' ? `${escapeHtml(tile.name)} (you)` : escapeHtml(tile.name);
    const label = el.querySelector('.label');
    const html = tile.kind === 'person' ? name + role : name;
    if (label.innerHTML !== html) label.innerHTML = html;
    el.setAttribute('aria-label', `${tile.kind === 'person' ? 'Video of' : 'Shared'} ${tile.name}${tile.audioMuted && tile.kind === 'person' ? ', microphone muted' : ''}`);
    el.querySelector('.muted-badge').hidden = !(tile.kind === 'person' && tile.audioMuted);
    const badge = el.querySelector('.source-badge');
    badge.hidden = tile.kind !== 'content';
    badge.textContent = SOURCE_LABELS[tile.source] || tile.source;

    const pin = el.querySelector('.pin-btn');
    pin.hidden = !(opts.canPin && tile.trackId);
    pin.setAttribute('aria-pressed', opts.pinned ? 'true' : 'false');
    pin.querySelector('span').textContent = opts.pinned ? 'Unpin' : 'Pin to main';
    pin.setAttribute('aria-label', `${opts.pinned ? 'Unpin' : 'Pin to the main position'}: ${tile.name}`);
    return el;
  }

  // Remove tiles that were not rendered this round.
  prune(usedKeys) {
    for (const [key, el] of this.els) {
      if (!usedKeys.has(key)) {
        const video = el.querySelector('video');
        video.srcObject = null;
        el.remove();
        this.els.delete(key);
      }
    }
  }
}
