// Screen 3 of a seat: clinical data. This is the hook the clinical data work
// fills in (ECG strips, DICOM viewer, lab panel). Until then it is a calm
// placeholder that shows the panel is live and counts `app` messages.
//
// Contract: mountClinicalPanel(section, ctx) is called once with the
// <section id="clinical-panel"> element and ctx = {session, room}. The session
// emits "data" events for every control-channel message ({type: 'app', data, ...}).
// Return an object with an optional destroy().

import { icon } from './icons.js';

export function mountClinicalPanel(section, { session, room }) {
  section.innerHTML = `
    <div class="clinical-head">
      <h1>Clinical data · ${escapeHtml(room)}</h1>
      <span class="chip" id="clinical-status">Waiting for shared data</span>
    </div>
    <div class="clinical-grid">
      <article class="clinical-card" aria-labelledby="c-ecg">
        <h2 id="c-ecg">${icon('heart')} ECG</h2>
        <canvas width="600" height="90" aria-hidden="true"></canvas>
        <p>No ECG stream is active. Live ECG from an ambulance or monitor appears here.</p>
      </article>
      <article class="clinical-card" aria-labelledby="c-dicom">
        <h2 id="c-dicom">${icon('image')} Images (DICOM)</h2>
        <p>No images shared yet. Shared studies appear here for everyone in the consult.</p>
      </article>
      <article class="clinical-card" aria-labelledby="c-labs">
        <h2 id="c-labs">${icon('flask')} Lab results</h2>
        <p>No lab results shared yet.</p>
      </article>
    </div>`;
  drawBaseline(section.querySelector('canvas'));
  const status = section.querySelector('#clinical-status');
  let count = 0;
  const onData = (e) => {
    if (e.detail && e.detail.type === 'app') {
      count += 1;
      status.textContent = `${count} clinical message${count === 1 ? '' : 's'} received`;
    }
  };
  session.addEventListener('data', onData);
  return { destroy: () => session.removeEventListener('data', onData) };
}

function drawBaseline(canvas) {
  const ctx = canvas.getContext('2d');
  ctx.strokeStyle = '#d3e5df';
  ctx.lineWidth = 1;
  for (let x = 0; x <= canvas.width; x += 20) { ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, canvas.height); ctx.stroke(); }
  for (let y = 0; y <= canvas.height; y += 20) { ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(canvas.width, y); ctx.stroke(); }
  ctx.strokeStyle = '#7fa89b';
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.moveTo(0, canvas.height / 2);
  ctx.lineTo(canvas.width, canvas.height / 2);
  ctx.stroke();
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}
