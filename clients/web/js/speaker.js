// Active speaker from audio levels (getStats audioLevel, 0..1). Levels are
// smoothed, and the speaker only changes after someone has been louder for a
// moment, so the highlight does not flicker between people on every syllable.

const SPEAKING_LEVEL = 0.02;
const HOLD_MS = 900;

export class SpeakerDetector {
  constructor() {
    this.smoothed = new Map();
    this.active = null;
    this.candidate = null;
    this.candidateSince = 0;
  }

  // levels: Map peerId -> level. Returns {active, speaking: Set of peers above the threshold}.
  update(levels, now = performance.now()) {
    for (const [peer, level] of levels) {
      const prev = this.smoothed.get(peer) || 0;
      this.smoothed.set(peer, prev * 0.6 + level * 0.4);
    }
    for (const peer of [...this.smoothed.keys()]) if (!levels.has(peer)) this.smoothed.delete(peer);
    let loudest = null;
    let loudestLevel = SPEAKING_LEVEL;
    const speaking = new Set();
    for (const [peer, level] of this.smoothed) {
      if (level >= SPEAKING_LEVEL) speaking.add(peer);
      if (level > loudestLevel) { loudest = peer; loudestLevel = level; }
    }
    if (loudest && loudest !== this.active) {
      if (loudest !== this.candidate) { this.candidate = loudest; this.candidateSince = now; }
      if (now - this.candidateSince >= HOLD_MS || this.active === null) this.active = loudest;
    } else {
      this.candidate = null;
    }
    return { active: this.active, speaking };
  }
}
