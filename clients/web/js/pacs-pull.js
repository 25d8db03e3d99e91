// Pulls a study, one of its series or one instance from the server's PACS into the
// consult (docs/signaling.md, "Pulling from a PACS"). Offered only where the server
// says a PACS is configured (`pacs` in `clinical-state`). The pulled images reach
// everyone's list as ordinary `dicom` notices; this form tells its sender how the
// pull went, in the server's words.

// PS3.5 9.1, checked as the server checks it, so that a typo is caught before sending:
// digit components without leading zeros, separated by dots, at most 64 characters.
const UID = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/;
const MAX_UID = 64;

const FIELDS = [
  { key: 'study_uid', label: 'Study Instance UID', hint: 'required' },
  { key: 'series_uid', label: 'Series Instance UID', hint: 'optional' },
  { key: 'instance_uid', label: 'SOP Instance UID', hint: 'optional; needs the series' },
];

// Why `value` is not a DICOM UID, or null if it is one.
function uidProblem(value, label) {
  if (value.length > MAX_UID) return `${label} has ${value.length} characters; a DICOM UID has at most ${MAX_UID}.`;
  if (!UID.test(value)) {
    return `${label} is not a DICOM UID: digits and dots only, no part starting with 0 (e.g. 1.2.840.113619.2.55).`;
  }
  return null;
}

export class PacsPull {
  constructor(container, session) {
    this.session = session;
    this.container = container;
    this.pending = null; // {ref, shared}: the pull under way
    container.innerHTML = `
      <form class="pacs-pull" data-role="form" novalidate aria-labelledby="pacs-title">
        <h3 id="pacs-title">Pull from PACS</h3>
        ${FIELDS.map(({ key, label, hint }) => `
          <div class="field">
            <label for="pacs-${key}">${label} <span class="hint">(${hint})</span></label>
            <input id="pacs-${key}" name="${key}" autocomplete="off" spellcheck="false" inputmode="decimal"
              aria-describedby="pacs-problem"${key === 'study_uid' ? ' required' : ''}>
          </div>`).join('')}
        <p class="field-error" id="pacs-problem" data-role="problem" role="alert" hidden></p>
        <div class="form-actions">
          <button type="submit" class="btn" data-role="pull">Pull and share</button>
        </div>
        <div class="pacs-status" data-role="status" role="status"></div>
      </form>`;
    container.hidden = true; // until the server says it has a PACS
    this.form = container.querySelector('[data-role="form"]');
    this.problem = container.querySelector('[data-role="problem"]');
    this.status = container.querySelector('[data-role="status"]');
    this.button = container.querySelector('[data-role="pull"]');
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    this.form.addEventListener('input', () => this.showProblem(null));
    session.addEventListener('data', (e) => this.onData(e.detail));
    session.addEventListener('status', (e) => {
      if (this.pending && e.detail.status !== 'connected') {
        this.finish('error', 'The connection dropped during the pull. Images already shared stay in the list; pull again for the rest.');
      }
    });
  }

  submit() {
    if (this.pending) return;
    const request = this.validate();
    if (!request) return;
    const ref = `pull-${crypto.getRandomValues(new Uint32Array(2)).join('-')}`;
    try {
      this.session.sendData({ type: 'dicom-pull', ...request, ref });
    } catch (err) {
      this.show('error', err.message);
      return;
    }
    this.pending = { ref, shared: 0 };
    this.button.disabled = true;
    this.show('busy', 'Pulling…');
  }

  // The request to send, or null after pointing at the first bad field.
  validate() {
    const values = Object.fromEntries(FIELDS.map(({ key }) => [key, this.form.elements[key].value.trim()]));
    const problems = FIELDS.map(({ key, label }) => [key, values[key] ? uidProblem(values[key], label)
      : key === 'study_uid' && `Enter the ${label}.`]);
    if (values.instance_uid && !values.series_uid) {
      problems.push(['series_uid', 'A SOP Instance UID needs the Series Instance UID it belongs to.']);
    }
    const [bad, problem] = problems.find(([, text]) => text) || [null, null];
    this.showProblem(problem, bad);
    return problem ? null : Object.fromEntries(Object.entries(values).filter(([, value]) => value));
  }

  showProblem(text, key = null) {
    this.problem.textContent = text || '';
    this.problem.hidden = !text;
    for (const { key: name } of FIELDS) {
      const input = this.form.elements[name];
      if (name === key) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    }
    if (key) this.form.elements[key].focus();
  }

  onData(m) {
    if (m.type === 'clinical-state') {
      this.container.hidden = !m.pacs;
      return;
    }
    const pending = this.pending;
    if (!pending || m.ref !== pending.ref) return;
    if (m.type === 'dicom' && m.sender === this.session.me?.peer_id) {
      pending.shared++;
      this.show('busy', `Pulling… ${imageCount(pending.shared)} shared so far`);
    } else if (m.type === 'dicom-pull-done') {
      this.finish('done', `${imageCount(m.count)} shared`, (m.refused || []).map((r) => `Not shared: ${r.error}`));
    } else if (m.type === 'error') {
      const before = m.count ? ` ${imageCount(m.count)} shared before it stopped.` : '';
      this.finish('error', `Not pulled: ${m.error || 'the server refused the pull.'}${before}`);
    }
  }

  finish(kind, text, details = []) {
    this.pending = null;
    this.button.disabled = false;
    this.show(kind, text, details);
  }

  // kind: busy | done | error. Errors are announced at once (role alert).
  show(kind, text, details = []) {
    this.status.className = `pacs-status ${kind}`;
    this.status.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    const line = document.createElement('p');
    line.textContent = text;
    this.status.replaceChildren(line);
    if (!details.length) return;
    const list = document.createElement('ul');
    for (const detail of details) list.append(Object.assign(document.createElement('li'), { textContent: detail }));
    this.status.append(list);
  }
}

function imageCount(n) {
  return `${n === 0 ? 'No' : n} image${n === 1 ? '' : 's'}`;
}
