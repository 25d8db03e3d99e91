// REST calls (docs/signaling.md). Errors become ApiError with the server's own
// human message, the HTTP status and, for 429, how long to wait.

export class ApiError extends Error {
  constructor(status, message, code = '', retryAfter = 0) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

async function call(method, path, body, headers = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'The server cannot be reached. Check the network connection.', 'network');
  }
  let data = null;
  try { data = await response.json(); } catch { /* 204 or a non-JSON error page */ }
  if (!response.ok) {
    const retry = parseInt(response.headers.get('Retry-After') || '0', 10) || 0;
    throw new ApiError(response.status, (data && data.error) || `Request failed (${response.status})`,
      (data && data.code) || '', retry);
  }
  return data;
}

export function requestToken(room, { password, role, name }) {
  return call('POST', `api/rooms/${encodeURIComponent(room)}/token`, { password, role, name });
}

// An invite link's code instead of a password: the invite decides the role.
export function redeemInvite(room, code, name) {
  return call('POST', `api/rooms/${encodeURIComponent(room)}/token`, { invite: code, name });
}

export function createRoom(name, password, adminKey = '', settings = {}) {
  const headers = adminKey ? { Authorization: `Bearer ${adminKey}` } : {};
  return call('POST', 'api/rooms', { name, password, settings }, headers);
}

// Invite links, made and withdrawn by a host with its room token.
const bearer = (token) => ({ Authorization: `Bearer ${token}` });
const invitesPath = (room) => `api/rooms/${encodeURIComponent(room)}/invites`;

export function createInvite(room, token, { role, expiresIn, maxUses, label }) {
  return call('POST', invitesPath(room), { role, expires_in: expiresIn, max_uses: maxUses, label }, bearer(token));
}

export function listInvites(room, token) {
  return call('GET', invitesPath(room), undefined, bearer(token));
}

export function revokeInvite(room, token, id) {
  return call('DELETE', `${invitesPath(room)}/${encodeURIComponent(id)}`, undefined, bearer(token));
}

export function wsUrl() {
  const url = new URL('ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

// Fresh signed links to a shared DICOM object, for a viewer whose links expired.
export function objectLinks(room, sha256, token) {
  return call('GET', `api/rooms/${encodeURIComponent(room)}/objects/${sha256}/links`, undefined,
    { Authorization: `Bearer ${token}` });
}
