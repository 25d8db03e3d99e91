// The consult report in the clinical panel. Everyone sees the reports signed in this
// consult (title, author, time as the server signed them, whether the signature holds)
// and can download each as PDF or FHIR. A host or participant writes one: a specialty
// template, findings, a conclusion, and ticks what was discussed from the session's
// images, labs and ECG streams. The server stamps the author; the page never sends one.

import { listReports, reportExport } from './api.js';
import { escapeHtml, toast } from './util.js';

const TEMPLATES = {
  stroke: { title: 'Stroke consult', sections: ['Onset and NIHSS', 'Imaging', 'Thrombolysis / thrombectomy decision'] },
  ecg: { title: 'ECG consult', sections: ['Rhythm and rate', 'Intervals', 'Ischaemia'] },
  imaging: { title: 'Imaging consult', sections: ['Technique', 'Findings', 'Comparison'] },
};

const skeleton = (template) => TEMPLATES[template].sections.map((s) => `${s}:\n`).join('\n');

export class ReportPanel {
  // `live`: the reports signed so far are fetched, later ones come as notices. In replay
  // (`live` false) they come with the recorded clinical state at each moment instead.
  constructor(container, session, room, { canWrite = false, live = true, onNews = () => {} } = {}) {
    this.session = session;
    this.room = room;
    this.onNews = onNews;
    this.citable = new Map(); // seq -> label
    this.reports = new Map(); // seq -> report notice
    container.innerHTML = `
      <p class="empty" data-role="empty">No report signed yet.</p>
      <ul class="report-list" data-role="list"></ul>
      ${canWrite ? `<details class="report-write" data-role="write"><summary>Write the consult report</summary>
        <form class="report-form" data-role="form">
          <label>Template <select name="template">${Object.entries(TEMPLATES).map(([k, t]) =>
            `<option value="${k}">${escapeHtml(t.title)}</option>`).join('')}</select></label>
          <label>Findings <textarea name="findings" rows="6" required maxlength="20000"></textarea></label>
          <label>Conclusion <textarea name="conclusion" rows="3" required maxlength="4000"></textarea></label>
          <fieldset><legend>Discussed in this consult</legend><div data-role="cite"><p class="empty">Nothing shared yet.</p></div></fieldset>
          <p class="form-error" data-role="error" role="alert" hidden></p>
          <button type="submit" class="btn btn-primary">Sign and share the report</button>
        </form></details>` : ''}`;
    this.empty = container.querySelector('[data-role="empty"]');
    this.list = container.querySelector('[data-role="list"]');
    this.form = container.querySelector('[data-role="form"]');
    if (this.form) this.setUpForm();
    session.addEventListener('data', (e) => this.onData(e.detail));
    if (live) this.load();
  }

  // Reports signed before this page joined (the live notices bring the later ones).
  async load() {
    try {
      const token = await this.session.freshToken();
      const { reports } = await listReports(this.room, token);
      for (const r of reports) if (!this.reports.has(r.seq)) this.reports.set(r.seq, r);
      this.render();
    } catch { /* no reports readable now: the live notices still come */ }
  }

  onData(m) {
    if (m.type === 'clinical-state') {
      if (m.reports) {
        this.reports = new Map(m.reports.map((r) => [r.seq, r]));
        this.render();
      }
      for (const d of m.dicom || []) this.cite(d.seq, `Image: ${d.name}`);
      for (const l of m.labs || []) this.cite(l.seq, `Lab: ${l.display || l.loinc} ${l.value ?? ''} ${l.unit || ''}`);
      for (const s of m.ecg_streams || []) this.cite(s.seq, `ECG: ${(s.leads || []).length} leads`);
    } else if (m.type === 'dicom') {
      this.cite(m.seq, `Image: ${m.name}`);
    } else if (m.type === 'lab') {
      const first = (m.results || [])[0] || {};
      this.cite(m.seq, `Lab: ${first.display || first.loinc || 'results'} ${first.value ?? ''} ${first.unit || ''}`);
    } else if (m.type === 'ecg-announce') {
      this.cite(m.seq, `ECG: ${(m.leads || []).length} leads`);
    } else if (m.type === 'report') {
      this.reports.set(m.seq, m);
      this.onNews(`${m.author?.name || 'A doctor'} signed the ${m.title}`);
      this.render();
    } else if (m.type === 'error' && m.ref === this.pending) {
      this.showError(m.error);
    }
  }

  cite(seq, label) {
    if (seq == null || this.citable.has(seq)) return;
    this.citable.set(seq, label.trim());
    const box = this.form?.querySelector('[data-role="cite"]');
    if (!box) return;
    box.querySelector('.empty')?.remove();
    const row = document.createElement('label');
    row.className = 'report-cite';
    row.innerHTML = `<input type="checkbox" name="cite" value="${seq}"> <span></span>`;
    row.querySelector('span').textContent = label.trim();
    box.append(row);
  }

  setUpForm() {
    const { template, findings } = this.form.elements;
    findings.value = skeleton(template.value);
    template.addEventListener('change', () => { findings.value = skeleton(template.value); });
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      const f = this.form.elements;
      this.pending = `report-${Date.now()}`;
      this.showError('');
      this.session.sendData({
        type: 'report', template: f.template.value, findings: f.findings.value, conclusion: f.conclusion.value,
        references: [...this.form.querySelectorAll('input[name="cite"]:checked')].map((c) => ({ seq: Number(c.value) })),
        ref: this.pending,
      });
    });
  }

  showError(text) {
    const el = this.form?.querySelector('[data-role="error"]');
    if (!el) return;
    el.textContent = text;
    el.hidden = !text;
  }

  render() {
    const reports = [...this.reports.values()].sort((a, b) => b.seq - a.seq);
    this.empty.hidden = reports.length > 0;
    this.list.innerHTML = '';
    for (const r of reports) {
      const li = document.createElement('li');
      li.className = 'report-item';
      li.dataset.seq = r.seq;
      li.innerHTML = `<strong></strong> <span class="report-meta"></span>
        <span class="report-actions"><button type="button" class="btn btn-link" data-get="pdf">PDF</button>
        <button type="button" class="btn btn-link" data-get="fhir">FHIR</button></span>`;
      li.querySelector('strong').textContent = r.title;
      const when = r.signed_at ? new Date(r.signed_at).toLocaleString() : '';
      li.querySelector('.report-meta').textContent =
        `signed by ${r.author?.name || r.author?.identity || '?'} · ${when}${r.verified === false ? ' · SIGNATURE INVALID' : ''}`;
      for (const b of li.querySelectorAll('[data-get]')) b.addEventListener('click', () => this.download(r.seq, b.dataset.get));
      this.list.append(li);
    }
    if (this.form && reports.length && this.pending) {
      this.pending = null;
      this.form.closest('details').open = false;
    }
  }

  // The exports need the room token, so they are fetched and handed over as a file.
  async download(seq, what) {
    let blob;
    try {
      blob = await reportExport(this.room, seq, what, await this.session.freshToken());
    } catch (err) {
      toast(err.message, 6000);
      return;
    }
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = `consult-report-${seq}.${what === 'pdf' ? 'pdf' : 'fhir.json'}`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }
}
