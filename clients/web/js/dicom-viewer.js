// One shared DICOM object, shown as the server's PNG preview (the file itself never
// travels to viewers). Window/level (sliders, or drag on the image) and the frame
// (slider, mouse wheel, arrow keys) become the preview's wc/ww/frame parameters.
//
// Previews load one at a time, newest wish first, so scrolling through a series
// asks the server for the frames it can show, not for every wheel step. Links are
// signed for a few minutes: an expired one is renewed through `renewLinks`.
//
// A multi-frame object shows its first frame at once; then the other frames stream in
// behind it, one request at a time, at the current window (the browser keeps them:
// previews are cacheable for a few minutes), so scrolling finds them ready.

import { escapeHtml } from './util.js';

const RENEW_BEFORE_S = 15;

export class DicomViewer {
  // renewLinks(sha256) -> Promise<{url, preview_url}>
  constructor(container, { renewLinks }) {
    this.renewLinks = renewLinks;
    this.item = null;
    this.view = null;   // {frame, wc, ww}; wc/ww null: the object's own VOI
    this.shown = '';    // the preview URL on screen
    this.loading = false;
    this.prefetching = ''; // "sha256|wc|ww" whose frames stream (or streamed) in
    container.innerHTML = `
      <figure class="dicom-viewer" data-role="viewer" hidden>
        <div class="dicom-stage" tabindex="0" data-role="stage">
          <img data-role="image" alt="">
          <span class="dicom-overlay" data-role="overlay" aria-hidden="true"></span>
        </div>
        <figcaption data-role="caption"></figcaption>
        <div class="dicom-controls">
          <label data-role="frame-control">Frame <input type="range" min="0" value="0" step="1" data-role="frame"></label>
          <label>Level <input type="range" data-role="wc"></label>
          <label>Window <input type="range" data-role="ww"></label>
          <button type="button" class="btn" data-role="reset">Reset window</button>
          <a class="btn" data-role="download" download>Download DICOM</a>
          <button type="button" class="btn" data-role="close">Close</button>
        </div>
        <p class="dicom-status" data-role="status" role="status"></p>
      </figure>`;
    const $ = (role) => container.querySelector(`[data-role="${role}"]`);
    Object.assign(this, {
      root: $('viewer'), stage: $('stage'), img: $('image'), overlay: $('overlay'), caption: $('caption'),
      frameInput: $('frame'), frameControl: $('frame-control'), wcInput: $('wc'), wwInput: $('ww'),
      download: $('download'), status: $('status'),
    });
    this.frameInput.addEventListener('input', () => this.set({ frame: +this.frameInput.value }));
    this.wcInput.addEventListener('input', () => this.set({ wc: +this.wcInput.value, ww: +this.wwInput.value }));
    this.wwInput.addEventListener('input', () => this.set({ wc: +this.wcInput.value, ww: +this.wwInput.value }));
    $('reset').addEventListener('click', () => this.set({ wc: null, ww: null }));
    $('close').addEventListener('click', () => this.close());
    this.download.addEventListener('click', (e) => this.onDownload(e));
    this.stage.addEventListener('wheel', (e) => this.onWheel(e), { passive: false });
    this.stage.addEventListener('keydown', (e) => this.onKey(e));
    this.stage.addEventListener('pointerdown', (e) => this.onDragStart(e));
  }

  get frames() {
    return Math.max(1, this.item?.object?.frames || 1);
  }

