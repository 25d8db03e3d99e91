// Simulcast for the consult room: the camera goes out as three layers (rid q/h/f, a
// quarter, half and full resolution), and the page tells the server how large it
// shows each remote video, so a small tile gets a small layer (docs/simulcast.md).

export const LAYERS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 2_500_000 },
];

// addTransceiver options for a local track: simulcast for camera video only (a screen
// share's text needs every pixel; audio has no layers).
export function sendOptions(source, track, enabled = true) {
  const options = { direction: 'sendonly' };
  if (enabled && source === 'camera' && track.kind === 'video') {
    options.sendEncodings = LAYERS.map((layer) => ({ ...layer }));
  }
  return options;
}

const RESEND_MS = 5000;  // a renegotiated subscription starts without the server knowing

// Reports the device-pixel size of every remote video tile under `root` to the server
// (`send(trackId, width, height)`), when it changes and every few seconds.
export function watchTileSizes(root, send) {
  const sizes = new Map();  // track id -> [width, height]
  const report = (el) => {
    const trackId = el.dataset.trackId;
    if (!trackId) return;
    const box = el.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    const size = [Math.max(1, Math.round(box.width * ratio)), Math.max(1, Math.round(box.height * ratio))];
    const last = sizes.get(trackId);
    sizes.set(trackId, size);
    if (!last || last[0] !== size[0] || last[1] !== size[1]) send(trackId, size[0], size[1]);
  };
  const resized = new ResizeObserver((entries) => entries.forEach((e) => report(e.target)));
  const watched = new WeakSet();
  const scan = () => {
    for (const el of root.querySelectorAll('[data-track-id]')) {
      if (!watched.has(el)) { watched.add(el); resized.observe(el); }
      report(el);
    }
  };
  new MutationObserver(scan).observe(root, { childList: true, subtree: true, attributes: true, attributeFilter: ['data-track-id'] });
  scan();
  setInterval(() => {
    for (const [trackId, [w, h]] of sizes) send(trackId, w, h);
  }, RESEND_MS);
}
