// Shares one DICOM file over the `bulk` data channel, as docs/signaling.md
// ("Clinical data") describes: `dicom-announce` on `control`, wait for
// `dicom-ready`, the chunks, then `dicom-complete`. Resolves with the server's
// `dicom` notice once the file is checked and shared; rejects with the server's
// own words when it refuses the file. When the connection drops meanwhile and the
// session resumes (docs/resume.md), the file goes again under the same transfer id;
// the server answers one it already shared with that notice, so it is shared once.

const CHUNK_SIZE = 65536;
// Browsers send every channel of a connection from one queue: keep our share of it
// small so that video, audio and ECG keep flowing during an upload.
const HIGH_WATER = 256 * 1024;
const LOW_WATER = 64 * 1024;
const READY_TIMEOUT_MS = 20000;
const DRAIN_TIMEOUT_MS = 30000;
const SHARED_TIMEOUT_MS = 120000;
const RESUME_WAIT_MS = 30000; // beyond the server's default grace period (15 s)
const MAX_TRIES = 4;

class TransferError extends Error {}
class Interrupted extends Error {} // the connection dropped: go again once resumed

// onProgress({phase, fraction}): phase is hashing | sending | checking.
export async function sendDicom(session, file, onProgress = () => {}) {
  if (!globalThis.crypto || !crypto.subtle) {
    throw new TransferError('Sharing images needs a secure (HTTPS) page.');
  }
  // A file chosen while the page is still connecting (a late joiner, a slow machine)
  // waits for the channels rather than failing at once.
  if (!await channelsOpen(session, READY_TIMEOUT_MS)) {
    throw new TransferError('Not connected yet; try again in a moment.');
  }
  onProgress({ phase: 'hashing', fraction: 0 });
  const data = new Uint8Array(await file.arrayBuffer());
  if (!data.byteLength) throw new TransferError('The file is empty.');
  const sha256 = toHex(await crypto.subtle.digest('SHA-256', data));
  const transferId = `w-${toHex(crypto.getRandomValues(new Uint8Array(8)))}`;
  const announce = {
    type: 'dicom-announce', transfer_id: transferId, name: file.name, size: data.byteLength,
    sha256, chunk_count: Math.ceil(data.byteLength / CHUNK_SIZE), chunk_size: CHUNK_SIZE,
  };
  const replies = new Replies(session, transferId);
  try {
    for (let tries = 1; ; tries++) {
      try {
        return await upload(session, replies, announce, data, onProgress);
      } catch (err) {
        if (!(err instanceof Interrupted)) throw err;
        if (tries >= MAX_TRIES || !(await resumed(session, RESUME_WAIT_MS))) {
          throw new TransferError('The connection was interrupted. Share the file again.');
        }
      }
    }
  } finally {
    replies.close();
  }
}

async function upload(session, replies, announce, data, onProgress) {
  const transferId = announce.transfer_id;
  const shared = (m) => m.type === 'dicom' && m.transfer_id === transferId && m.sender === session.me?.peer_id;
  replies.start();
  const bulk = session.bulk;
  const cut = () => replies.interrupted || bulk !== session.bulk || bulk.readyState !== 'open';
  if (cut() || !session.dataReady) throw new Interrupted();
  session.sendData(announce);
  const ready = await replies.wait((m) => shared(m) || (m.type === 'dicom-ready' && m.transfer_id === transferId),
    READY_TIMEOUT_MS);
  if (ready.type === 'dicom') return ready; // shared before the connection dropped
  bulk.bufferedAmountLowThreshold = LOW_WATER;
  const head = chunkHeader(transferId);
  const chunkCount = announce.chunk_count;
  for (let i = 0; i < chunkCount; i++) {
    replies.throwIfRefused();
    if (cut()) throw new Interrupted();
    if (bulk.bufferedAmount > HIGH_WATER) await drained(bulk);
    if (cut()) throw new Interrupted();
    const payload = data.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE);
    const message = new Uint8Array(head.length + 4 + payload.length);
    message.set(head);
    new DataView(message.buffer).setUint32(head.length, i, true);
    message.set(payload, head.length + 4);
    bulk.send(message);
    const sent = Math.min((i + 1) * CHUNK_SIZE, data.byteLength) - bulk.bufferedAmount;
    onProgress({ phase: 'sending', fraction: Math.max(0, sent) / data.byteLength });
  }
  if (cut()) throw new Interrupted();
  session.sendData({ type: 'dicom-complete', transfer_id: transferId });
  onProgress({ phase: 'checking', fraction: 1 });
  return await replies.wait(shared, SHARED_TIMEOUT_MS);
}

// True once the session is connected again with its data channels open; false if it
// gave up (left, refused) or `ms` passed.
function resumed(session, ms) {
  const ready = () => session.status === 'connected' && session.dataReady && session.bulk?.readyState === 'open';
  return new Promise((resolve) => {
    const started = Date.now();
    const poll = () => {
      if (ready()) resolve(true);
      else if (session.closed || Date.now() - started > ms) resolve(false);
      else setTimeout(poll, 100);
    };
    poll();
  });
}

async function channelsOpen(session, timeoutMs) {
  const open = () => session.bulk && session.bulk.readyState === 'open' && session.dataReady;
  const deadline = Date.now() + timeoutMs;
  while (!open() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  return open();
}

// "DC", version 1, id length, id; the caller appends the u32 chunk index and payload.
function chunkHeader(transferId) {
  const id = new TextEncoder().encode(transferId);
  return new Uint8Array([0x44, 0x43, 1, id.length, ...id]);
}

function drained(channel) {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      channel.removeEventListener('bufferedamountlow', done);
      channel.removeEventListener('close', done);
      resolve();
    };
    const timer = setTimeout(() => {
      channel.removeEventListener('bufferedamountlow', done);
      channel.removeEventListener('close', done);
      reject(new TransferError('The upload stalled: the network is too slow or gone.'));
    }, DRAIN_TIMEOUT_MS);
    channel.addEventListener('bufferedamountlow', done);
    channel.addEventListener('close', done);
  });
}

// The control-channel messages about one transfer, kept from before the announce
// so that no reply is missed. An `error` about it fails whatever waits; so does the
// connection dropping (Interrupted), until `start` of the next try.
class Replies {
  constructor(session, transferId) {
    this.session = session;
    this.transferId = transferId;
    this.seen = [];
    this.refusal = null;
    this.interrupted = false;
    this.wake = () => {};
    this.onData = (e) => {
      const m = e.detail;
      if (m.type === 'error' && m.ref === transferId) this.refusal = new TransferError(m.error || 'The server refused the file.');
      else if (m.transfer_id === transferId) this.seen.push(m);
      this.wake();
    };
    this.onStatus = (e) => {
      if (e.detail.status !== 'connected') {
        this.interrupted = true;
        this.wake();
      }
    };
    session.addEventListener('data', this.onData);
    session.addEventListener('status', this.onStatus);
  }

  start() {
    this.seen = [];
    this.interrupted = false;
  }

  throwIfRefused() {
    if (this.refusal) throw this.refusal;
  }

  wait(match, ms) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new TransferError('The server did not answer in time.')), ms);
      this.wake = () => {
        const found = this.seen.find(match);
        if (!found && !this.refusal && !this.interrupted) return;
        clearTimeout(timer);
        this.wake = () => {};
        if (found) resolve(found); else reject(this.refusal || new Interrupted());
      };
      this.wake();
    });
  }

  close() {
    this.session.removeEventListener('data', this.onData);
    this.session.removeEventListener('status', this.onStatus);
  }
}

function toHex(buffer) {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, '0')).join('');
}
