// One live ECG stream drawn like a bedside monitor: a sweep that writes the trace
// left to right over ECG paper (1 mm minor and 5 mm major squares) at 25 mm/s,
// one row per lead. 12-lead streams show II, V1 and V5 until all 12 are asked for.
//
// Frames arrive about every 40 ms, possibly out of order (the channel is unordered),
// so samples go into a ring indexed by sample number and the sweep runs a quarter
// second behind the newest one. A sample that never came leaves a gap in the trace.

import { escapeHtml } from './util.js';

const PX_PER_MM = 4;              // CSS pixels; about 1 mm on a typical screen
const PX_PER_S = 25 * PX_PER_MM;  // 25 mm/s
const LAG_S = 0.25;
const HISTORY_S = 16;             // more than one sweep on any screen we expect
const GAP_PX = 14;                // blank band ahead of the sweep
const SUBSET_OF_12 = ['II', 'V1', 'V5'];
const PAPER = '#fff6f7';
const MINOR = '#f7cdd3';
const MAJOR = '#e59aa6';
const TRACE = '#1d2733';

export class EcgStrip {
  constructor({ stream_id: streamId, leads, sample_rate: rate, uv_per_lsb: uvPerLsb = 1, sender_name: sender }) {
    Object.assign(this, { streamId, leads, rate, uvPerLsb });
    this.showAll = leads.length <= 3;
    this.capacity = Math.ceil(rate * HISTORY_S);
    this.ring = leads.map(() => new Int16Array(this.capacity));
    this.stamp = new Float64Array(this.capacity).fill(-1); // which sample each slot holds
    this.newest = -1;
    this.head = null;       // the sweep position, in samples (fractional)
    this.drawnUpTo = null;  // last sample drawn; null: redraw the last sweep
    this.live = true;
    this.el = document.createElement('article');
    this.el.className = 'ecg-stream';
    this.el.dataset.streamId = String(streamId);
    this.el.innerHTML = `
      <header>
        <h3>${escapeHtml(sender || 'ECG')}</h3>
        <span class="chip chip-live" data-role="state">Live</span>
        <span class="ecg-scale" data-role="scale"></span>
        ${leads.length > 3 ? '<button type="button" class="btn btn-link" data-role="all" aria-pressed="false">All 12 leads</button>' : ''}
      </header>
      <div class="ecg-body">
        <canvas role="img" aria-label="Live ECG from ${escapeHtml(sender || 'a device')}: ${leads.length} leads (${escapeHtml(leads.join(', '))}), ${rate} Hz"></canvas>
        <ol class="ecg-leads" aria-hidden="true"></ol>
      </div>`;
    this.canvas = this.el.querySelector('canvas');
    this.labels = this.el.querySelector('.ecg-leads');
    this.stateChip = this.el.querySelector('[data-role="state"]');
    this.scale = this.el.querySelector('[data-role="scale"]');
    const all = this.el.querySelector('[data-role="all"]');
    if (all) all.addEventListener('click', () => {
      this.showAll = !this.showAll;
      all.setAttribute('aria-pressed', String(this.showAll));
      all.textContent = this.showAll ? 'Fewer leads' : 'All 12 leads';
      this.layout();
    });
    this.resizer = new ResizeObserver(() => this.layout());
    this.resizer.observe(this.el.querySelector('.ecg-body'));
    this.tick = this.tick.bind(this);
    this.frameRequest = requestAnimationFrame(this.tick);
  }

  push(frame) {
    const { firstSample, count, leadCount, samples } = frame;
    for (let i = 0; i < count; i++) {
      const slot = (firstSample + i) % this.capacity;
      this.stamp[slot] = firstSample + i;
      for (let lead = 0; lead < leadCount; lead++) this.ring[lead][slot] = samples[i * leadCount + lead];
    }
    this.newest = Math.max(this.newest, firstSample + count - 1);
  }

  end(reason) {
    this.live = false;
    this.head = this.newest;
    this.stateChip.className = 'chip';
    this.stateChip.textContent = reason === 'disconnected' ? 'Disconnected' : 'Ended';
  }

  destroy() {
    this.live = false;
    cancelAnimationFrame(this.frameRequest);
    this.resizer.disconnect();
    this.el.remove();
  }

  // ---------- geometry ----------

  layout() {
    const shown = this.showAll ? this.leads.map((_, i) => i)
      : SUBSET_OF_12.map((name) => this.leads.indexOf(name)).filter((i) => i >= 0);
    this.shown = shown.length ? shown : [0, 1, 2];
    this.gain = this.shown.length > 3 ? 5 : 10; // mm per mV, as on paper ECGs
    this.rowPx = (this.shown.length > 3 ? 10 : 15) * PX_PER_MM;
    this.width = Math.floor(this.canvas.parentElement.clientWidth);
    this.height = this.rowPx * this.shown.length;
    if (!this.width) return;
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(this.width * dpr);
    this.canvas.height = Math.round(this.height * dpr);
    this.canvas.style.height = `${this.height}px`;
    this.ctx = this.canvas.getContext('2d');
    this.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    this.paper = drawPaper(this.canvas.width, this.canvas.height, dpr);
    this.scale.textContent = `25 mm/s · ${this.gain} mm/mV`;
    // Positioned through the CSSOM: the CSP refuses inline style attributes.
    this.labels.innerHTML = this.shown.map((i) => `<li class="ecg-lead">${escapeHtml(this.leads[i])}</li>`).join('');
    [...this.labels.children].forEach((li, row) => { li.style.top = `${row * this.rowPx}px`; });
    this.drawnUpTo = null;
  }

