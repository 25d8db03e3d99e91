// Lab results shared in the consult: the latest result per patient and LOINC code,
// newest first, abnormal ones marked in words and colour. Fed by `lab` notices and
// by `clinical-state` (which already holds only the latest per patient and code).

import { escapeHtml } from './util.js';

const FLAGS = { H: 'High', HH: 'Critically high', HU: 'Very high', L: 'Low', LL: 'Critically low', LU: 'Very low', A: 'Abnormal', AA: 'Critically abnormal', N: 'Normal' };

export class LabPanel {
  constructor(container, session, { onNews = () => {} } = {}) {
    this.onNews = onNews;
    this.results = new Map(); // patient|loinc -> result
    container.innerHTML = `<p class="empty" data-role="empty">No lab results shared yet.</p>
      <div class="lab-scroll"><table class="lab-table" data-role="table" hidden>
        <caption class="sr-only">Lab results, newest first</caption>
        <thead><tr><th scope="col">Test</th><th scope="col">Result</th><th scope="col">Reference</th><th scope="col">Flag</th><th scope="col">Time</th></tr></thead>
        <tbody data-role="rows"></tbody>
      </table></div>`;
    this.empty = container.querySelector('[data-role="empty"]');
    this.table = container.querySelector('[data-role="table"]');
    this.rows = container.querySelector('[data-role="rows"]');
    session.addEventListener('data', (e) => this.onData(e.detail));
  }

  onData(m) {
    if (m.type === 'clinical-state') {
      this.results.clear();
      for (const r of m.labs || []) this.put(r, m.seq);
    } else if (m.type === 'lab') {
      for (const r of m.results || []) this.put(r, m.seq);
      const abnormal = (m.results || []).filter((r) => r.abnormal).length;
      this.onNews(`Lab results from ${m.sender_name || 'someone'}${abnormal ? ` (${abnormal} abnormal)` : ''}`);
    } else {
      return;
    }
    this.render();
  }

  put(result, seq) {
    this.results.delete(key(result)); // re-inserted: Map order is arrival order
    this.results.set(key(result), { ...result, seq: result.seq ?? seq });
  }

  render() {
    const results = [...this.results.values()].reverse();
    const patients = new Set(results.map((r) => r.patient));
    this.empty.hidden = results.length > 0;
    this.table.hidden = results.length === 0;
    this.rows.innerHTML = results.map((r) => {
      const flag = r.interpretation ? (FLAGS[r.interpretation] || r.interpretation) : r.abnormal ? 'Abnormal' : r.abnormal === false ? 'Normal' : '—';
      const patient = patients.size > 1 && r.patient ? `<span class="lab-patient">${escapeHtml(r.patient)}</span>` : '';
      return `<tr class="${r.abnormal ? 'abnormal' : ''}" data-loinc="${escapeHtml(r.loinc)}">
        <th scope="row">${escapeHtml(r.display || r.loinc)}<span class="lab-code">LOINC ${escapeHtml(r.loinc)}</span>${patient}</th>
        <td class="lab-value">${escapeHtml(`${r.comparator || ''}${formatNumber(r.value)}`)} <span class="lab-unit">${escapeHtml(r.unit || '')}</span>${r.status && r.status !== 'final' ? `<span class="lab-status">${escapeHtml(r.status)}</span>` : ''}</td>
        <td>${escapeHtml(range(r))}</td>
        <td class="lab-flag">${r.abnormal ? `<strong>${escapeHtml(flag)}</strong>` : escapeHtml(flag)}</td>
        <td>${escapeHtml(when(r.effective))}</td>
      </tr>`;
    }).join('');
  }
}

function key(r) {
  return `${r.patient || ''}|${r.loinc}`;
}

function range({ ref_low: low, ref_high: high }) {
  if (low != null && high != null) return `${formatNumber(low)}–${formatNumber(high)}`;
  if (high != null) return `≤ ${formatNumber(high)}`;
  if (low != null) return `≥ ${formatNumber(low)}`;
  return '—';
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
