// One timeline for many media elements: the recording's tracks each play from
// their own file, and must stay in step when played, paused, sped up or seeked.
//
// The master clock is one playing element that covers the current moment (audio
// first: a voice that skips is worse than a frame that repeats), read through its
// currentTime. The others follow it: a small drift is absorbed by nudging their
// playbackRate, a large one by a seek. Where no track covers the moment (a gap in
// the recording) the clock runs on wall time; where tracks cover it but none is
// ready (buffering), it waits for them.
//
// Times are seconds from the recording's start. A track is {start, end} on that
// timeline (end null: still growing, or unknown).

const SEEK_DRIFT_S = 0.5;   // beyond this, a follower jumps
const NUDGE_DRIFT_S = 0.04; // beyond this, it catches up by rate
const NUDGE = 0.1;          // at most ±10 % of the speed while catching up

export const SPEEDS = [0.5, 0.75, 1, 1.25, 1.5, 2];

export class ReplayClock extends EventTarget {
  constructor(duration) {
    super();
    this.duration = duration;
    this.media = [];          // {el, start, end, kind}
    this.speed = 1;
    this.playing = false;
    this.time = 0;
    this.master = null;
    this._wallAt = null;      // performance.now() when `time` was last taken from the wall
  }

  add(el, { start = 0, end = null, kind = 'video' }) {
    const entry = { el, start, end, kind };
    el.preload = 'auto';
    this.media.push(entry);
    return entry;
  }

  // How long a track is: from the manifest, else from the file once known.
  length(m) {
    if (m.end != null) return m.end - m.start;
    return Number.isFinite(m.el.duration) ? m.el.duration : Infinity;
  }

  covers(m, t) {
    return t >= m.start && t < m.start + this.length(m);
  }

  play() {
    if (this.time >= this.duration) this.seek(0);
    this.playing = true;
    this._wallAt = null;
    this.tick();
    this._emit();
  }

  pause() {
    this.playing = false;
    for (const m of this.media) m.el.pause();
    this._emit();
  }

  seek(t) {
    this.time = Math.max(0, Math.min(this.duration, t));
    this.master = null;
    this._wallAt = null;
    for (const m of this.media) {
      if (this.covers(m, this.time)) m.el.currentTime = this.time - m.start;
    }
    this.tick();
    this.dispatchEvent(new CustomEvent('seek'));
    this._emit();
  }

  setSpeed(speed) {
    this.speed = speed;
    for (const m of this.media) m.el.playbackRate = speed;
    this._emit();
  }

  // Called every animation frame: advance the timeline and steer every element.
  tick() {
    const now = performance.now();
    if (this.playing) {
      const active = this.media.filter((m) => this.covers(m, this.time));
      const ready = active.filter((m) => m.el.readyState >= 3 && !m.el.seeking && !m.el.paused);
      const master = ready.find((m) => m === this.master)
        || ready.find((m) => m.kind === 'audio') || ready[0] || null;
      if (master) {
        this.time = master.start + master.el.currentTime;
        this._wallAt = null;
      } else if (!active.length) {
        // A gap: nobody was recorded here; let the clock run to the next track.
        if (this._wallAt != null) this.time += ((now - this._wallAt) / 1000) * this.speed;
        this._wallAt = now;
      } else {
        this._wallAt = null; // buffering: hold the clock until a track can lead
      }
      this.master = master;
      if (this.time >= this.duration) {
        this.time = this.duration;
        this.pause();
        this.dispatchEvent(new CustomEvent('ended'));
      }
    }
    for (const m of this.media) this._steer(m);
  }

  _steer(m) {
    const el = m.el;
    if (!this.covers(m, this.time)) {
      if (!el.paused) el.pause();
      return;
    }
    const want = this.time - m.start;
    if (!this.playing) {
      if (!el.paused) el.pause();
      if (!el.seeking && Math.abs(el.currentTime - want) > NUDGE_DRIFT_S) el.currentTime = want;
      return;
    }
    if (el.paused) el.play().catch(() => {}); // refused autoplay shows as paused; the button retries
    if (el.seeking) return;
    if (m === this.master) {
      if (el.playbackRate !== this.speed) el.playbackRate = this.speed;
      return;
    }
    const drift = el.currentTime - want;
    if (Math.abs(drift) > SEEK_DRIFT_S) {
      el.currentTime = want;
      el.playbackRate = this.speed;
    } else if (Math.abs(drift) > NUDGE_DRIFT_S) {
      const correction = Math.max(-NUDGE, Math.min(NUDGE, -drift));
      el.playbackRate = this.speed * (1 + correction);
    } else if (el.playbackRate !== this.speed) {
      el.playbackRate = this.speed;
    }
  }

  // The largest distance between where an active element is and where it should be.
  maxDrift() {
    let worst = 0;
    for (const m of this.media) {
      if (this.covers(m, this.time) && !m.el.seeking) {
        worst = Math.max(worst, Math.abs(m.el.currentTime - (this.time - m.start)));
      }
    }
    return worst;
  }

  _emit() {
    this.dispatchEvent(new CustomEvent('change'));
  }
}
