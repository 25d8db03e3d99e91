// The replay's video stage: the room page's layout rules (layout.js) applied to
// the recorded tracks at each moment, in the room page's regions and tile style.
// Unlike the live TileView, a tile here owns a <video src> that plays a recorded
// file (steered by ReplayClock), so tiles are built around those elements.

import { SOURCE_LABELS, arrange, buildTiles, gridColumns } from './layout.js';
import { initials } from './util.js';

export class ReplayStage {
  // stage: the #stage element holding #stage-main and #stage-strip.
  // videos: Map track id -> <video> playing that track's file.
  constructor(stage, videos) {
    this.stage = stage;
    this.main = stage.querySelector('#stage-main');
    this.strip = stage.querySelector('#stage-strip');
    this.empty = stage.querySelector('#stage-empty');
    this.videos = videos;
    this.figures = new Map(); // tile key -> <figure>
    this.signature = '';
  }

  // room: {participants, tracks} at this moment (replay-model.roomAt).
  render(layout, room) {
    const tiles = buildTiles({ me: null, participants: room.participants, tracks: room.tracks, self: null });
    const box = this.main.getBoundingClientRect();
    const signature = JSON.stringify([layout, tiles.map((t) => [t.key, t.videoMuted, t.audioMuted]), Math.round(box.width), Math.round(box.height)]);
    if (signature === this.signature) return; // nothing moved: leave the DOM alone
    this.signature = signature;
    const view = arrange(layout, tiles, null);
    this.stage.dataset.layout = view.preset;
    const used = new Set();
    const place = (tile) => {
      used.add(tile.key);
      return this.figure(tile);
    };
    const mainChildren = [];
    if (view.preset === 'grid') {
      for (const t of view.grid) mainChildren.push(place(t));
      const { cols, tileW } = gridColumns(view.grid.length, box.width || 800, box.height || 500);
      this.main.style.setProperty('--cols', cols);
      this.main.style.setProperty('--tile-w', `${tileW}px`);
    } else {
      this.main.style.removeProperty('--cols');
      this.main.style.removeProperty('--tile-w');
      if (view.main) mainChildren.push(place(view.main));
      if (view.pips.length) {
        const pips = document.createElement('div');
        pips.className = 'pips';
        pips.append(...view.pips.map(place));
        mainChildren.push(pips);
      }
    }
    this.main.replaceChildren(...mainChildren);
    this.strip.replaceChildren(...view.strip.map(place));
    for (const [key, el] of this.figures) {
      if (!used.has(key)) {
        el.remove();
        this.figures.delete(key);
      }
    }
    this.empty.hidden = used.size > 0;
    if (!used.size) this.empty.innerHTML = '<strong>Nobody was on camera at this moment</strong>';
  }

  figure(tile) {
    let el = this.figures.get(tile.key);
    if (!el) {
      el = document.createElement('figure');
      el.className = 'tile';
      el.innerHTML = `<div class="avatar"><span></span></div>
        <figcaption><span class="label"></span><span class="source-badge" hidden></span></figcaption>`;
      this.figures.set(tile.key, el);
    }
    Object.assign(el.dataset, { key: tile.key, kind: tile.kind, source: tile.source, peer: tile.peerId, trackId: tile.trackId || '' });
    const video = tile.trackId ? this.videos.get(tile.trackId) : null;
    if (video && video.parentElement !== el) el.prepend(video);
    const showVideo = !!video && !tile.videoMuted;
    if (video) video.hidden = !showVideo;
    el.querySelector('.avatar').hidden = showVideo;
    el.querySelector('.avatar span').textContent = initials(tile.name);
    el.querySelector('.label').textContent = tile.name;
    const badge = el.querySelector('.source-badge');
    badge.hidden = tile.kind !== 'content';
    badge.textContent = SOURCE_LABELS[tile.source] || tile.source;
    el.setAttribute('aria-label', `${tile.kind === 'person' ? 'Video of' : 'Shared'} ${tile.name}`);
    return el;
  }
}
