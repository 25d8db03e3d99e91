// Kept streams of a room (video on demand) on the trainee page: a list to pick one,
// its chapters and clinical notices as seek buttons, and, for a host, "add a chapter here".

import { escapeHtml } from './util.js';

export class VodList {
  // el: container; room; token(); canEdit; onPlay(url, stream); seek(seconds); now() -> seconds
  constructor(el, { room, token, canEdit, onPlay, seek, now }) {
    Object.assign(this, { el, room, token, canEdit, onPlay, seek, now });
    this.streams = [];
    this.current = null;
    el.addEventListener('click', (e) => this.onClick(e));
    el.addEventListener('submit', (e) => this.onSubmit(e));
  }

  async refresh() {
    const r = await fetch(`/api/rooms/${encodeURIComponent(this.room)}/vod`, {
      headers: { Authorization: `Bearer ${this.token()}` },
    });
    if (!r.ok) return;
    this.streams = (await r.json()).streams;
    this.render();
  }

  render() {
    if (!this.streams.length) {
      this.el.innerHTML = '<p class="vod-empty">No recorded lessons yet.</p>';
      return;
    }
    const items = this.streams.map((s) => {
      const when = new Date(s.started_at * 1000).toLocaleString();
      // Chapters and the clinical notices made while live, in time order, each a seek button.
      const marks = s.stream === this.current?.stream ? [
        ...this.current.chapters.map((c) => ({ at: c.at, text: c.title })),
        ...(this.current.clinical || []).map((c) => ({ at: c.at, text: `Clinical: ${c.kind} #${c.seq}` })),
      ].sort((a, b) => a.at - b.at) : [];
      const chapters = marks.map((m) =>
        `<li><button type="button" class="btn btn-link" data-seek="${m.at}">${fmt(m.at)} · ${escapeHtml(m.text)}</button></li>`).join('');
      return `<li class="vod-item" data-stream="${s.stream}">
        <button type="button" class="btn" data-play="${s.stream}">${escapeHtml(when)} · ${fmt(s.duration)}</button>
        ${chapters ? `<ol class="vod-chapters">${chapters}</ol>` : ''}
      </li>`;
    }).join('');
    const editor = this.canEdit && this.current ? `
      <form class="vod-chapter-form">
        <label>Chapter at the current time <input name="title" maxlength="200" required placeholder="Title"></label>
        <button class="btn btn-primary" type="submit">Add chapter</button>
      </form>` : '';
    this.el.innerHTML = `<h2>Recorded lessons</h2><ol class="vod-streams">${items}</ol>${editor}`;
  }

  onClick(e) {
    const play = e.target.closest('[data-play]');
    if (play) {
      const stream = this.streams.find((s) => s.stream === play.dataset.play);
      this.current = stream;
      this.onPlay(stream.url, stream);
      this.render();
      return;
    }
    const seek = e.target.closest('[data-seek]');
    if (seek) this.seek(Number(seek.dataset.seek) - (this.current?.trim?.start || 0));
  }

  async onSubmit(e) {
    e.preventDefault();
    const title = new FormData(e.target).get('title').trim();
    if (!title || !this.current) return;
    const at = Math.round((this.now() + (this.current.trim?.start || 0)) * 10) / 10;
    const chapters = [...this.current.chapters, { at, title }];
    const r = await fetch(`/api/rooms/${encodeURIComponent(this.room)}/vod/${this.current.stream}`, {
      method: 'PUT', headers: { Authorization: `Bearer ${this.token()}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ chapters }),
    });
    if (!r.ok) return;
    const saved = await r.json();
    Object.assign(this.current, saved);
    this.render();
  }
}

function fmt(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}
