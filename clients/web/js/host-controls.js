// Host controls in the room page (docs/signaling.md "Host controls"): who waits
// to be let in, the participants with mute and remove, the room lock, end for
// everyone, and invite links. Everyone sees the lock state; only a host (the
// token's admin grant, as the server says in `joined`) gets the panel.

import { icon } from './icons.js';
import { mountInvites } from './invites.js';
import { $, escapeHtml, toast } from './util.js';

const CONFIRM_MS = 4000;

// `onToggle`: the panel opened or closed, so the stage has another width.
export function mountHostControls({ session, room, onToggle }) {
  const panel = document.createElement('aside');
  panel.id = 'host-panel';
  panel.className = 'side-panel host-panel';
  panel.setAttribute('aria-label', 'Host controls');
  panel.hidden = true;
  panel.innerHTML = `
    <header><h2>Host controls</h2><button class="btn btn-link" id="host-close" type="button">Close</button></header>
    <div class="host-body">
      <section id="waiting-section" aria-labelledby="waiting-title" hidden>
        <h3 id="waiting-title">Waiting to join</h3>
        <ul class="people-list" id="waiting-list"></ul>
      </section>
      <section aria-labelledby="room-title">
        <h3 id="room-title">This consult</h3>
        <div class="host-actions">
          <button class="btn" id="lock-toggle" type="button" aria-pressed="false"></button>
          <button class="btn btn-danger" id="end-all" type="button">End for everyone</button>
        </div>
      </section>
      <section aria-labelledby="people-title">
        <h3 id="people-title">Participants</h3>
        <ul class="people-list" id="participant-list"></ul>
      </section>
      <section id="invites-section" aria-labelledby="invites-title">
        <h3 id="invites-title">Invite links</h3>
      </section>
    </div>`;
  $('#room-body').append(panel);

  const lockChip = document.createElement('span');
  lockChip.className = 'chip chip-locked';
  lockChip.id = 'lock-chip';
  lockChip.textContent = 'Locked';
  lockChip.title = 'The host has locked this consult: no one new can join';
  lockChip.hidden = true;
  $('.topbar-right').prepend(lockChip);

  let button = null;
  let invites = null;
  const isHost = () => !!(session.me && session.me.grants && session.me.grants.admin);

  const act = async (message, what) => {
    try {
      await session.hostAction(message);
    } catch (err) {
      toast(`Could not ${what}: ${err.message}`);
    }
  };

  function ensureButton() {
    if (button || !isHost()) return;
    const group = $('#controls .controls-group:nth-child(2)');
    if (!group) return;
    button = document.createElement('button');
    button.className = 'ctl';
    button.id = 'ctl-host';
    button.type = 'button';
    button.setAttribute('aria-pressed', 'false');
    button.setAttribute('aria-controls', 'host-panel');
    button.innerHTML = `${icon('users')}<span>Host</span>`;
    button.addEventListener('click', () => toggle());
    group.append(button);
    invites = mountInvites($('#invites-section'), { room, session });
  }

  function toggle(force) {
    panel.hidden = force === undefined ? !panel.hidden : !force;
    if (button) button.setAttribute('aria-pressed', String(!panel.hidden));
    if (!panel.hidden && invites) invites.refresh();
    onToggle();
  }
  $('#host-close', panel).addEventListener('click', () => toggle(false));

  // Two clicks for what cannot be undone: the first asks, the second acts.
  function confirmFirst(btn, question, action) {
    if (btn.dataset.confirm) {
      delete btn.dataset.confirm;
      action();
      return;
    }
    const label = btn.textContent;
    btn.dataset.confirm = '1';
    btn.textContent = question;
    setTimeout(() => {
      if (!btn.dataset.confirm) return;
      delete btn.dataset.confirm;
      btn.textContent = label;
    }, CONFIRM_MS);
  }

  $('#lock-toggle', panel).addEventListener('click', () => act({ type: 'lock', locked: !session.locked }, 'change the lock'));
  $('#end-all', panel).addEventListener('click', (e) => confirmFirst(e.currentTarget, 'Click again to end for all',
    () => act({ type: 'end' }, 'end the consult')));
  $('#waiting-list', panel).addEventListener('click', (e) => {
    const b = e.target.closest('button[data-action]');
    if (b) act({ type: b.dataset.action, peer_id: b.closest('li').dataset.peerId }, b.dataset.action);
  });
  $('#participant-list', panel).addEventListener('click', (e) => {
    const b = e.target.closest('button[data-action]');
    if (!b) return;
    const li = b.closest('li');
    if (b.dataset.action === 'mute-participant') act({ type: 'mute-participant', peer_id: li.dataset.peerId }, 'mute');
    else confirmFirst(b, `Remove ${li.dataset.name}?`, () => act({ type: 'remove', peer_id: li.dataset.peerId }, 'remove'));
  });

  function micState(peerId) {
    const mics = [...session.tracks.values()].filter((t) => t.peer_id === peerId && t.kind === 'audio');
    return { has: mics.length > 0, live: mics.some((t) => !t.muted) };
  }

  function render() {
    lockChip.hidden = !session.locked;
    ensureButton();
    if (!isHost()) return;
    const waiting = [...session.waiting.values()];
    if (button) {
      let badge = button.querySelector('.count');
      if (waiting.length && !badge) { badge = document.createElement('span'); badge.className = 'count'; button.append(badge); }
      if (badge) {
        if (waiting.length) badge.textContent = String(waiting.length);
        else badge.remove();
      }
    }
    $('#waiting-section', panel).hidden = !waiting.length;
    $('#waiting-list', panel).innerHTML = waiting.map((p) => `
      <li data-peer-id="${escapeHtml(p.peer_id)}"><span class="who">${escapeHtml(p.name)}<small>${escapeHtml(p.role)}</small></span>
        <button class="btn btn-primary admit-btn" type="button" data-action="admit">Admit</button>
        <button class="btn deny-btn" type="button" data-action="deny">Deny</button></li>`).join('');
    const lock = $('#lock-toggle', panel);
    lock.setAttribute('aria-pressed', String(session.locked));
    lock.textContent = session.locked ? 'Unlock the consult' : 'Lock the consult';
    // Pending confirmations survive a re-render: keep rows whose content did not change.
    const list = $('#participant-list', panel);
    const people = [...session.participants.values()].filter((p) => !p.screen || p.screen === 1);
    const rows = people.map((p) => {
      const mic = micState(p.peer_id);
      const key = `${p.peer_id}|${p.name}|${p.role}|${mic.has}|${mic.live}`;
      const old = list.querySelector(`li[data-peer-id="${CSS.escape(p.peer_id)}"]`);
      if (old && old.dataset.key === key) return old;
      const li = document.createElement('li');
      li.dataset.peerId = p.peer_id;
      li.dataset.name = p.name;
      li.dataset.key = key;
      li.innerHTML = `<span class="who">${escapeHtml(p.name)}<small>${escapeHtml(p.role)}${mic.has && !mic.live ? ' · muted' : ''}</small></span>
        <button class="btn mute-btn" type="button" data-action="mute-participant" ${mic.live ? '' : 'disabled'}
          title="${mic.live ? 'Mute their microphone; only they can unmute it' : 'No live microphone'}">${icon('mic-off')}<span>Mute</span></button>
        <button class="btn remove-btn" type="button" data-action="remove">Remove</button>`;
      return li;
    });
    list.replaceChildren(...rows);
    if (!rows.length) list.innerHTML = '<li class="hint">No one else is here yet.</li>';
  }

  session.addEventListener('state', render);
  session.addEventListener('host', (e) => {
    const m = e.detail;
    const me = session.me && session.me.peer_id;
    if (m.type === 'knock' && isHost()) toast(`${m.participant.name} is waiting to join`);
    if (m.type === 'room-locked' && m.by.peer_id !== me) toast(m.locked ? `${m.by.name} locked the consult` : `${m.by.name} unlocked the consult`);
    if (m.type === 'participant-muted' && m.peer_id === me) toast(`${m.by.name} muted your microphone. Unmute it when you want to speak.`);
    if (m.type === 'participant-removed' && m.peer_id !== me) toast(`${m.name} was removed by ${m.by.name}`);
  });
  render();
  return { render, toggle };
}

// What a disconnected page says, in plain words, for the host's reasons.
export function kickedMessage(reason) {
  if (reason === 'removed by the host') return ['You were removed from the consult', 'The host removed you. You cannot rejoin this consult.'];
  if (reason === 'ended by host') return ['The consult has ended', 'The host ended the consult for everyone.'];
  return null;
}

// The screen a guest sees while the host has not let them in yet.
export function showWaiting(room, name) {
  let box = $('#waiting-screen');
  if (!box) {
    box = document.createElement('section');
    box.id = 'waiting-screen';
    box.className = 'ended';
    box.setAttribute('role', 'status');
    document.body.append(box);
  }
  box.innerHTML = `<div class="card"><span class="spinner" aria-hidden="true"></span>
    <h2>Waiting for the host to admit you</h2>
    <p>You are in the waiting room of “${escapeHtml(room)}”${name ? ` as ${escapeHtml(name)}` : ''}. The host has been told you are here. Please keep this page open.</p></div>`;
  box.hidden = false;
}

export function hideWaiting() {
  const box = $('#waiting-screen');
  if (box) box.remove();
}
