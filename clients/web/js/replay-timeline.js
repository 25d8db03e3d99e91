// The replay's transport: play/pause, the time, a seek bar, the speed, and markers
// for shared images, labs, ECG and layout changes that jump to their moment.

import { icon } from './icons.js';
import { SPEEDS } from './replay-clock.js';
import { formatTime } from './replay-model.js';
import { escapeHtml } from './util.js';

const KIND_NAMES = { dicom: 'Image', lab: 'Lab', ecg: 'ECG', layout: 'Layout' };
// One lane per kind, so that things that happened together stay apart and clickable.
const LANES = { dicom: 0, lab: 1, ecg: 2, layout: 3 };

export class ReplayTimeline {
  constructor(container, clock, marks) {
    this.clock = clock;
    const d = clock.duration;
    container.innerHTML = `
      <div class="replay-transport">
        <button type="button" class="btn btn-primary" data-role="play" aria-label="Play">${icon('play')}<span>Play</span></button>
        <span class="replay-time" data-role="time" aria-live="off">0:00 / ${formatTime(d)}</span>
        <label class="replay-speed">Speed
          <select data-role="speed">${SPEEDS.map((s) => `<option value="${s}"${s === 1 ? ' selected' : ''}>${s}×</option>`).join('')}</select>
        </label>
      </div>
      <div class="replay-bar">
        <ol class="replay-markers" data-role="markers" aria-label="Moments in this recording">
          ${marks.map((m, i) => `<li data-at="${d ? (100 * m.t) / d : 0}" data-lane="${LANES[m.kind]}">
            <button type="button" class="marker marker-${m.kind}" data-index="${i}" data-kind="${m.kind}" data-seq="${m.seq ?? ''}"
              title="${escapeHtml(`${m.label} · ${formatTime(m.t)}`)}" aria-label="${escapeHtml(`${KIND_NAMES[m.kind]} at ${formatTime(m.t)}: ${m.label}`)}"></button>
          </li>`).join('')}
        </ol>
        <label class="sr-only" for="replay-seek">Position</label>
        <input id="replay-seek" type="range" min="0" max="${d}" step="0.1" value="0" data-role="seek">
      </div>`;
    const $ = (role) => container.querySelector(`[data-role="${role}"]`);
    this.playBtn = $('play');
    this.timeEl = $('time');
    this.seekEl = $('seek');
    this.speedEl = $('speed');
    this.playBtn.addEventListener('click', () => (clock.playing ? clock.pause() : clock.play()));
    this.seekEl.addEventListener('input', () => clock.seek(+this.seekEl.value));
    this.speedEl.addEventListener('change', () => clock.setSpeed(+this.speedEl.value));
    $('markers').addEventListener('click', (e) => {
      const button = e.target.closest('button[data-index]');
      if (button) clock.seek(marks[+button.dataset.index].t);
    });
    // Positions are set through the CSSOM: a strict CSP refuses style attributes.
    for (const li of container.querySelectorAll('.replay-markers li')) {
      li.style.setProperty('--at', `${li.dataset.at}%`);
      li.style.setProperty('--lane', li.dataset.lane);
    }
    clock.addEventListener('change', () => this.update());
    this.update();
  }

  update() {
    const c = this.clock;
    // Only when it changes: this runs every frame, and a button whose inside is replaced
    // between a press and its release loses the click (Chromium fires none when the
    // pressed node has left the page).
    if (this.shownPlaying !== c.playing) {
      this.shownPlaying = c.playing;
      this.playBtn.innerHTML = `${icon(c.playing ? 'pause' : 'play')}<span>${c.playing ? 'Pause' : 'Play'}</span>`;
      this.playBtn.setAttribute('aria-label', c.playing ? 'Pause' : 'Play');
    }
    this.timeEl.textContent = `${formatTime(c.time)} / ${formatTime(c.duration)}`;
    if (document.activeElement !== this.seekEl) this.seekEl.value = String(c.time);
  }
}
