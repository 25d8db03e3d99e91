// The room's ECG streams: a strip per stream, started by `ecg-announce` (or by
// `clinical-state` for a late joiner), fed by frames on the `ecg` channel, and
// frozen with its last sweep when the stream ends.

import { parseEcgFrame } from './ecg-frame.js';
import { EcgStrip } from './ecg-strip.js';

const KEEP_ENDED = 2;

export class EcgMonitor {
  constructor(container, session, { onNews = () => {} } = {}) {
    this.onNews = onNews;
    this.strips = new Map(); // stream_id -> EcgStrip
    container.innerHTML = `<p class="empty" data-role="empty">No ECG stream is active. Live ECG from an ambulance or monitor appears here.</p>
      <div class="ecg-streams" data-role="streams"></div>`;
    this.empty = container.querySelector('[data-role="empty"]');
    this.box = container.querySelector('[data-role="streams"]');
    session.addEventListener('data', (e) => this.onData(e.detail));
    session.addEventListener('ecg', (e) => this.onFrame(e.detail));
  }

  onData(m) {
    if (m.type === 'ecg-announce') {
      this.start(m);
      this.onNews(`Live ECG from ${m.sender_name || 'a device'}`);
    } else if (m.type === 'ecg-end') {
      this.strips.get(m.stream_id)?.end(m.reason);
    } else if (m.type === 'clinical-state') {
      const live = new Set((m.ecg_streams || []).map((s) => s.stream_id));
      for (const [id, strip] of this.strips) if (strip.live && !live.has(id)) strip.end('ended');
      for (const s of m.ecg_streams || []) if (!this.strips.get(s.stream_id)?.live) this.start(s);
    }
  }

  start(announce) {
    this.strips.get(announce.stream_id)?.destroy();
    const strip = new EcgStrip(announce);
    this.strips.set(announce.stream_id, strip);
    this.box.prepend(strip.el);
    const ended = [...this.strips.values()].filter((s) => !s.live);
    for (const old of ended.slice(0, Math.max(0, ended.length - KEEP_ENDED))) {
      old.destroy();
      this.strips.delete(old.streamId);
    }
    this.empty.hidden = true;
  }

  onFrame(buffer) {
    const frame = parseEcgFrame(buffer);
    const strip = frame && this.strips.get(frame.streamId);
    // The server checked the frame against its announce; a mismatch here means a
    // stream id was reused before we heard of it.
    if (strip && strip.live && frame.leadCount === strip.leads.length && frame.sampleRate === strip.rate) strip.push(frame);
  }
}
