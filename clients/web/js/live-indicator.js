// Live teaching on the room page: while the room's program is on air every page shows
// LIVE and how many are watching (the server's `live` notices, and `joined` for a late
// joiner); a host gets a Go live / End live button beside it.
//
// mountLiveIndicator(slot, session, room): `slot` is an element in the top bar.

import { startLive, stopLive } from './api.js';
import { hostToggle } from './host-toggle.js';
import { statusBadge } from './util.js';

export function liveLabel(live) {
  if (!live || live.state !== 'started') return '';
  const n = live.viewers || 0;
  return `LIVE · ${n} watching`;
}

export function mountLiveIndicator(slot, session, room) {
  const el = statusBadge(slot, 'live-indicator');

  const onAir = () => session.liveState?.state === 'started';
  const toggle = hostToggle(session, {
    id: 'live-button', what: 'Live stream',
    label: () => (onAir() ? 'End live' : 'Go live'),
    act: (token) => (onAir() ? stopLive(room, token) : startLive(room, token)),
  });
  slot.append(toggle.button);
  const show = () => {
    const text = liveLabel(session.liveState);
    el.hidden = !text;
    el.textContent = text;
    toggle.show();
  };
  session.addEventListener('state', show);
  session.addEventListener('live', show);
  show();
  return el;
}