  // ---------- drawing ----------

  tick(now) {
    if (this.live || this.drawnUpTo !== this.newest) this.frameRequest = requestAnimationFrame(this.tick);
    if (!this.ctx || !this.width || !this.el.isConnected) return;
    const target = this.advance(now);
    if (target < 0) return;
    // One sweep: the width of the strip less the blank band ahead of the trace.
    const sweep = Math.floor((this.width - GAP_PX) / PX_PER_S * this.rate);
    let from = this.drawnUpTo;
    if (from === null || target - from > sweep) {
      from = target - sweep;
      this.erase(0, this.width);
    } else if (target <= from) {
      return;
    } else {
      this.erase(this.x(from) + GAP_PX, this.x(target) + GAP_PX);
    }
    const ctx = this.ctx;
    ctx.strokeStyle = TRACE;
    ctx.lineWidth = 1.4;
    ctx.lineJoin = 'round';
    const pxPerUnit = this.uvPerLsb / 1000 * this.gain * PX_PER_MM;
    this.shown.forEach((lead, row) => {
      const base = row * this.rowPx + this.rowPx * 0.62;
      const values = this.ring[lead];
      ctx.beginPath();
      let lastX = Infinity;
      for (let s = Math.max(0, from); s <= target; s++) {
        const slot = s % this.capacity;
        if (this.stamp[slot] !== s) { lastX = Infinity; continue; }
        const x = this.x(s) % this.width;
        const y = base - values[slot] * pxPerUnit;
        if (x < lastX) ctx.moveTo(x, y); else ctx.lineTo(x, y);
        lastX = x;
      }
      ctx.stroke();
    });
    this.drawnUpTo = target;
  }

  // The sweep advances in real time, a little behind the data; it waits when data
  // is late and jumps ahead after a long stall (a hidden tab, a network gap).
  advance(now) {
    if (this.newest < 0) return -1;
    if (this.head === null) {
      this.head = this.newest - LAG_S * this.rate;
    } else if (this.live) {
      this.head += (now - this.clockAt) / 1000 * this.rate;
    }
    this.clockAt = now;
    if (this.head > this.newest) this.head = this.newest;
    if (this.newest - this.head > (2 + LAG_S) * this.rate) this.head = this.newest - LAG_S * this.rate;
    return Math.floor(this.head);
  }

  // Unwrapped x of a sample, in CSS pixels.
  x(sample) {
    return sample / this.rate * PX_PER_S;
  }

  // Paint fresh paper over [x0, x1) (unwrapped), across the right edge if need be.
  erase(x0, x1) {
    if (x1 <= x0) return;
    if (x1 - x0 >= this.width) { x0 = 0; x1 = this.width; }
    const a = x0 % this.width;
    const b = a + (x1 - x0);
    this.restore(a, Math.min(b, this.width));
    if (b > this.width) this.restore(0, b - this.width);
  }

  restore(x0, x1) {
    const dpr = this.canvas.width / this.width;
    const sx = Math.floor(x0 * dpr);
    const sw = Math.ceil(x1 * dpr) - sx;
    if (sw <= 0) return;
    this.ctx.save();
    this.ctx.setTransform(1, 0, 0, 1, 0, 0);
    this.ctx.drawImage(this.paper, sx, 0, sw, this.canvas.height, sx, 0, sw, this.canvas.height);
    this.ctx.restore();
  }
}

// ECG paper in device pixels: pink minor lines every mm, darker ones every 5 mm.
function drawPaper(width, height, dpr) {
  const paper = document.createElement('canvas');
  paper.width = width;
  paper.height = height;
  const ctx = paper.getContext('2d');
  ctx.fillStyle = PAPER;
  ctx.fillRect(0, 0, width, height);
  const step = PX_PER_MM * dpr;
  for (const [color, every] of [[MINOR, 1], [MAJOR, 5]]) {
    ctx.strokeStyle = color;
    ctx.lineWidth = Math.max(1, Math.round(dpr * (every === 5 ? 1 : 0.5)));
    ctx.beginPath();
    for (let x = 0; x <= width; x += step * every) { ctx.moveTo(Math.round(x) + 0.5, 0); ctx.lineTo(Math.round(x) + 0.5, height); }
    for (let y = 0; y <= height; y += step * every) { ctx.moveTo(0, Math.round(y) + 0.5); ctx.lineTo(width, Math.round(y) + 0.5); }
    ctx.stroke();
  }
  return paper;
}
