// A "seat" is one person at one place: a token for one room, and the devices they
// picked. It lives in localStorage keyed by room, so the 2nd and 3rd screen of a
// multi-screen seat (other windows of the same browser) reuse the same identity.

const PREFIX = 'telemed.seat.';

export function saveSeat(room, seat) {
  localStorage.setItem(PREFIX + room, JSON.stringify({ ...seat, room }));
}

export function loadSeat(room) {
  try {
    const seat = JSON.parse(localStorage.getItem(PREFIX + room) || 'null');
    return seat && seat.token ? seat : null;
  } catch {
    return null;
  }
}

export function clearSeat(room) {
  localStorage.removeItem(PREFIX + room);
}

// The JWT's own claims: read for display and expiry only; the server verifies it.
export function tokenClaims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part + '==='.slice((part.length + 3) % 4)));
  } catch {
    return {};
  }
}

export function tokenExpired(token, slackSeconds = 5) {
  const { exp } = tokenClaims(token);
  return typeof exp === 'number' && exp * 1000 < Date.now() + slackSeconds * 1000;
}

// A join link may carry the token in the fragment (never sent to the server in
// the URL): room.html?room=R#token=... . Store it as the seat and tidy the URL.
export function seatFromLocation(room) {
  const hash = new URLSearchParams(location.hash.slice(1));
  const token = hash.get('token');
  if (token) {
    const claims = tokenClaims(token);
    const previous = loadSeat(room) || {};
    saveSeat(room, {
      ...previous, token, role: claims.role || previous.role, name: claims.name || previous.name,
      grants: claims.grants || previous.grants, identity: claims.sub || previous.identity,
    });
    history.replaceState(null, '', location.pathname + location.search);
  }
  return loadSeat(room);
}

export function lastName() {
  return localStorage.getItem('telemed.name') || '';
}

export function rememberName(name) {
  localStorage.setItem('telemed.name', name);
}
