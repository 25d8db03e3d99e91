// Where a participant shares DICOM files: a drop zone with a file picker, and one
// progress row per file. Files go one after another (a series may be many files;
// the server checks them one at a time anyway). Refusals stay on the sender's
// screen, in the server's words.

import { sendDicom } from './dicom-transfer.js';
import { icon } from './icons.js';
import { escapeHtml } from './util.js';

const PHASES = { hashing: 'Preparing…', sending: 'Sending…', checking: 'Checking on the server…' };

export class DicomUpload {
  constructor(container, session) {
    this.session = session;
    this.queue = Promise.resolve();
    container.innerHTML = `
      <div class="dropzone" data-role="dropzone">
        ${icon('image')}
        <p><strong>Drop DICOM files here</strong> to share them with everyone in the consult.</p>
        <button type="button" class="btn" data-role="pick">Choose files…</button>
        <input type="file" multiple hidden data-role="file" aria-label="DICOM files to share">
      </div>
      <ul class="uploads" data-role="uploads" aria-live="polite"></ul>`;
    this.zone = container.querySelector('[data-role="dropzone"]');
    this.input = container.querySelector('[data-role="file"]');
    this.list = container.querySelector('[data-role="uploads"]');
    container.querySelector('[data-role="pick"]').addEventListener('click', () => this.input.click());
    this.input.addEventListener('change', () => {
      this.share([...this.input.files]);
      this.input.value = '';
    });
    this.zone.addEventListener('dragover', (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      this.zone.classList.add('over');
    });
    this.zone.addEventListener('dragleave', () => this.zone.classList.remove('over'));
    this.zone.addEventListener('drop', (e) => {
      this.zone.classList.remove('over');
      if (!hasFiles(e)) return;
      e.preventDefault();
      e.stopPropagation();
      this.share([...e.dataTransfer.files]);
    });
  }

  share(files) {
    for (const file of files) {
      const row = this.addRow(file);
      this.queue = this.queue.then(() => this.send(file, row));
    }
  }

  addRow(file) {
    const row = document.createElement('li');
    row.className = 'upload';
    row.innerHTML = `<span class="upload-name">${escapeHtml(file.name)}</span>
      <progress max="1" value="0"></progress><span class="upload-status">Waiting…</span>`;
    this.list.prepend(row);
    return row;
  }

  async send(file, row) {
    const bar = row.querySelector('progress');
    const status = row.querySelector('.upload-status');
    try {
      await sendDicom(this.session, file, ({ phase, fraction }) => {
        bar.value = fraction;
        status.textContent = PHASES[phase];
      });
      row.classList.add('done');
      status.textContent = 'Shared';
      bar.value = 1;
      setTimeout(() => row.remove(), 4000);
    } catch (err) {
      row.classList.add('error');
      row.setAttribute('role', 'alert');
      bar.remove();
      status.textContent = `Not shared: ${err.message}`;
      console.info(`telemed: ${file.name} not shared: ${err.message}`); // for support and the tests' logs
      const dismiss = document.createElement('button');
      dismiss.type = 'button';
      dismiss.className = 'btn btn-link';
      dismiss.textContent = 'Dismiss';
      dismiss.addEventListener('click', () => row.remove());
      row.append(dismiss);
    }
  }
}

export function hasFiles(event) {
  return !!event.dataTransfer && [...event.dataTransfer.types].includes('Files');
}
