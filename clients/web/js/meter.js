// A microphone level bar drawn on a canvas, fed by a WebAudio analyser.

export class LevelMeter {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.audio = null;
    this.analyser = null;
    this.frame = 0;
    this.peak = 0;
  }

  attach(stream) {
    this.detach();
    const track = stream && stream.getAudioTracks()[0];
    if (!track) { this.draw(0); return; }
    this.audio = new AudioContext();
    const source = this.audio.createMediaStreamSource(new MediaStream([track]));
    this.analyser = this.audio.createAnalyser();
    this.analyser.fftSize = 512;
    source.connect(this.analyser);
    const buf = new Float32Array(this.analyser.fftSize);
    const loop = () => {
      this.analyser.getFloatTimeDomainData(buf);
      let sum = 0;
      for (const v of buf) sum += v * v;
      const rms = Math.sqrt(sum / buf.length);
      this.draw(Math.min(1, rms * 4));
      this.frame = requestAnimationFrame(loop);
    };
    loop();
  }

  resume() {
    if (this.audio && this.audio.state === 'suspended') this.audio.resume().catch(() => {});
  }

  detach() {
    cancelAnimationFrame(this.frame);
    if (this.audio) this.audio.close().catch(() => {});
    this.audio = null;
    this.analyser = null;
  }

  draw(level) {
    const { canvas, ctx } = this;
    const w = canvas.width = canvas.clientWidth * devicePixelRatio || 200;
    const h = canvas.height = canvas.clientHeight * devicePixelRatio || 12;
    this.peak = Math.max(level, this.peak * 0.95);
    ctx.clearRect(0, 0, w, h);
    const segments = 24;
    const gap = 2 * devicePixelRatio;
    const segW = (w - gap * (segments - 1)) / segments;
    for (let i = 0; i < segments; i++) {
      const on = i / segments < level;
      const hot = i >= segments * 0.8;
      ctx.fillStyle = on ? (hot ? '#d97706' : '#0a6c74') : '#d5dee6';
      ctx.fillRect(i * (segW + gap), 0, segW, h);
    }
  }
}
