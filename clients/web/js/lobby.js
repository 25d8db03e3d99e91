// The lobby: room, name, password and role; camera and microphone with a live
// preview; then a token from the server and on to the room (or viewer) page.

import { ApiError, createRoom, redeemInvite, requestToken } from './api.js';
import { inviteMessage, readInvite } from './invite-link.js';
import { LevelMeter } from './meter.js';
import { lastName, rememberName, saveSeat, loadSeat } from './seat.js';
import { $ } from './util.js';

const form = $('#join-form');
const alertBox = $('#form-alert');
const joinBtn = $('#join-btn');
const cameraSel = $('#camera');
const micSel = $('#microphone');
const qualitySel = $('#quality');
const video = $('#preview-video');
const note = $('#preview-note');
const meter = new LevelMeter($('#meter'));
let stream = null;
let lockedUntil = 0;

const params = new URLSearchParams(location.search);
const invite = readInvite(params);
let inviteDead = false;
$('#room').value = (invite && invite.room) || params.get('room') || '';
$('#name').value = lastName();
if (params.get('reason') === 'expired') showAlert('Your session has ended. Enter the room password to join again.', 'info');
if (params.get('reason') === 'signin') showAlert('Please sign in to this room first.', 'info');
// A trainee's link (?role=viewer) never starts the camera preview, so no prompt.
const wantedRole = (invite && invite.role) || params.get('role');
if (['participant', 'host', 'viewer'].includes(wantedRole)) {
  form.querySelector(`input[name="role"][value="${wantedRole}"]`).checked = true;
}
const previous = params.get('room') && loadSeat(params.get('room'));
if (previous && previous.quality) qualitySel.value = previous.quality;

function role() {
  return form.querySelector('input[name="role"]:checked').value;
}

function showAlert(text, kind = 'error') {
  alertBox.textContent = text;
  alertBox.className = `alert alert-${kind}`;
  alertBox.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  alertBox.hidden = false;
  alertBox.scrollIntoView({ block: 'nearest' });
}

function hideAlert() {
  alertBox.hidden = true;
}

// ---------- devices ----------

async function startPreview() {
  stopPreview();
  if (inviteDead) return; // a dead invite link never turns the camera back on
  note.textContent = 'Starting camera…';
  note.hidden = false;
  const constraints = {
    video: cameraSel.value ? { deviceId: { exact: cameraSel.value } } : true,
    audio: micSel.value ? { deviceId: { exact: micSel.value } } : true,
  };
  try {
    stream = await navigator.mediaDevices.getUserMedia(constraints);
  } catch (err) {
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      note.textContent = 'No camera available. You can still join with audio.';
    } catch {
      note.textContent = 'Camera and microphone are blocked or missing. You can still join, but others will not see or hear you.';
      meter.draw(0);
      return;
    }
  }
  if (inviteDead) { // the link died while the browser was opening the camera
    stopPreview();
    return;
  }
  video.srcObject = stream;
  if (stream.getVideoTracks().length) note.hidden = true;
  meter.attach(stream);
  await fillDevices();
}

function stopPreview() {
  meter.detach();
  if (stream) stream.getTracks().forEach((t) => t.stop());
  stream = null;
  video.srcObject = null;
}

async function fillDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const current = {
    videoinput: stream && stream.getVideoTracks()[0] && stream.getVideoTracks()[0].getSettings().deviceId,
    audioinput: stream && stream.getAudioTracks()[0] && stream.getAudioTracks()[0].getSettings().deviceId,
  };
  for (const [select, kind, fallback] of [[cameraSel, 'videoinput', 'Camera'], [micSel, 'audioinput', 'Microphone']]) {
    const list = devices.filter((d) => d.kind === kind);
    select.replaceChildren(...list.map((d, i) => new Option(d.label || `${fallback} ${i + 1}`, d.deviceId)));
    if (!list.length) select.append(new Option(`No ${fallback.toLowerCase()} found`, ''));
    if (current[kind]) select.value = current[kind];
  }
}

cameraSel.addEventListener('change', startPreview);
micSel.addEventListener('change', startPreview);
document.addEventListener('click', () => meter.resume(), { once: true });

function applyRole() {
  const viewer = role() === 'viewer';
  $('#devices').hidden = viewer;
  $('#viewer-note').hidden = !viewer;
  if (viewer) stopPreview();
  else if (!stream) startPreview();
}
form.querySelectorAll('input[name="role"]').forEach((r) => r.addEventListener('change', applyRole));

