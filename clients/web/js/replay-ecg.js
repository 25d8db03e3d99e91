// Recorded ECG streams, fed to the clinical panel's strips as the replay reaches
// each frame: the same `ecg` events the live session dispatches, so the room's
// EcgMonitor draws them unchanged.
//
// A stream's recording (GET .../recordings/{id}/ecg/{seq}) is its frames as they
// arrived: repeated {f64 seconds since the announce, u32 length, frame}, little-endian.

const HEAD = 12;
const BACKFILL_S = 3; // after a seek, the seconds of trace drawn up to the new moment

export function parseEcgRecording(buffer) {
  const records = [];
  const view = new DataView(buffer);
  let at = 0;
  while (at + HEAD <= buffer.byteLength) {
    const t = view.getFloat64(at, true);
    const length = view.getUint32(at + 8, true);
    if (at + HEAD + length > buffer.byteLength) break; // torn tail of a crashed write
    records.push({ t, frame: buffer.slice(at + HEAD, at + HEAD + length) });
    at += HEAD + length;
  }
  return records;
}

export class ReplayEcg {
  // load(seq) -> Promise<ArrayBuffer>; feed: the panel's session stand-in.
  constructor(feed, load) {
    this.feed = feed;
    this.load = load;
    this.streams = new Map(); // announce seq -> {at, records, next} (records null while loading)
  }

  // Streams live at this moment (clinical-state's ecg_streams, with `at` from the log).
  // `restarted`: the strips were rebuilt (a seek), so trace is drawn afresh.
  advance(live, t, restarted) {
    for (const announce of live) {
      let stream = this.streams.get(announce.seq);
      if (!stream) {
        stream = { at: announce.at, records: null, next: 0 };
        this.streams.set(announce.seq, stream);
        this.load(announce.seq).then((buffer) => { stream.records = parseEcgRecording(buffer); stream.next = -1; })
          .catch(() => { stream.records = []; });
      }
      if (!stream.records) continue;
      if (restarted || stream.next < 0) {
        const from = t - stream.at - BACKFILL_S;
        stream.next = stream.records.findIndex((r) => r.t >= from);
        if (stream.next < 0) stream.next = stream.records.length;
      }
      while (stream.next < stream.records.length && stream.at + stream.records[stream.next].t <= t) {
        this.feed.dispatchEvent(new CustomEvent('ecg', { detail: stream.records[stream.next].frame }));
        stream.next++;
      }
    }
  }
}
