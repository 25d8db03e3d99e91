// Invite links in the host panel: make one (role, how long, how many uses, a
// label), show it as a link to copy and a QR code, list them and withdraw them.
// The server signs and counts them (docs/signaling.md "Invites").

import { createInvite, listInvites, revokeInvite } from './api.js';
import { shareableLink } from './invite-link.js';
import { qrSvg } from './qr.js';
import { $, escapeHtml } from './util.js';

const ROLES = { participant: 'Participant', viewer: 'Trainee (watch only)', device: 'Device' };
const EXPIRIES = [[900, '15 minutes'], [3600, '1 hour'], [86400, '1 day'], [604800, '7 days']];

export function mountInvites(section, { room, session }) {
  section.insertAdjacentHTML('beforeend', `
    <form id="invite-form" class="invite-form" novalidate>
      <div class="field"><label for="invite-role">Joins as</label>
        <select id="invite-role">${Object.entries(ROLES).map(([v, l]) => `<option value="${v}">${l}</option>`).join('')}</select></div>
      <div class="field"><label for="invite-expiry">Valid for</label>
        <select id="invite-expiry">${EXPIRIES.map(([s, l]) => `<option value="${s}" ${s === 3600 ? 'selected' : ''}>${l}</option>`).join('')}</select></div>
      <div class="field"><label for="invite-uses">Uses <span class="hint">· empty for no limit</span></label>
        <input id="invite-uses" type="number" min="1" step="1" inputmode="numeric" value="1"></div>
      <div class="field"><label for="invite-label">Label <span class="hint">· e.g. the patient’s first name</span></label>
        <input id="invite-label" maxlength="80" autocomplete="off"></div>
      <button class="btn btn-primary" type="submit" id="invite-create">Create invite link</button>
    </form>
    <div id="invite-alert" class="alert alert-error" role="alert" hidden></div>
    <div id="invite-made" class="invite-made" hidden>
      <label for="invite-link">Share this link</label>
      <div class="copy-row"><input id="invite-link" readonly><button class="btn" type="button" id="invite-copy">Copy</button></div>
      <div id="invite-qr"></div>
    </div>
    <ul class="people-list invite-list" id="invite-list"></ul>`);

  const alertBox = $('#invite-alert', section);
  const fail = (err) => { alertBox.textContent = err.message; alertBox.hidden = false; };

  $('#invite-form', section).addEventListener('submit', async (e) => {
    e.preventDefault();
    alertBox.hidden = true;
    const usesText = $('#invite-uses', section).value.trim();
    const maxUses = usesText ? parseInt(usesText, 10) : null;
    if (usesText && !(maxUses >= 1)) {
      fail(new Error('Uses must be a whole number of at least 1, or empty for no limit.'));
      return;
    }
    const role = $('#invite-role', section).value;
    try {
      const made = await createInvite(room, await session.freshToken(), {
        role, expiresIn: parseInt($('#invite-expiry', section).value, 10), maxUses,
        label: $('#invite-label', section).value.trim(),
      });
      show(shareableLink(made.link), made.invite);
      refresh();
    } catch (err) {
      fail(err);
    }
  });

  function show(link, invite) {
    $('#invite-made', section).hidden = false;
    $('#invite-link', section).value = link;
    const who = invite.label ? ` for ${invite.label}` : '';
    $('#invite-qr', section).replaceChildren(qrSvg(link, `QR code of the invite link${who}`));
    $('#invite-made', section).scrollIntoView({ block: 'nearest' });
  }

  $('#invite-copy', section).addEventListener('click', async () => {
    const input = $('#invite-link', section);
    const btn = $('#invite-copy', section);
    try {
      await navigator.clipboard.writeText(input.value);
      btn.textContent = 'Copied';
    } catch {
      input.select(); // the user copies it by hand
      btn.textContent = 'Press Ctrl+C';
    }
    setTimeout(() => { btn.textContent = 'Copy'; }, 2500);
  });

  $('#invite-list', section).addEventListener('click', async (e) => {
    const b = e.target.closest('button[data-invite]');
    if (!b) return;
    try {
      await revokeInvite(room, await session.freshToken(), b.dataset.invite);
      refresh();
    } catch (err) {
      fail(err);
    }
  });

  async function refresh() {
    let invites;
    try {
      ({ invites } = await listInvites(room, await session.freshToken()));
    } catch (err) {
      fail(err);
      return;
    }
    const now = Date.now() / 1000;
    $('#invite-list', section).innerHTML = invites.map((i) => {
      const state = i.revoked ? 'withdrawn' : i.expires_at <= now ? 'expired'
        : i.max_uses !== null && i.uses >= i.max_uses ? 'used up' : 'active';
      const until = new Date(i.expires_at * 1000).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
      return `<li data-invite-id="${escapeHtml(i.id)}" data-state="${state}"><span class="who">${escapeHtml(i.label || ROLES[i.role] || i.role)}
        <small>${escapeHtml(ROLES[i.role] || i.role)} · ${i.uses}${i.max_uses === null ? '' : `/${i.max_uses}`} used · ${state === 'active' ? `until ${until}` : state}</small></span>
        ${state === 'active' ? `<button class="btn revoke-btn" type="button" data-invite="${escapeHtml(i.id)}">Withdraw</button>` : ''}</li>`;
    }).join('');
  }

  // Someone joining may have spent a use: keep the counts true while the host looks.
  session.addEventListener('participant', (e) => {
    if (e.detail.joined && section.offsetParent !== null) refresh();
  });

  return { refresh };
}
