// Small shared helpers.

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

export function initials(name) {
  const words = String(name || '?').replace(/^(dr|prof|mr|mrs|ms)\.?\s+/i, '').split(/\s+/).filter(Boolean);
  return ((words[0] || '?')[0] + (words.length > 1 ? words[words.length - 1][0] : '')).toUpperCase();
}

export function clockTime(date = new Date()) {
  return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

export function toast(text, ms = 3500) {
  let box = document.querySelector('.toasts');
  if (!box) {
    box = document.createElement('div');
    box.className = 'toasts';
    box.setAttribute('aria-live', 'polite');
    document.body.append(box);
  }
  const el = document.createElement('div');
  el.className = 'toast';
  el.textContent = text;
  box.append(el);
  setTimeout(() => el.remove(), ms);
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

// A hidden live-region badge at the start of a top-bar slot (REC, LIVE).
export function statusBadge(slot, id) {
  const el = document.createElement('span');
  el.className = id;
  el.id = id;
  el.setAttribute('role', 'status');
  el.hidden = true;
  slot.prepend(el);
  return el;
}