  open(item) {
    this.item = item;
    this.shown = '';
    this.prefetching = '';
    delete this.stage.dataset.prefetched;
    this.windowing = windowRange(item.object || {});
    this.view = { frame: 0, wc: null, ww: null };
    this.noWindow = false;
    const o = item.object || {};
    this.root.hidden = false;
    this.caption.innerHTML = `<strong>${escapeHtml(item.name)}</strong>
      <span>${escapeHtml([o.modality, o.sop_class_name, item.sender_name && `shared by ${item.sender_name}`].filter(Boolean).join(' · '))}</span>`;
    this.stage.setAttribute('aria-label', `${item.name}. ${this.frames > 1 ? 'Mouse wheel or arrow keys change the frame. ' : ''}Drag to adjust the window.`);
    this.frameControl.hidden = this.frames < 2;
    this.frameInput.max = String(this.frames - 1);
    const { start, center, width } = this.windowing;
    for (const [input, [lo, hi], from] of [[this.wcInput, center, start.wc], [this.wwInput, width, start.ww]]) {
      // Steps counted from the starting value, so that the slider can show it exactly.
      const step = Math.max(1, Math.round((hi - lo) / 400));
      input.step = String(step);
      input.min = String(from - step * Math.ceil((from - lo) / step));
      input.max = String(from + step * Math.ceil((hi - from) / step));
      input.disabled = false;
    }
    this.download.href = item.url;
    this.img.removeAttribute('src');
    this.set({});
    this.stage.focus({ preventScroll: true });
  }

  close() {
    this.item = null;
    this.root.hidden = true;
    this.img.removeAttribute('src');
  }

  // A `clinical-state` or renewal brought fresh links for an object.
  updateLinks(item) {
    if (!this.item || this.item.sha256 !== item.sha256) return;
    this.item = { ...this.item, url: item.url, preview_url: item.preview_url };
    this.download.href = item.url;
  }

  set(change) {
    const v = { ...this.view, ...change };
    v.frame = Math.min(this.frames - 1, Math.max(0, Math.round(v.frame)));
    this.view = v;
    const wl = v.wc === null ? this.windowing.start : v;
    this.frameInput.value = String(v.frame);
    this.wcInput.value = String(wl.wc);
    this.wwInput.value = String(wl.ww);
    this.overlay.textContent = [
      this.frames > 1 ? `Frame ${v.frame + 1} / ${this.frames}` : '',
      this.noWindow ? 'Colour: no window/level' : v.wc === null ? 'W/L: image default' : `W ${Math.round(v.ww)} · L ${Math.round(v.wc)}`,
    ].filter(Boolean).join(' · ');
    this.load();
  }

  async load() {
    if (this.loading) return; // the running loop picks up the newest view
    this.loading = true;
    let renewed = false;
    try {
      while (this.item) {
        const item = this.item;
        if (linkExpiresIn(item.preview_url) < RENEW_BEFORE_S) await this.renew(item);
        const src = previewUrl(this.item.preview_url, this.view);
        if (src === this.shown) break;
        const failure = await loadImage(src);
        if (this.item?.sha256 !== item.sha256) continue; // closed, or another object opened meanwhile
        if (!failure) {
          this.img.src = src;
          this.img.alt = `${item.name}${this.frames > 1 ? `, frame ${this.view.frame + 1} of ${this.frames}` : ''}`;
          this.shown = src;
          this.showStatus('');
          this.prefetch();
          continue;
        }
        if (failure.status === 403 && !renewed) {
          renewed = true;
          await this.renew(item);
          continue;
        }
        if (failure.code === 'preview-window') {
          // Colour images have no window: go back to the image as it is.
          this.wcInput.disabled = this.wwInput.disabled = true;
          this.noWindow = true;
          this.set({ wc: null, ww: null });
          this.showStatus(`Window/level not available: ${failure.error}`, true);
          continue;
        }
        this.showStatus(`Preview not available: ${failure.error}`, true);
        break;
      }
    } catch (err) {
      this.showStatus(`Preview not available: ${err.message}`, true);
    } finally {
      this.loading = false;
    }
  }

  // The other frames of the object on show, at its current window, from the one shown on.
  async prefetch() {
    const item = this.item;
    const { frame, wc, ww } = this.view;
    const key = `${item.sha256}|${wc}|${ww}`;
    if (this.frames < 2 || this.prefetching === key) return;
    this.prefetching = key;
    const current = () => this.item?.sha256 === item.sha256 && this.view.wc === wc && this.view.ww === ww;
    let done = 0;
    for (let k = 1; k < this.frames && current() && this.prefetching === key; k++) {
      const src = previewUrl(this.item.preview_url, { frame: (frame + k) % this.frames, wc, ww });
      if (linkExpiresIn(src) < RENEW_BEFORE_S) break; // the shown frame's loop renews links
      const probe = new Image();
      probe.src = src;
      try {
        await probe.decode();
      } catch {
        break; // the viewer's own loop reports errors
      }
      done += 1;
      this.stage.dataset.prefetched = String(done);
    }
  }

