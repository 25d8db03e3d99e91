// Chat over the `control` data channel. The server relays our messages to the
// others (not back to us), so our own lines are shown as soon as they are sent.

import { clockTime, escapeHtml } from './util.js';

export class ChatPanel {
  constructor({ panel, log, form, input, send, session, onUnread }) {
    Object.assign(this, { panel, log, form, input, send, session, onUnread });
    this.unread = 0;
    this.empty = document.createElement('li');
    this.empty.className = 'system';
    this.empty.textContent = 'No messages yet. Messages are seen by everyone in this consult.';
    log.append(this.empty);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    session.addEventListener('data', (e) => this.onData(e.detail));
  }

  get open() {
    return !this.panel.hidden;
  }

  toggle(force) {
    this.panel.hidden = force === undefined ? !this.panel.hidden : !force;
    if (this.open) {
      this.unread = 0;
      this.onUnread(0);
      this.input.focus();
      this.log.scrollTop = this.log.scrollHeight;
    }
  }

  submit() {
    const text = this.input.value.trim();
    if (!text) return;
    try {
      this.session.sendData({ type: 'chat', text });
    } catch (err) {
      this.system(`Not sent: ${err.message}`, true);
      return;
    }
    this.input.value = '';
    this.add({ name: 'You', text, mine: true });
  }

  onData(message) {
    if (message.type === 'chat') {
      this.add({ name: message.name || 'Guest', text: message.text || '', mine: false });
      if (!this.open) {
        this.unread += 1;
        this.onUnread(this.unread);
      }
    } else if (message.type === 'error' && message.ref == null) {
      // Errors with a `ref` concern clinical data; the clinical panel shows them.
      this.system(`Message not delivered: ${message.error || 'rejected by the server'}`, true);
    }
  }

  add({ name, text, mine }) {
    this.empty.remove();
    const li = document.createElement('li');
    li.className = mine ? 'mine' : '';
    li.innerHTML = `<div class="meta"><strong>${escapeHtml(name)}</strong><time>${clockTime()}</time></div><div class="text">${escapeHtml(text)}</div>`;
    this.log.append(li);
    this.log.scrollTop = this.log.scrollHeight;
  }

  system(text, error = false) {
    this.empty.remove();
    const li = document.createElement('li');
    li.className = `system${error ? ' error' : ''}`;
    li.textContent = text;
    this.log.append(li);
    this.log.scrollTop = this.log.scrollHeight;
  }

  setReady(ready) {
    this.send.disabled = !ready;
    this.input.placeholder = ready ? 'Message everyone' : 'Chat connects with the call…';
  }
}
