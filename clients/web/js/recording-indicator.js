// Consent: while the room is recorded every page (consult window, each screen of a
// seat, the trainee view) shows a REC indicator that names who started it. It is
// shown from `joined`, so a late joiner sees it at once, and kept current by the
// server's `recording` notices; each change is also announced in a toast.
//
// mountRecordingIndicator(slot, session, room): `slot` is an element in the top bar.
// Hosts also get there a Record / Stop recording button and a link to the room's
// recordings (replay.html).

import { startRecording, stopRecording } from './api.js';
import { hostToggle } from './host-toggle.js';
import { statusBadge, toast } from './util.js';

export function recorderName(by) {
  if (!by) return 'someone';
  return typeof by === 'string' ? by : by.name || by.identity || 'someone';
}

export function mountRecordingIndicator(slot, session, room) {
  const el = statusBadge(slot, 'rec-indicator');

  const show = (recording) => {
    el.hidden = !recording;
    document.body.classList.toggle('recording', !!recording);
    if (!recording) return;
    const by = recorderName(recording.by);
    el.innerHTML = '<span class="rec-dot" aria-hidden="true"></span><strong>REC</strong><span class="rec-by"></span>';
    el.querySelector('.rec-by').textContent = `Recording · started by ${by}`;
    el.setAttribute('aria-label', `This consult is being recorded. Recording started by ${by}.`);
    el.title = recording.started_at ? `Recording since ${new Date(recording.started_at).toLocaleTimeString()}` : 'Recording';
  };

  session.addEventListener('recording', (e) => {
    const { recording, notice } = e.detail;
    show(recording);
    if (recording) {
      toast(notice
        ? `${recorderName(recording.by)} started recording this consult.`
        : `This consult is being recorded (started by ${recorderName(recording.by)}).`, 8000);
    } else if (notice) {
      toast(notice.state === 'failed'
        ? 'Recording stopped: the server could not continue it. What was recorded is kept.'
        : `Recording stopped${notice.by ? ` by ${recorderName(notice.by)}` : ''}.`, 8000);
    }
  });
  show(session.recording);

  const link = document.createElement('a');
  link.className = 'btn btn-link';
  link.id = 'recordings-link';
  link.href = `replay.html?room=${encodeURIComponent(room)}`;
  link.target = '_blank';
  link.rel = 'noopener';
  link.textContent = 'Recordings';
  link.hidden = true;
  slot.append(link);

  const toggle = hostToggle(session, {
    id: 'record-button', what: 'Recording',
    label: () => (session.recording ? 'Stop recording' : 'Record'),
    act: (token) => (session.recording ? stopRecording(room, session.recording.id, token) : startRecording(room, token)),
  });
  slot.append(toggle.button);
  session.addEventListener('recording', toggle.show);
  session.addEventListener('state', () => {
    link.hidden = !session.me?.grants?.admin && !session.me?.grants?.recordings;
    toggle.show();
  });
  return el;
}
