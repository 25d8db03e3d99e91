// Lab results shared in the consult: the latest result per patient and LOINC code,
// newest first, abnormal ones marked in words and colour. Fed by `lab` notices and
// by `clinical-state` (which already holds only the latest per patient and code).
// A result is a number with its unit, or text (coded values with their codes), and
// may have components (blood pressure: systolic, diastolic), each with its own range
// and flag. A flag the server computed from the range says so; typed ranges (severity
// bands, treatment targets) are listed, never flagged on. Results a message carried
// but the server could not read are listed under the table with their reasons.

import { escapeHtml } from './util.js';

const FLAGS = {
  H: 'High', HH: 'Critically high', HU: 'Very high', L: 'Low', LL: 'Critically low', LU: 'Very low',
  A: 'Abnormal', AA: 'Critically abnormal', N: 'Normal', NEG: 'Negative', POS: 'Positive',
  DET: 'Detected', ND: 'Not detected', IND: 'Indeterminate', R: 'Resistant', S: 'Susceptible', I: 'Intermediate',
};
const SYSTEMS = { 'http://snomed.info/sct': 'SNOMED', 'http://loinc.org': 'LOINC' };

export class LabPanel {
  constructor(container, session, { onNews = () => {} } = {}) {
    this.onNews = onNews;
    this.results = new Map(); // patient|loinc -> result
    container.innerHTML = `<p class="empty" data-role="empty">No lab results shared yet.</p>
      <div class="lab-scroll"><table class="lab-table" data-role="table" hidden>
        <caption class="sr-only">Lab results, newest first</caption>
        <thead><tr><th scope="col">Test</th><th scope="col">Result</th><th scope="col">Reference</th><th scope="col">Flag</th><th scope="col">Time</th></tr></thead>
        <tbody data-role="rows"></tbody>
      </table></div>
      <ul class="lab-refused" data-role="refused" aria-label="Results not shown" hidden></ul>`;
    this.empty = container.querySelector('[data-role="empty"]');
    this.table = container.querySelector('[data-role="table"]');
    this.rows = container.querySelector('[data-role="rows"]');
    this.refused = container.querySelector('[data-role="refused"]');
    session.addEventListener('data', (e) => this.onData(e.detail));
  }

  onData(m) {
    if (m.type === 'clinical-state') {
      this.results.clear();
      for (const r of m.labs || []) this.put(r, m.seq);
    } else if (m.type === 'lab') {
      for (const r of m.results || []) this.put(r, m.seq);
      const abnormal = (m.results || []).filter((r) => r.abnormal).length;
      const left = (m.refused || []).length;
      this.onNews(`Lab results from ${m.sender_name || 'someone'}${abnormal ? ` (${abnormal} abnormal)` : ''}${left ? `; ${left} not shown` : ''}`);
      this.showRefused(m.refused || [], m.sender_name);
    } else {
      return;
    }
    this.render();
  }

  put(result, seq) {
    this.results.delete(key(result)); // re-inserted: Map order is arrival order
    this.results.set(key(result), { ...result, seq: result.seq ?? seq });
  }

  showRefused(refused, sender) {
    this.refused.hidden = refused.length === 0;
    this.refused.innerHTML = refused.map((x) => `<li data-code="${escapeHtml(x.code)}">Not shown from ${escapeHtml(sender || 'the last message')}: ${escapeHtml(x.where)} — ${escapeHtml(x.error)}</li>`).join('');
  }

  render() {
    const results = [...this.results.values()].reverse();
    const patients = new Set(results.map((r) => r.patient));
    this.empty.hidden = results.length > 0;
    this.table.hidden = results.length === 0;
    this.rows.innerHTML = results.map((r) => {
      const patient = patients.size > 1 && r.patient ? `<span class="lab-patient">${escapeHtml(r.patient)}</span>` : '';
      const status = r.status && r.status !== 'final' ? `<span class="lab-status">${escapeHtml(statusText(r.status))}</span>` : '';
      const parts = (r.components || []).map((c) => `<li class="${c.abnormal ? 'abnormal' : ''}" data-loinc="${escapeHtml(c.loinc)}">
          <span class="lab-part">${escapeHtml(c.display || c.loinc)}</span> ${valueHtml(c)} <span class="lab-part-range">${escapeHtml(range(c))}</span> ${c.interpretation ? flagHtml(c) : ''}</li>`).join('');
      const abnormal = r.abnormal || (r.components || []).some((c) => c.abnormal);
      return `<tr class="${abnormal ? 'abnormal' : ''}" data-loinc="${escapeHtml(r.loinc)}">
        <th scope="row">${escapeHtml(r.display || r.loinc)}<span class="lab-code">LOINC ${escapeHtml(r.loinc)}</span>${patient}</th>
        <td class="lab-value">${r.value_type === 'none' ? '' : valueHtml(r)}${parts ? `<ul class="lab-components">${parts}</ul>` : ''}${status}</td>
        <td>${escapeHtml(range(r))}</td>
        <td class="lab-flag">${flagHtml(r)}</td>
        <td>${escapeHtml(when(r.effective))}</td>
      </tr>`;
    }).join('');
  }
}

function key(r) {
  return `${r.patient || ''}|${r.loinc}`;
}

function valueHtml(r) {
  if (r.value != null) {
    return `${escapeHtml(`${r.comparator || ''}${formatNumber(r.value)}`)} <span class="lab-unit">${escapeHtml(r.unit || '')}</span>`;
  }
  const codes = (r.codes || []).filter((c) => c.code).map((c) => `${SYSTEMS[c.system] || c.system} ${c.code}`);
  return `<span class="lab-text">${escapeHtml(r.text || '')}</span>${codes.length ? `<span class="lab-codes">${escapeHtml(codes.join(' · '))}</span>` : ''}`;
}

function flagHtml(r) {
  const flag = r.interpretation ? (FLAGS[r.interpretation] || r.interpretation) : '—';
  const text = r.abnormal ? `<strong>${escapeHtml(flag)}</strong>` : escapeHtml(flag);
  // The sender's flag stands as given; one the server placed from the range says so.
  return r.interpretation_source === 'computed' ? `${text}<span class="lab-computed" title="computed from the reference range by the server">computed</span>` : text;
}

function statusText(status) {
  return status === 'registered' ? 'pending' : status;
}

// The range the flag is read against, else every range as the sender typed it.
function range(r) {
  const { ref_low: low, ref_high: high } = r;
  if (low != null || high != null) return bounds(low, high);
  const listed = (r.ranges || []).map((g) => {
    const span = g.low != null || g.high != null ? bounds(g.low, g.high) : '';
    return [g.type, span, g.text].filter(Boolean).join(': ');
  }).filter(Boolean);
  return listed.length ? listed.join('; ') : '—';
}

function bounds(low, high) {
  if (low != null && high != null) return `${formatNumber(low)}–${formatNumber(high)}`;
  if (high != null) return `≤ ${formatNumber(high)}`;
  return `≥ ${formatNumber(low)}`;
}

function formatNumber(value) {
  return typeof value === 'number' ? String(+value.toPrecision(6)) : String(value ?? '');
}

function when(effective) {
  if (!effective) return '—';
  const date = new Date(effective);
  if (Number.isNaN(date.getTime())) return effective; // partial dates such as "2024-05"
  return date.toLocaleString([], { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
}