  async renew(item) {
    const links = await this.renewLinks(item.sha256);
    this.updateLinks({ ...links, sha256: item.sha256 });
  }

  showStatus(text, error = false) {
    this.status.textContent = text;
    this.status.classList.toggle('error', error);
  }

  async onDownload(e) {
    if (!this.item || linkExpiresIn(this.item.url) >= RENEW_BEFORE_S) return;
    e.preventDefault();
    try {
      await this.renew(this.item);
      location.assign(this.item.url); // served as an attachment: the page stays
    } catch (err) {
      this.showStatus(`Download not available: ${err.message}`, true);
    }
  }

  onWheel(e) {
    if (this.frames < 2) return;
    e.preventDefault();
    this.set({ frame: this.view.frame + Math.sign(e.deltaY) });
  }

  onKey(e) {
    const step = { ArrowDown: 1, ArrowRight: 1, PageDown: 1, ArrowUp: -1, ArrowLeft: -1, PageUp: -1 }[e.key];
    if (!step || this.frames < 2) return;
    e.preventDefault();
    this.set({ frame: this.view.frame + step });
  }

  // Drag: right widens the window, down raises the level, as on a workstation.
  onDragStart(e) {
    if (e.button !== 0 || this.wwInput.disabled) return;
    e.preventDefault();
    this.stage.setPointerCapture(e.pointerId);
    const from = this.view.wc === null ? { ...this.windowing.start } : { wc: this.view.wc, ww: this.view.ww };
    const [x0, y0] = [e.clientX, e.clientY];
    const perPixel = (this.windowing.width[1] - this.windowing.width[0]) / 600;
    const move = (m) => this.set({
      ww: clamp(from.ww + (m.clientX - x0) * perPixel, this.windowing.width),
      wc: clamp(from.wc + (m.clientY - y0) * perPixel, this.windowing.center),
    });
    const end = () => {
      this.stage.removeEventListener('pointermove', move);
      this.stage.removeEventListener('pointerup', end);
      this.stage.removeEventListener('pointercancel', end);
    };
    this.stage.addEventListener('pointermove', move);
    this.stage.addEventListener('pointerup', end);
    this.stage.addEventListener('pointercancel', end);
  }
}

// Slider ranges and the starting window: the object's own window when it has one;
// for CT without one, soft tissue in Hounsfield units; otherwise a 12-bit guess.
function windowRange(o) {
  if (o.window_center != null && o.window_width != null) {
    const ww = Math.max(1, o.window_width);
    return { start: { wc: o.window_center, ww }, center: [o.window_center - 2 * ww, o.window_center + 2 * ww], width: [1, 4 * ww] };
  }
  if (o.modality === 'CT') return { start: { wc: 40, ww: 400 }, center: [-1024, 3071], width: [1, 4096] };
  return { start: { wc: 2048, ww: 4096 }, center: [0, 4095], width: [1, 8192] };
}

function previewUrl(link, { frame, wc, ww }) {
  const url = new URL(link, location.href);
  url.searchParams.set('frame', String(frame));
  if (wc !== null) {
    url.searchParams.set('wc', String(Math.round(wc)));
    url.searchParams.set('ww', String(Math.max(1, Math.round(ww))));
  }
  return url.pathname + url.search;
}

function linkExpiresIn(link) {
  const exp = Number(new URL(link, location.href).searchParams.get('exp'));
  return exp ? exp - Date.now() / 1000 : Infinity;
}

// null once the image is decoded; else the server's {status, code, error}.
async function loadImage(src) {
  const probe = new Image();
  probe.src = src;
  try {
    await probe.decode();
    return null;
  } catch {
    try {
      const response = await fetch(src);
      const body = await response.json().catch(() => ({}));
      return { status: response.status, code: body.code || '', error: body.error || `HTTP ${response.status}` };
    } catch {
      return { status: 0, code: 'network', error: 'the server cannot be reached' };
    }
  }
}

function clamp(value, [lo, hi]) {
  return Math.min(hi, Math.max(lo, value));
}
