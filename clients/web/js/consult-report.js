// The consult report: what a remote consult delivers. The responsible doctor picks a
// template (stroke, ECG, imaging: the server's, from `clinical-state`), writes findings
// and a conclusion, ticks the images, lab results and ECG segments discussed, and sends
// it; the server signs it with the author's identity and time and shares it with
// everyone (a `report` notice), keeps it for replay and pushes it to the hospital's FHIR
// server if one is set. Signed reports are listed for all, with the server's PDF and
// FHIR exports and a Print button. The form is offered where `canWrite`; the
// server decides who may sign (hosts and participants).

import { escapeHtml } from './util.js';

export class ConsultReportPanel {
  constructor(container, session, { room, canWrite = false, onNews = () => {} } = {}) {
    this.session = session;
    this.room = room;
    this.onNews = onNews;
    this.templates = [];
    this.dicom = new Map(); // sha256 -> notice
    this.labs = new Map(); // seq|loinc -> result with seq
    this.recordings = new Map(); // recording -> announce
    this.reports = new Map(); // id -> report
    this.pending = null;
    container.innerHTML = `
      <div data-role="reports"><p class="empty">No report signed yet.</p></div>
      ${canWrite ? `<form class="report-form" data-role="form" novalidate>
        <div class="field"><label for="report-template">Template</label>
          <select id="report-template" data-role="template"></select></div>
        <div class="field"><label for="report-findings">Findings</label>
          <textarea id="report-findings" data-role="findings" rows="6" maxlength="20000" required></textarea></div>
        <div class="field"><label for="report-conclusion">Conclusion</label>
          <textarea id="report-conclusion" data-role="conclusion" rows="3" maxlength="5000" required></textarea></div>
        <fieldset class="report-refs"><legend>Discussed in this consult</legend>
          <div data-role="refs"><p class="hint">Images, lab results and ECG shared here appear to be cited.</p></div>
        </fieldset>
        <p class="field-error" data-role="problem" role="alert" hidden></p>
        <div class="form-actions"><button type="submit" class="btn" data-role="sign">Sign and share report</button></div>
      </form>` : ''}`;
    const $ = (role) => container.querySelector(`[data-role="${role}"]`);
    this.list = $('reports');
    this.form = $('form');
    if (this.form) {
      Object.assign(this, { template: $('template'), findings: $('findings'), conclusion: $('conclusion'),
        refs: $('refs'), problem: $('problem'), sign: $('sign') });
      this.template.addEventListener('change', () => this.prefill(true));
      this.form.addEventListener('submit', (e) => {
        e.preventDefault();
        this.submit();
      });
    }
    session.addEventListener('data', (e) => this.onData(e.detail));
  }

  onData(m) {
    if (m.type === 'clinical-state') {
      this.templates = m.report_templates || this.templates;
      this.dicom = new Map((m.dicom || []).map((d) => [d.sha256, d]));
      this.labs = new Map();
      for (const r of m.labs || []) this.labs.set(`${r.seq}|${r.loinc}`, r);
      this.recordings = new Map((m.ecg_recordings || m.ecg_streams || []).map((s) => [s.recording, s]));
      this.reports = new Map((m.reports || []).map((r) => [r.id, r]));
      if (this.form && !this.template.options.length) this.fillTemplates();
    } else if (m.type === 'dicom') {
      this.dicom.set(m.sha256, m);
    } else if (m.type === 'lab') {
      for (const r of m.results || []) this.labs.set(`${m.seq}|${r.loinc}`, { ...r, seq: m.seq });
    } else if (m.type === 'ecg-announce') {
      this.recordings.set(m.recording, m);
    } else if (m.type === 'report') {
      this.reports.set(m.id, m);
      this.onNews(`${m.author?.name || 'Someone'} signed the ${m.title || 'consult report'}`);
      if (this.pending && m.sender === this.session.me?.peer_id) this.done();
    } else if (m.type === 'error' && this.pending && m.ref === this.pending) {
      this.showProblem(m.error || m.code);
      this.pending = null;
      this.sign.disabled = false;
      return;
    } else {
      return;
    }
    this.render();
  }

  fillTemplates() {
    this.template.innerHTML = this.templates.map((t) => `<option value="${escapeHtml(t.key)}">${escapeHtml(t.title)}</option>`).join('');
    this.prefill(false);
  }

  // The template's headings as a start, unless the doctor has written something.
  prefill(force) {
    const t = this.templates.find((x) => x.key === this.template.value);
    if (!t) return;
    if (force || !this.findings.value.trim()) this.findings.value = t.findings;
    if (force || !this.conclusion.value.trim()) this.conclusion.value = t.conclusion;
  }

  render() {
    const reports = [...this.reports.values()];
    this.list.innerHTML = reports.length ? reports.map(reportHtml).join('') : '<p class="empty">No report signed yet.</p>';
    for (const button of this.list.querySelectorAll('[data-role="print"]')) {
      button.addEventListener('click', () => printReport(this.reports.get(button.dataset.id)));
    }
    for (const button of this.list.querySelectorAll('[data-role="export"]')) {
      button.addEventListener('click', () => this.download(button.dataset.id, button.dataset.format));
    }
    if (this.form) this.renderRefs();
  }