// ---------- join ----------

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  hideAlert();
  if (inviteDead) return;
  const room = $('#room').value.trim();
  const name = $('#name').value.trim();
  const password = $('#password').value;
  if (invite && !name) {
    showAlert('Please enter your name.');
    $('#name').focus();
    return;
  }
  if (!invite && (!room || !name || !password)) {
    showAlert('Please enter the room name, your name and the room password.');
    (!room ? $('#room') : !name ? $('#name') : $('#password')).focus();
    return;
  }
  if (Date.now() < lockedUntil) return;
  joinBtn.disabled = true;
  joinBtn.textContent = 'Joining…';
  try {
    const grant = invite ? await redeemInvite(room, invite.code, name)
      : await requestToken(room, { password, role: role(), name });
    const chosenRole = grant.role;
    rememberName(name);
    saveSeat(room, {
      token: grant.token, identity: grant.identity, role: grant.role, grants: grant.grants, name,
      expires_at: Date.now() + (grant.expires_in || 0) * 1000,
      camera: chosenRole === 'viewer' ? null : cameraSel.value || null,
      microphone: chosenRole === 'viewer' ? null : micSel.value || null,
      quality: qualitySel.value,
    });
    stopPreview();
    const page = grant.role === 'viewer' ? 'viewer.html' : 'room.html';
    location.assign(`${page}?room=${encodeURIComponent(room)}`);
  } catch (err) {
    if (invite && err instanceof ApiError && /^invite-/.test(err.code)) {
      inviteFailed(err.code);
      return;
    }
    showAlert(joinError(err));
    if (err.status === 401 && !invite) { $('#password').select(); $('#password').focus(); }
    if (err.status === 429) lockFor(err.retryAfter || 30);
  } finally {
    if (Date.now() >= lockedUntil && !inviteDead) {
      joinBtn.disabled = false;
      joinBtn.textContent = 'Join consult';
    }
  }
});

function joinError(err) {
  if (!(err instanceof ApiError)) return 'Something went wrong. Please try again.';
  if (err.status === 401) return 'The room name or password is not correct. Check them and try again.';
  if (err.status === 429) return `Too many wrong attempts. For safety, please wait ${err.retryAfter || 30} seconds before trying again.`;
  if (err.status === 0) return err.message;
  return `Could not join: ${err.message}`;
}

function lockFor(seconds) {
  lockedUntil = Date.now() + seconds * 1000;
  joinBtn.disabled = true;
  const tick = () => {
    const left = Math.ceil((lockedUntil - Date.now()) / 1000);
    if (left <= 0) {
      joinBtn.disabled = false;
      joinBtn.textContent = 'Join consult';
      return;
    }
    joinBtn.textContent = `Try again in ${left}s`;
    setTimeout(tick, 500);
  };
  tick();
}

// ---------- create a room ----------

// Its own form: Enter in any of its fields creates the room, never joins one.
$('#create-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const box = $('#create-alert');
  const room = $('#new-room').value.trim();
  const password = $('#new-password').value;
  const show = (text, kind) => { box.textContent = text; box.className = `alert alert-${kind}`; box.hidden = false; };
  if (!room || !password) {
    show('Enter a name and a password for the new room.', 'error');
    (!room ? $('#new-room') : $('#new-password')).focus();
    return;
  }
  try {
    await createRoom(room, password, $('#admin-key').value.trim(), { waiting_room: $('#new-waiting-room').checked });
    show(`Room “${room}” is ready. You are its host: join it above with this password.`, 'ok');
    $('#room').value = room;
    $('#password').value = password;
    form.querySelector('input[name="role"][value="host"]').checked = true;
    applyRole();
  } catch (err) {
    if (err.status === 409) show(`A room called “${room}” already exists. Join it with its password.`, 'error');
    else if (err.status === 401 || err.status === 403) show('This server needs a valid administrator key to create rooms.', 'error');
    else show(`Could not create the room: ${err.message}`, 'error');
  }
});

// ---------- an invite link ----------

// The invite decides the role and stands in for the password; a link that cannot
// work says so in plain words and releases the camera and microphone at once.
function inviteFailed(code) {
  inviteDead = true;
  stopPreview();
  note.textContent = 'Camera and microphone are off.';
  note.hidden = false;
  $('#invite-note').hidden = true;
  showAlert(inviteMessage(code));
  joinBtn.disabled = true;
  joinBtn.textContent = 'Join consult';
}

if (invite) {
  $('#password-field').hidden = true;
  $('#role-field').hidden = true;
  $('#create-form').hidden = true;
  $('#room').readOnly = true;
  const box = $('#invite-note');
  box.textContent = invite.room ? `You are invited to the consult “${invite.room}”. Enter your name to join.` : 'You opened an invitation link.';
  box.hidden = false;
  $('#name').focus();
}

if (invite && invite.problem) inviteFailed(invite.problem);
else applyRole();
