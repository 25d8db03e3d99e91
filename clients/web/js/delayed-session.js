// A view of a Session whose events reach listeners `delay()` seconds late. The trainee
// page watches the operating room over HLS, a second or two behind; its clinical panel
// listens through this view so that an image, a lab or the ECG appears with the picture
// it belongs to, not before it. Everything else is the session itself (methods run on
// the session, so a token refresh through the view renews the session's token).

export function delayedSession(session, delay) {
  let lastDelay = 0; // seconds, as applied to the latest event (diagnostics, tests)
  const addEventListener = (type, listener, options) => session.addEventListener(type, (event) => {
    const seconds = Math.min(30, Math.max(0, delay() || 0));
    lastDelay = seconds;
    if (seconds < 0.02) listener(event);
    else setTimeout(() => listener(event), seconds * 1000);
  }, options);
  return new Proxy(session, {
    get(target, prop) {
      if (prop === 'addEventListener') return addEventListener;
      if (prop === 'lastDelay') return lastDelay;
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
