// The local microphone's level where getStats has none: Firefox reports the
// microphone's media-source stats without audioLevel, so a Firefox user would never
// be their own active speaker. Measured as WebRTC measures audioLevel: the peak
// amplitude, 0..1, here over the analyser's last window.

export class MicLevel {
  constructor(track) {
    this.track = track;
    this.audio = new AudioContext();
    this.analyser = this.audio.createAnalyser();
    this.analyser.fftSize = 2048;
    this.audio.createMediaStreamSource(new MediaStream([track])).connect(this.analyser);
    this.samples = new Float32Array(this.analyser.fftSize);
    // Firefox holds an audio context back until the page has had a click or a key
    // (its autoplay policy); until then the level reads 0.
    if (this.audio.state === 'suspended') {
      const resume = () => this.audio.resume().catch(() => {});
      for (const type of ['pointerdown', 'keydown']) window.addEventListener(type, resume, { once: true, capture: true });
    }
  }

  get level() {
    this.analyser.getFloatTimeDomainData(this.samples);
    let peak = 0;
    for (const v of this.samples) peak = Math.max(peak, Math.abs(v));
    return Math.min(1, peak);
  }

  close() {
    this.audio.close().catch(() => {});
  }
}