  renderRefs() {
    const checked = new Set([...this.refs.querySelectorAll('input[type=checkbox]:checked')].map((i) => i.value));
    const box = (kind, value, label) => `<label class="report-ref"><input type="checkbox" data-kind="${kind}" value="${escapeHtml(value)}"${checked.has(value) ? ' checked' : ''}> ${escapeHtml(label)}</label>`;
    const items = [
      ...[...this.dicom.values()].map((d) => box('dicom', d.sha256, `Image: ${d.name} (${d.object?.modality || 'DICOM'})`)),
      ...[...this.labs.values()].map((r) => box('lab', `${r.seq}|${r.loinc}`, `Lab: ${r.display || r.loinc} ${r.value ?? r.text ?? ''} ${r.unit || ''}`)),
      ...[...this.recordings.values()].map((s) => `<span class="report-ecg">${box('ecg', s.recording, `ECG: ${s.sender_name || 'stream'}, ${s.leads?.length || ''} leads`)}
        <label>from <input type="number" min="0" step="0.1" value="0" data-role="start" aria-label="ECG segment start, seconds"> s</label>
        <label>to <input type="number" min="0.1" step="0.1" value="10" data-role="end" aria-label="ECG segment end, seconds"> s</label></span>`),
    ];
    this.refs.innerHTML = items.length ? items.join('') : '<p class="hint">Images, lab results and ECG shared here appear to be cited.</p>';
  }

  // The server's export, fetched with the room token (exports are audited per person).
  async download(id, format) {
    const report = this.list.querySelector(`.consult-report[data-id="${CSS.escape(id)}"]`);
    const status = report?.querySelector('[data-role="export-status"]');
    try {
      const response = await fetch(`/api/rooms/${encodeURIComponent(this.room)}/reports/${id}.${format}`, {
        headers: { Authorization: `Bearer ${await this.session.freshToken()}` },
      });
      if (!response.ok) throw new Error((await response.json().catch(() => ({}))).error || `HTTP ${response.status}`);
      const link = document.createElement('a');
      link.href = URL.createObjectURL(await response.blob());
      link.download = `consult-report-${id}.${format === 'json' ? 'fhir.json' : 'pdf'}`;
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 60000);
      if (status) status.textContent = '';
    } catch (err) {
      if (status) status.textContent = `Export failed: ${err.message}`;
    }
  }

  submit() {
    if (this.pending) return;
    const findings = this.findings.value.trim();
    const conclusion = this.conclusion.value.trim();
    if (!findings || !conclusion) {
      this.showProblem('Findings and conclusion are both needed.');
      return;
    }
    const references = { dicom: [], labs: [], ecg: [] };
    for (const input of this.refs.querySelectorAll('input[type=checkbox]:checked')) {
      if (input.dataset.kind === 'dicom') references.dicom.push(input.value);
      else if (input.dataset.kind === 'lab') {
        const [seq, loinc] = input.value.split('|');
        references.labs.push({ seq: Number(seq), loinc });
      } else {
        const segment = input.closest('.report-ecg');
        const start = Number(segment.querySelector('[data-role="start"]').value);
        const end = Number(segment.querySelector('[data-role="end"]').value);
        references.ecg.push({ recording: input.value, start_s: start, end_s: end });
      }
    }
    this.pending = `report-${crypto.getRandomValues(new Uint32Array(2)).join('-')}`;
    try {
      this.session.sendData({ type: 'consult-report', ref: this.pending, template: this.template.value, findings, conclusion, references });
    } catch (err) {
      this.pending = null;
      this.showProblem(err.message);
      return;
    }
    this.sign.disabled = true;
    this.showProblem(null);
  }

  done() {
    this.pending = null;
    this.sign.disabled = false;
    this.form.reset();
    this.prefill(true);
  }

  showProblem(text) {
    this.problem.hidden = !text;
    this.problem.textContent = text || '';
  }
}

function reportHtml(r) {
  const refs = r.references || {};
  const cited = [
    ...(refs.dicom || []).map((d) => `Image ${d.name} (${d.modality || 'DICOM'})`),
    ...(refs.labs || []).map((l) => `${l.display || l.loinc}: ${l.value ?? l.text ?? ''} ${l.unit || ''}${l.interpretation ? ` (${l.interpretation})` : ''}`),
    ...(refs.ecg || []).map((e) => `ECG ${e.start_s}–${e.end_s} s (${(e.leads || []).join(', ')})`),
  ];
  return `<article class="consult-report" data-id="${escapeHtml(r.id)}">
    <h3>${escapeHtml(r.title || 'Consult report')}</h3>
    <p class="report-meta">Signed by <strong>${escapeHtml(r.author?.name || '')}</strong> (${escapeHtml(r.author?.role || '')}) at ${escapeHtml(r.signed_at || '')}</p>
    <h4>Findings</h4><p class="report-text" data-role="findings">${escapeHtml(r.findings || '')}</p>
    <h4>Conclusion</h4><p class="report-text" data-role="conclusion">${escapeHtml(r.conclusion || '')}</p>
    ${cited.length ? `<h4>Cited</h4><ul class="report-cited">${cited.map((c) => `<li>${escapeHtml(c)}</li>`).join('')}</ul>` : ''}
    <p class="report-signature">Server signature ${escapeHtml(r.signature?.alg || '')}, key ${escapeHtml(r.signature?.key_id || '')}</p>
    <div class="report-actions">
      <button type="button" class="btn btn-link" data-role="export" data-format="pdf" data-id="${escapeHtml(r.id)}">PDF</button>
      <button type="button" class="btn btn-link" data-role="export" data-format="json" data-id="${escapeHtml(r.id)}">FHIR DiagnosticReport</button>
      <button type="button" class="btn btn-link" data-role="print" data-id="${escapeHtml(r.id)}">Print</button>
      <span class="report-export-status" data-role="export-status" role="status"></span>
    </div>
  </article>`;
}

// The report alone on a page of its own, for the browser's print dialog.
function printReport(report) {
  if (!report) return;
  const win = window.open('', '_blank', 'noopener=no');
  if (!win) return;
  win.document.title = report.title || 'Consult report';
  win.document.body.innerHTML = reportHtml(report);
  win.document.body.querySelector('.report-actions')?.remove();
  win.print();
}
