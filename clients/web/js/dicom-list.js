// The DICOM objects shared in the consult, in the order they were shared. Fed by
// `dicom` notices and by `clinical-state` (late joiners; it also carries fresh links).

import { clockTime, escapeHtml } from './util.js';

export class DicomList {
  constructor(container, { onOpen }) {
    this.onOpen = onOpen;
    this.items = new Map(); // sha256 -> notice (with this person's links)
    container.innerHTML = `<p class="empty" data-role="empty">No images shared yet. Shared studies appear here for everyone in the consult.</p>
      <ul class="dicom-list" data-role="list" aria-label="Shared images"></ul>`;
    this.empty = container.querySelector('[data-role="empty"]');
    this.list = container.querySelector('[data-role="list"]');
    this.list.addEventListener('click', (e) => {
      const button = e.target.closest('button[data-sha256]');
      if (button) this.onOpen(this.items.get(button.dataset.sha256));
    });
  }

  reset(items) {
    this.items.clear();
    for (const item of items) this.items.set(item.sha256, item);
    this.render();
  }

  add(notice) {
    this.items.set(notice.sha256, { ...notice, shownAt: clockTime() });
    this.render();
  }

  get(sha256) {
    return this.items.get(sha256);
  }

  render() {
    this.empty.hidden = this.items.size > 0;
    this.list.innerHTML = [...this.items.values()].map((item) => {
      const o = item.object || {};
      const frames = o.frames > 1 ? ` · ${o.frames} frames` : '';
      const who = item.sender_name ? ` · ${escapeHtml(item.sender_name)}` : '';
      const when = item.shownAt ? ` · ${item.shownAt}` : '';
      return `<li><button type="button" class="dicom-item" data-sha256="${item.sha256}">
        <span class="dicom-name">${escapeHtml(item.name)}</span>
        <span class="dicom-meta">${escapeHtml(o.modality || 'DICOM')} · ${o.columns}×${o.rows}${frames}${who}${when}${item.deidentified ? ' · de-identified' : ''}</span>
      </button></li>`;
    }).join('');
  }
}
