// One WebSocket to /ws. Requests carry an "id" and resolve with the server's reply
// to that id (or reject with its error); everything else is dispatched as a
// "message" event. A keepalive ping notices a dead network long before TCP does,
// and then this socket reports "close" once, straight away.

const PING_EVERY_MS = 10000;
const PONG_WITHIN_MS = 8000;

export class SignalingError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export class Signaling extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.ws = null;
    this.pending = new Map();
    this.nextId = 1;
    this.done = false;
    this.pinger = null;
  }

  open(timeoutMs = 8000) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      const timer = setTimeout(() => {
        reject(new SignalingError('timeout', 'The server did not answer in time.'));
        this._finish(4000, 'open timeout');
      }, timeoutMs);
      ws.onopen = () => {
        clearTimeout(timer);
        this.pinger = setInterval(() => this._ping(), PING_EVERY_MS);
        resolve();
      };
      ws.onclose = (event) => {
        clearTimeout(timer);
        reject(new SignalingError('closed', 'The connection to the server closed.'));
        this._finish(event.code, event.reason);
      };
      ws.onmessage = (event) => this._onMessage(event.data);
    });
  }

  get isOpen() {
    return !this.done && this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  send(message) {
    if (!this.isOpen) throw new SignalingError('closed', 'Not connected to the server.');
    this.ws.send(JSON.stringify(message));
  }

  // Resolves with the reply that echoes our id. `expect` is the reply type, used
  // only if a reply arrives without the id.
  request(message, expect, timeoutMs = 15000) {
    const id = `c${this.nextId++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SignalingError('timeout', `No reply to ${message.type} in time.`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, expect });
      try {
        this.send({ ...message, id });
      } catch (err) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(err);
      }
    });
  }

  close() {
    this._finish(1000, 'client closed');
  }

  _onMessage(raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch {
      return;
    }
    const key = message.id == null ? null : String(message.id);
    let waiter = key && this.pending.get(key);
    if (!waiter && key == null && message.type !== 'error') {
      for (const [id, w] of this.pending) {
        if (w.expect === message.type) { waiter = w; this.pending.delete(id); break; }
      }
    } else if (waiter) {
      this.pending.delete(key);
    }
    if (waiter) {
      clearTimeout(waiter.timer);
      if (message.type === 'error') waiter.reject(new SignalingError(message.code || 'error', message.error || 'Request failed.'));
      else waiter.resolve(message);
      // A reply without our id may also be a broadcast (`layout` answers `set-layout`).
      if (key != null) return;
    }
    this.dispatchEvent(new CustomEvent('message', { detail: message }));
  }

  // Whether the server answers a ping within `ms` on this socket.
  async answers(ms) {
    try {
      await this.request({ type: 'ping' }, 'pong', ms);
      return true;
    } catch {
      return false;
    }
  }

  async _ping() {
    if (!(await this.answers(PONG_WITHIN_MS))) this._finish(4001, 'keepalive lost');
  }

  _finish(code, reason) {
    if (this.done) return;
    this.done = true;
    clearInterval(this.pinger);
    for (const waiter of this.pending.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(new SignalingError('closed', 'The connection to the server closed.'));
    }
    this.pending.clear();
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.onmessage = null;
      try { this.ws.close(); } catch { /* already closing */ }
    }
    this.dispatchEvent(new CustomEvent('close', { detail: { code, reason } }));
  }
}
