// An invite link as the lobby opens it: /?invite=<code>. The code is signed by the
// server and names the room, the role and when it expires; the page reads them for
// display only (the server checks the code when it is redeemed), so that a link
// that has visibly expired, or a trainee's, never starts the camera.

import { tokenClaims } from './seat.js';

// Plain words for each way an invitation can fail (the server's `code`).
const MESSAGES = {
  'invite-invalid': 'This invitation link is not valid — check that it was copied completely, or ask the host for a new one.',
  'invite-expired': 'This invitation has expired — ask the host for a new one.',
  'invite-used-up': 'This invitation has already been used as often as allowed — ask the host for a new one.',
  'invite-revoked': 'This invitation was withdrawn by the host — ask the host for a new one.',
  'invite-wrong-room': 'This invitation is for another room — ask the host for a new one.',
};

export function inviteMessage(code) {
  return MESSAGES[code] || MESSAGES['invite-invalid'];
}

// {code, room, role, problem}: `problem` is an error code when the link is unusable as it is.
export function readInvite(params) {
  const code = params.get('invite');
  if (code === null) return null;
  const claims = tokenClaims(code);
  const room = typeof claims.room === 'string' ? claims.room : '';
  const named = params.get('room');
  let problem = null;
  if (!room) problem = 'invite-invalid';
  else if (named && named !== room) problem = 'invite-wrong-room';
  else if (typeof claims.exp === 'number' && claims.exp * 1000 <= Date.now()) problem = 'invite-expired';
  return { code, room, role: claims.role, problem };
}

// The link a host hands out: the server's `link`, made absolute.
export function shareableLink(link) {
  return new URL(link, location.origin).href;
}
