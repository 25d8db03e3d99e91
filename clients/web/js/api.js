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

// Live teaching (docs/streaming.md): a host token goes live and ends it.
export function startLive(room, token) {
  return call('POST', `api/rooms/${encodeURIComponent(room)}/live`, undefined, bearer(token));
}

export function stopLive(room, token) {
  return call('POST', `api/rooms/${encodeURIComponent(room)}/live/stop`, undefined, bearer(token));
}

// Signed consult reports (docs/reports.md): any token of the room reads them.
export function listReports(room, token) {
  return call('GET', `api/rooms/${encodeURIComponent(room)}/reports`, undefined, bearer(token));
}

// A report's export, `pdf` or `fhir`, as a Blob.
export async function reportExport(room, seq, what, token) {
  const response = await fetch(`api/rooms/${encodeURIComponent(room)}/reports/${seq}/${what}`, { headers: bearer(token) });
  if (!response.ok) throw new ApiError(response.status, `The report cannot be exported (${response.status})`);
  return response.blob();
}

// Recordings (docs/recording.md): a host token starts and stops them; a host token or a
// token with the `recordings` grant opens them. The manifest carries short-lived signed
// links to each track's media.
const recordingsPath = (room) => `api/rooms/${encodeURIComponent(room)}/recordings`;

export function startRecording(room, token) {
  return call('POST', recordingsPath(room), undefined, bearer(token));
}

export function stopRecording(room, id, token) {
  return call('POST', `${recordingsPath(room)}/${encodeURIComponent(id)}/stop`, undefined, bearer(token));
}

export function listRecordings(room, token) {
  return call('GET', recordingsPath(room), undefined, bearer(token));
}

export function getRecording(room, id, token) {
  return call('GET', `${recordingsPath(room)}/${encodeURIComponent(id)}`, undefined, bearer(token));
}

export function recordingLinks(room, id, token) {
  return call('GET', `${recordingsPath(room)}/${encodeURIComponent(id)}/links`, undefined, bearer(token));
}

export function recordingClinical(room, id, token) {
  return call('GET', `${recordingsPath(room)}/${encodeURIComponent(id)}/clinical`, undefined, bearer(token));
}

// The frames of a recorded ECG stream (replay-ecg.js parses them).
export async function recordingEcg(room, id, seq, token) {
  const response = await fetch(`${recordingsPath(room)}/${encodeURIComponent(id)}/ecg/${seq}`,
    { headers: bearer(token) });
  if (!response.ok) throw new ApiError(response.status, `ECG recording unavailable (${response.status})`);
  return response.arrayBuffer();
}
